#!/bin/bash
# safehandler's Lambda exec wrapper: set AWS_LAMBDA_EXEC_WRAPPER=/opt/safehandler.
#
# Lambda runs "$AWS_LAMBDA_EXEC_WRAPPER <runtime command...>". This script
#   1. redirects the handler to safehandler's entry point, keeping the original in
#      SAFEHANDLER_ORIGINAL_HANDLER (in _HANDLER, and in the runtime's argv where it is given);
#   2. runs the runtime as a child and restarts it when it exits with status 75, which is how
#      safehandler recycles an unhealthy environment between invocations: Lambda never sees
#      the runtime exit. Every other status is passed through, and SIGTERM is forwarded.

original="${SAFEHANDLER_ORIGINAL_HANDLER:-${_HANDLER}}"
entry="safehandler.runtime.handler"
export SAFEHANDLER_ORIGINAL_HANDLER="$original"
export _HANDLER="$entry"
export SAFEHANDLER_SUPERVISED=1
# The layer's python/ tree is on PYTHONPATH already on Lambda; this also makes a copy of the
# layer unpacked elsewhere work.
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
export PYTHONPATH="${here}/python${PYTHONPATH:+:${PYTHONPATH}}"

args=()
for arg in "$@"; do
    if [[ "$arg" == "$original" ]]; then args+=("$entry"); else args+=("$arg"); fi
done

child=0
forward() {
    if (( child )); then kill -TERM "$child" 2>/dev/null; fi
}
trap forward TERM INT

restarts=0
while true; do
    "${args[@]}" &
    child=$!
    # wait returns early (status > 128) when a trapped signal arrives: wait again for the child.
    while true; do
        wait "$child"
        status=$?
        kill -0 "$child" 2>/dev/null || break
    done
    child=0
    if (( status != 75 )); then
        exit "$status"
    fi
    restarts=$((restarts + 1))
    export SAFEHANDLER_RESTARTS="$restarts"
    # A restarted runtime initialises on demand: a SnapStart restore must not be replayed.
    export AWS_LAMBDA_INITIALIZATION_TYPE="on-demand"
done
