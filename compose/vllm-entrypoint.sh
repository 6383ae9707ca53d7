#!/bin/sh
# Entrypoint of the compose `vllm` service (after appliance-entrypoint has resolved the
# *_FILE secrets): unseal the model VAULT_MODEL from the appliance vault into UNSEAL_DIR
# (a tmpfs mount: `appliance vault unseal` refuses a disk), run `vllm serve` on it with
# this container's command as arguments, and wipe the decrypted weights when vLLM exits
# or the container is stopped. vLLM runs as a child, not exec'd, so that the wipe runs.
set -eu

: "${VAULT_MODEL:?set VAULT_MODEL to the name of a model sealed in the vault}"
UNSEAL_DIR="${UNSEAL_DIR:-/models/$VAULT_MODEL}"
VLLM="${VLLM:-vllm}"

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
