#!/usr/bin/env bash
# Installs Debian's chromium (if missing) for the dashboard's browser test, which drives it with
# Playwright through executable_path, and a CJK font so the test's screenshot shows the Chinese
# labels. Playwright's own browser download is never used: it fetches builds from elsewhere.
#
#   YUQING_TEST_CHROMIUM  the browser to check (default /usr/bin/chromium)
set -euo pipefail

CHROMIUM="${YUQING_TEST_CHROMIUM:-/usr/bin/chromium}"
log() { echo "chromium.sh: $*" >&2; }

missing=()
[[ -x "$CHROMIUM" ]] || missing+=(chromium)
fc-list :lang=zh 2>/dev/null | grep -q . || missing+=(fonts-wqy-zenhei)
if ((${#missing[@]} == 0)); then
    exit 0
fi
log "installing ${missing[*]} from Debian"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq "${missing[@]}" >/dev/null
[[ -x "$CHROMIUM" ]] || { log "no browser at ${CHROMIUM} after installing chromium"; exit 1; }
log "$("$CHROMIUM" --version 2>/dev/null || echo chromium) installed"
