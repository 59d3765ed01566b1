#!/bin/bash
# safehandler's Lambda exec wrapper: set AWS_LAMBDA_EXEC_WRAPPER=/opt/safehandler.
#
# Lambda runs "$AWS_LAMBDA_EXEC_WRAPPER <runtime command...>". This script
#   1. redirects the handler to safehandler's entry point, keeping the original in
#      SAFEHANDLER_ORIGINAL_HANDLER (in _HANDLER, and in the runtime's argv where it is given);
#   2. runs the runtime as a child and restarts it when safehandler recycled it between
#      invocations: Lambda never sees the runtime exit. The runtime says so through a file of
#      its own, SAFEHANDLER_RECYCLE_MARKER in a private directory this script makes, never
#      through an exit status a handler could give too (its sys.exit(75) stays its own).
#      Every other exit is passed through, and SIGTERM is forwarded.
#
# Do no harm: nothing else in the function's environment changes. In particular no
# PYTHONPATH: Lambda's bootstrap adds /opt/python and /opt/python/lib/pythonX.Y/site-packages
# (with their .pth files) only while PYTHONPATH is unset, and that is where this layer's
# python/ tree is found too. Another exec wrapper composes by being this one's command:
#     exec /opt/safehandler /opt/other-wrapper "$@"

original="${SAFEHANDLER_ORIGINAL_HANDLER:-${_HANDLER}}"
entry="safehandler.runtime.handler"
export SAFEHANDLER_ORIGINAL_HANDLER="$original"
export _HANDLER="$entry"
export SAFEHANDLER_SUPERVISED=1
# mktemp -d: a new directory, mode 0700, that only this function's user can write in.
channel="$(mktemp -d "${TMPDIR:-/tmp}/safehandler-wrapper.XXXXXXXXXX" 2>/dev/null)" || channel=""
marker=""
if [[ -n "$channel" ]]; then
    marker="${channel}/recycle"
    export SAFEHANDLER_RECYCLE_MARKER="$marker"
    trap 'rm -rf -- "$channel"' EXIT
fi

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
    if [[ -z "$marker" || ! -e "$marker" ]]; then
        exit "$status"  # not a recycle: Lambda sees the runtime's exit, as without the layer
    fi
    # kept for the next generation: what the recycled one used (safehandler's back-off)
    mv -f -- "$marker" "${marker}.last"
    restarts=$((restarts + 1))
    export SAFEHANDLER_RESTARTS="$restarts"
    # A SnapStart restore must not be replayed by a restarted runtime: it initialises on
    # demand. Every other initialization type (provisioned-concurrency, ...) is left as it is.
    if [[ "${AWS_LAMBDA_INITIALIZATION_TYPE:-}" == "snap-start" ]]; then
        export AWS_LAMBDA_INITIALIZATION_TYPE="on-demand"
    fi
done
