# dms/tests/lib.sh - what the end-to-end scripts share (sourced, not run): pass/fail counting, their own dmsd
# started on a free port, cleanup by their own executor label only, and requests to the API.
#
# The script sets WORK (its temp dir), DMSD, DMS_EXECUTOR_ID and E2E_NAME (the prefix of its messages) first.

PASS=0
FAILS=0
DMSD_PID=

pass() { PASS=$((PASS + 1)); echo "  ok   $*"; }
failed() { FAILS=$((FAILS + 1)); echo "  FAIL $*"; }
check() { local what=$1; shift; if "$@"; then pass "$what"; else failed "$what"; fi; }

start_dmsd() {
    rm -f "$WORK/port"
    # The e2e repositories start FROM the local test images, which the operator must allow (a build may start
    # from dms-stack/* and the user's own droids' images by default).
    DMS_BUILD_ALLOWED_IMAGES=${DMS_BUILD_ALLOWED_IMAGES:-dms-test/*} "$DMSD" --listen 127.0.0.1:0 --port-file "$WORK/port" >>"$WORK/dmsd.log" 2>&1 &
    DMSD_PID=$!
    for _ in $(seq 100); do [ -s "$WORK/port" ] && break; sleep 0.1; done
    [ -s "$WORK/port" ] || { echo "$E2E_NAME: dmsd did not start:"; tail -20 "$WORK/dmsd.log"; exit 1; }
    export DMS_URL=http://127.0.0.1:$(cat "$WORK/port")
}

# On exit: dmsd stopped, and whatever a failed check left behind removed, by our own executor label only (the
# droids' network too, if this dmsd made it: another dmsd's containers on it keep it, rm refuses).
cleanup() {
    [ -n "$DMSD_PID" ] && kill "$DMSD_PID" 2>/dev/null && wait "$DMSD_PID" 2>/dev/null
    docker ps -aq --filter label=io.dms.executor=$DMS_EXECUTOR_ID | xargs -r docker rm -f >/dev/null 2>&1
    docker images -q --filter label=io.dms.executor=$DMS_EXECUTOR_ID | sort -u | xargs -r docker rmi -f >/dev/null 2>&1
    docker volume ls -q --filter label=io.dms.executor=$DMS_EXECUTOR_ID | xargs -r docker volume rm >/dev/null 2>&1
    docker network ls -q --filter label=io.dms.executor=$DMS_EXECUTOR_ID | xargs -r docker network rm >/dev/null 2>&1
    [ "${KEEP_WORK:-0}" = 1 ] || rm -rf "$WORK"
}

api() { # api TOKEN METHOD PATH [BODY] -> body on stdout, status in $WORK/status; an empty TOKEN sends none
    local tok=$1 m=$2 p=$3
    shift 3
    curl -s -o "$WORK/body" -w '%{http_code}' -X "$m" ${tok:+-H "Authorization: Bearer $tok"} ${1:+-d "$1"} \
        "$DMS_URL$p" >"$WORK/status"
    cat "$WORK/body"
}
