#!/bin/sh
# Docker secrets convention: APPLIANCE_<SETTING>_FILE, PGPASSWORD_FILE and VLLM_API_KEY_FILE
# become APPLIANCE_<SETTING>, PGPASSWORD and VLLM_API_KEY (vLLM's --api-key, kept off the
# command line), read from that file (trailing newlines dropped), and
# the _FILE variable is removed, because the appliance refuses unknown APPLIANCE_*
# variables. Other *_FILE variables (SSL_CERT_FILE, ...) are left alone.
# Then run the command; with none, or with one that starts with an appliance subcommand
# instead of a program (`init`, `serve`, ...), run `appliance` with those arguments.
set -eu

for name in $(env | sed -n 's/^\(APPLIANCE_[A-Z0-9_]*\|PGPASSWORD\|VLLM_API_KEY\)_FILE=.*/\1/p'); do
    file=$(printenv "${name}_FILE")
    if printenv "$name" >/dev/null 2>&1; then
        echo "appliance-entrypoint: both $name and ${name}_FILE are set; set only one" >&2
        exit 1
    fi
    if [ ! -r "$file" ]; then
        echo "appliance-entrypoint: ${name}_FILE names $file, which cannot be read" >&2
        exit 1
    fi
    value=$(cat "$file")
    export "$name=$value"
    unset "${name}_FILE"
done

if [ "$#" -eq 0 ]; then
    set -- appliance --help
elif ! command -v "$1" >/dev/null 2>&1; then
    set -- appliance "$@"
fi
exec "$@"
