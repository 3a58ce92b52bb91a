#!/usr/bin/env bash
# Installs Debian's promtool (if missing) for the checks of deploy/observability: `promtool check
# rules`, `test rules` and `check config`. It ships in the `prometheus` package; nothing of the
# package is started (without an init system its postinst cannot start the server, which is harmless).
#
#   YUQING_TEST_PROMTOOL  the promtool to check (default: the one on PATH, else /usr/bin/promtool)
set -euo pipefail

PROMTOOL="${YUQING_TEST_PROMTOOL:-$(command -v promtool || echo /usr/bin/promtool)}"
log() { echo "promtool.sh: $*" >&2; }

if [[ -x "$PROMTOOL" ]]; then
    exit 0
fi
log "installing prometheus (for promtool) from Debian"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends prometheus >/dev/null
[[ -x "$PROMTOOL" ]] || { log "no promtool at ${PROMTOOL} after installing prometheus"; exit 1; }
log "$("$PROMTOOL" --version 2>&1 | head -n 1) installed"
