#!/usr/bin/env bash
# dms/tests/wake-bench.sh - how long the first request to a snoozed droid takes to get its real answer.
#
#   dms/tests/wake-bench.sh [BUILD_DIR] [WAKES]     (default: build, 20 wakes; needs scripts/test-images)
#
# Runs its own dmsd (own data dir, executor id and proxy port), deploys a busybox httpd droid with
# idle_timeout_s=1, then WAKES times: waits until the droid is snoozed and its container is gone, times one
# request through the proxy (curl's time_total: connect to Caddy, held by the wake handler, container start,
# port answers, the request spliced through), and checks the answer is the app's page. Prints every wake, then
# p50/p90/max, and where the time went from dmsd's own log (container start, port answering, held time).
# Leaves nothing behind (checked).
set -u
BUILD=${1:-build}
WAKES=${2:-20}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
DMSD=$ROOT/$BUILD/bin/dmsd
DMSCTL=$ROOT/$BUILD/bin/dmsctl
for b in "$DMSD" "$DMSCTL"; do [ -x "$b" ] || { echo "wake-bench: $b missing"; exit 2; }; done
command -v jq >/dev/null || { echo "wake-bench: needs jq"; exit 2; }
docker image inspect dms-test/web:latest >/dev/null 2>&1 || { echo "wake-bench: run scripts/test-images"; exit 2; }

WORK=$(mktemp -d /tmp/dmsd-wake.XXXXXX)
export DMS_EXECUTOR_ID=wake-$$
export DMS_JWT_SECRET=$(head -c 32 /dev/urandom | base64 | tr -d '/+=')
export DMS_DATA_DIR=$WORK/var
export DMS_LOG_LEVEL=info
export DMS_PROXY_LISTEN=127.0.0.1:0
export DMS_PLUGIN_DIR=${DMS_PLUGIN_DIR:-$ROOT/$BUILD/plugins}
DMSD_PID=
cleanup() {
    [ -n "$DMSD_PID" ] && kill "$DMSD_PID" 2>/dev/null && wait "$DMSD_PID" 2>/dev/null
    docker ps -aq --filter label=io.dms.executor=$DMS_EXECUTOR_ID | xargs -r docker rm -f >/dev/null 2>&1
    docker images -q --filter label=io.dms.executor=$DMS_EXECUTOR_ID | sort -u | xargs -r docker rmi -f >/dev/null 2>&1
    [ "${KEEP_WORK:-0}" = 1 ] || rm -rf "$WORK"
}
trap cleanup EXIT

"$DMSD" --listen 127.0.0.1:0 --port-file "$WORK/port" >"$WORK/dmsd.log" 2>&1 &
DMSD_PID=$!
for _ in $(seq 100); do [ -s "$WORK/port" ] && break; sleep 0.1; done
[ -s "$WORK/port" ] || { echo "wake-bench: dmsd did not start"; tail "$WORK/dmsd.log"; exit 1; }
export DMS_URL=http://127.0.0.1:$(cat "$WORK/port")
export DMS_TOKEN=$("$DMSCTL" token bench)
PROXY=$(sed -n 's/.*droids at http:\/\/<name>.localhost:\([0-9]*\)\/.*/\1/p' "$WORK/dmsd.log" | tail -1)

git init -q -b main "$WORK/src" && printf 'FROM dms-test/web:latest\nENV PAGE=awake\n' >"$WORK/src/Dockerfile" &&
    git -C "$WORK/src" add . && git -C "$WORK/src" -c user.email=b@dms -c user.name=b commit -qm init &&
    git clone -q --bare "$WORK/src" "$WORK/app.git"
ID=$("$DMSCTL" --json create sleepy --repo "$WORK/app.git" | jq -r .id)
for _ in $(seq 300); do [ "$("$DMSCTL" --json status "$ID" | jq -r .status)" = running ] && break; sleep 0.2; done
"$DMSCTL" snooze "$ID" --idle 1 >/dev/null || exit 1
echo "wake-bench: droid $ID at http://sleepy.localhost:$PROXY/, idle_timeout_s=1, $WAKES wakes"

times=()
for i in $(seq "$WAKES"); do
    for _ in $(seq 200); do
        st=$("$DMSCTL" --json status "$ID" | jq -r .status)
        n=$(docker ps -q --filter label=io.dms.executor=$DMS_EXECUTOR_ID --filter label=io.dms.job=$ID | wc -l)
        [ "$st" = snoozed ] && [ "$n" = 0 ] && break
        sleep 0.1
    done
    [ "$st" = snoozed ] && [ "$n" = 0 ] || { echo "wake-bench: droid did not go to sleep ($st, $n containers)"; exit 1; }
    out=$(curl -s -o "$WORK/body" -w '%{http_code} %{time_total}' "http://sleepy.localhost:$PROXY/")
    code=${out% *}
    t=${out#* }
    body=$(cat "$WORK/body")
    [ "$code" = 200 ] && [ "$body" = awake ] || { echo "wake-bench: wake $i answered $code \"$body\""; exit 1; }
    ms=$(awk -v t="$t" 'BEGIN { printf "%d", t * 1000 }')
    times+=("$ms")
    echo "  wake $i: $ms ms"
done
sorted=$(printf '%s\n' "${times[@]}" | sort -n)
pct() { printf '%s\n' "$sorted" | awk -v p="$1" '{ v[NR] = $1 } END { i = int((NR - 1) * p / 100 + 0.5) + 1; print v[i] }'; }
echo "wake-bench: $WAKES wakes: p50 $(pct 50) ms, p90 $(pct 90) ms, max $(pct 100) ms (target: 500 ms)"
# Where the time goes, from dmsd's log: the executor's create+start, the port answering, the held request.
awk '/op=start port=.*start_ms=/ { s = $0; sub(/.*start_ms=/, "", s); sub(/ .*/, "", s); st += s; ns++ }
     /op=health/ { h = $0; sub(/.*answered_ms=/, "", h); hl += h; nh++ }
     /op=wake action=forward/ { w = $0; sub(/.*held_ms=/, "", w); wl += w; nw++ }
     END { if (nw && ns) printf "wake-bench: means: held in the wake handler %d ms, of which the executor start (create+start) %d ms and the port answering after it %d ms\n", wl / nw, st / ns, nh ? hl / nh : 0 }' "$WORK/dmsd.log"
"$DMSCTL" rm "$ID" >/dev/null
kill "$DMSD_PID" && wait "$DMSD_PID"
DMSD_PID=
left=$(docker ps -aq --filter label=io.dms.executor=$DMS_EXECUTOR_ID | wc -l)
[ "$left" = 0 ] || { echo "wake-bench: $left containers left"; exit 1; }
