#!/bin/sh
# Entrypoint of the compose `vllm` service (after appliance-entrypoint has resolved the
# *_FILE secrets): unseal the model VAULT_MODEL from the appliance vault into UNSEAL_DIR
# (a tmpfs mount: `appliance vault unseal` refuses a disk), run `vllm serve` on it with
# this container's command as arguments, then the vLLM options the model registry keeps
# for REGISTRY_MODEL (tool and reasoning parsers, chat template, context length,
# structured-output backend: `appliance model vllm-args`, checked for this image's vLLM),
# and wipe the decrypted weights when vLLM exits or the container is stopped. vLLM runs
# as a child, not exec'd, so that the wipe runs.
set -eu

: "${VAULT_MODEL:?set VAULT_MODEL to the name of a model sealed in the vault}"
UNSEAL_DIR="${UNSEAL_DIR:-/models/$VAULT_MODEL}"
REGISTRY_MODEL="${REGISTRY_MODEL:-$VAULT_MODEL}"
VLLM="${VLLM:-vllm}"
# The vLLM of this image (its Python is python3), unless VLLM_VERSION says.
if [ -z "${VLLM_VERSION:-}" ]; then
    VLLM_VERSION=$(python3 -c 'import importlib.metadata as m; print(m.version("vllm"))' \
        2>/dev/null) || {
        echo "vllm-entrypoint: cannot tell which vLLM this is; set VLLM_VERSION" >&2
        exit 1
    }
fi
# One argument a line (a checked option has no newline); refused options stop here,
# before anything is unsealed.
registry_args=$(appliance model vllm-args "$REGISTRY_MODEL" --vllm-version "$VLLM_VERSION")

child=""
signalled=""
wipe() {
    appliance vault wipe "$UNSEAL_DIR" >&2 || echo "vllm-entrypoint: wipe of $UNSEAL_DIR failed" >&2
}
forward() {
    signalled=1
    if [ -n "$child" ]; then
        kill -TERM "$child" 2>/dev/null || true
    fi
}
trap wipe EXIT
trap forward TERM INT

appliance vault wipe "$UNSEAL_DIR" >&2  # a copy left by a killed run
appliance vault unseal "$VAULT_MODEL" --to "$UNSEAL_DIR" >&2
[ -z "$signalled" ] || exit 143  # stopped while unsealing: do not start vLLM

if [ -n "$registry_args" ]; then
    old_ifs=$IFS
    IFS='
'
    set -f
    # shellcheck disable=SC2086  # split on newlines only, no globbing
    set -- "$@" $registry_args
    set +f
    IFS=$old_ifs
fi
"$VLLM" serve "$UNSEAL_DIR" "$@" &
child=$!
status=0
wait "$child" || status=$?
if [ -n "$signalled" ]; then
    # A trapped signal ends `wait` early: collect vLLM's own exit status.
    status=0
    wait "$child" || status=$?
fi
exit "$status"
