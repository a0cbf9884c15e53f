#!/usr/bin/env bash
# bench/wake.sh - how long the first request to a snoozed droid takes to get its real answer, against the floor:
# the same container brought up without dms (bench/wake_floor.py: raw Engine API and docker CLI), same run.
#
#   bench/wake.sh [BUILD_DIR] [WAKES] [JSON]   (default: build, 20 wakes; needs scripts/test-images, jq)
#   bench/run wake                             (the same, its figures added to the run's results JSON)
#
# Runs its own dmsd (own data dir, executor id and proxy port), deploys a busybox httpd droid with
# idle_timeout_s=1, then WAKES times: waits until the droid is snoozed and its container is gone, times one
# request through the proxy (curl's time_total: connect to Caddy, held by the wake handler, container start,
# port answers, the request spliced through), and checks the answer is the app's page. Prints every wake, then
# p50/p90/max, and where the time went from dmsd's own log (container start, port answering, held time).
# Then the floor, WAKES rounds, and a SUMMARY line of ratios (wake p50 / floor p50). Target: wake p50 and p90
# within 500 ms. With JSON, the figures go into that file under "wake". Leaves nothing behind (checked).
set -u
BUILD=${1:-build}
WAKES=${2:-20}
JSON_OUT=${3:-}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
DMSD=$ROOT/$BUILD/bin/dmsd
DMSCTL=$ROOT/$BUILD/bin/dmsctl
for b in "$DMSD" "$DMSCTL"; do [ -x "$b" ] || { echo "wake: $b missing"; exit 2; }; done
command -v jq >/dev/null || { echo "wake: needs jq"; exit 2; }
docker image inspect dms-test/web:latest >/dev/null 2>&1 || { echo "wake: run scripts/test-images"; exit 2; }

WORK=$(mktemp -d /tmp/dmsd-wake.XXXXXX)
export DMS_EXECUTOR_ID=wake-$$
export DMS_JWT_SECRET=$(head -c 32 /dev/urandom | base64 | tr -d '/+=')
export DMS_DATA_DIR=$WORK/var
export DMS_LOCAL_REPO_ROOTS=$WORK # its repository (the data dir beneath is never read from)
export DMS_LOG_LEVEL=info
export DMS_PROXY_LISTEN=127.0.0.1:0
export DMS_BUILD_ALLOWED_IMAGES='dms-test/*' # the droid starts FROM dms-test/web, like the raw floor it is measured against
export DMS_PLUGIN_DIR=${DMS_PLUGIN_DIR:-$ROOT/$BUILD/plugins}
DMSD_PID=
cleanup() {
    [ -n "$DMSD_PID" ] && kill "$DMSD_PID" 2>/dev/null && wait "$DMSD_PID" 2>/dev/null
    docker ps -aq --filter label=io.dms.executor=$DMS_EXECUTOR_ID | xargs -r docker rm -f >/dev/null 2>&1
    docker images -q --filter label=io.dms.executor=$DMS_EXECUTOR_ID | sort -u | xargs -r docker rmi -f >/dev/null 2>&1
    docker network ls -q --filter label=io.dms.executor=$DMS_EXECUTOR_ID | xargs -r docker network rm >/dev/null 2>&1
    [ "${KEEP_WORK:-0}" = 1 ] || rm -rf "$WORK"
}
trap cleanup EXIT

"$DMSD" --listen 127.0.0.1:0 --port-file "$WORK/port" >"$WORK/dmsd.log" 2>&1 &
DMSD_PID=$!
for _ in $(seq 100); do [ -s "$WORK/port" ] && break; sleep 0.1; done
[ -s "$WORK/port" ] || { echo "wake: dmsd did not start"; tail "$WORK/dmsd.log"; exit 1; }
export DMS_URL=http://127.0.0.1:$(cat "$WORK/port")
export DMS_TOKEN=$("$DMSCTL" token bench)
PROXY=$(sed -n 's/.*droids at http:\/\/<name>.localhost:\([0-9]*\)\/.*/\1/p' "$WORK/dmsd.log" | tail -1)

git init -q -b main "$WORK/src" && printf 'FROM dms-test/web:latest\nENV PAGE=awake\n' >"$WORK/src/Dockerfile" &&
    git -C "$WORK/src" add . && git -C "$WORK/src" -c user.email=b@dms -c user.name=b commit -qm init &&
    git clone -q --bare "$WORK/src" "$WORK/app.git"
ID=$("$DMSCTL" --json create sleepy --repo "$WORK/app.git" | jq -r .id)
for _ in $(seq 300); do [ "$("$DMSCTL" --json status "$ID" | jq -r .status)" = running ] && break; sleep 0.2; done
"$DMSCTL" snooze "$ID" --idle 1 >/dev/null || exit 1
echo "wake: droid $ID at http://sleepy.localhost:$PROXY/, idle_timeout_s=1, $WAKES wakes"

times=()
for i in $(seq "$WAKES"); do
    for _ in $(seq 200); do
        st=$("$DMSCTL" --json status "$ID" | jq -r .status)
        n=$(docker ps -q --filter label=io.dms.executor=$DMS_EXECUTOR_ID --filter label=io.dms.job=$ID | wc -l)
        [ "$st" = snoozed ] && [ "$n" = 0 ] && break
        sleep 0.1
    done
    [ "$st" = snoozed ] && [ "$n" = 0 ] || { echo "wake: droid did not go to sleep ($st, $n containers)"; exit 1; }
    out=$(curl -s -o "$WORK/body" -w '%{http_code} %{time_total}' "http://sleepy.localhost:$PROXY/")
    code=${out% *}
    t=${out#* }
    body=$(cat "$WORK/body")
    [ "$code" = 200 ] && [ "$body" = awake ] || { echo "wake: wake $i answered $code \"$body\""; exit 1; }
    ms=$(awk -v t="$t" 'BEGIN { printf "%d", t * 1000 }')
    times+=("$ms")
    echo "  wake $i: $ms ms"
done
sorted=$(printf '%s\n' "${times[@]}" | sort -n)
pct() { printf '%s\n' "$sorted" | awk -v p="$1" '{ v[NR] = $1 } END { i = int((NR - 1) * p / 100 + 0.5) + 1; print v[i] }'; }
P50=$(pct 50) P90=$(pct 90) MAX=$(pct 100)
echo "wake: $WAKES wakes: p50 $P50 ms, p90 $P90 ms, max $MAX ms (target: 500 ms)"
# Where the time goes, from dmsd's log: the executor's create+start, the port answering, the held request.
awk '/op=start port=.*start_ms=/ { s = $0; sub(/.*start_ms=/, "", s); sub(/ .*/, "", s); st += s; ns++ }
     /op=health/ { h = $0; sub(/.*answered_ms=/, "", h); hl += h; nh++ }
     /op=wake action=forward/ { w = $0; sub(/.*held_ms=/, "", w); wl += w; nw++ }
     END { if (nw && ns) printf "wake: means: held in the wake handler %d ms, of which the executor start (create+start) %d ms and the port answering after it %d ms\n", wl / nw, st / ns, nh ? hl / nh : 0 }' "$WORK/dmsd.log"
"$DMSCTL" rm "$ID" >/dev/null
kill "$DMSD_PID" && wait "$DMSD_PID"
DMSD_PID=
docker network ls -q --filter label=io.dms.executor=$DMS_EXECUTOR_ID | xargs -r docker network rm >/dev/null
left=$(docker ps -aq --filter label=io.dms.executor=$DMS_EXECUTOR_ID | wc -l)
[ "$left" = 0 ] || { echo "wake: $left containers left"; exit 1; }

# The floor, in the same run: the same container without dms.
FLOOR=$("$ROOT/bench/wake_floor.py" "$WAKES" "$DMS_EXECUTOR_ID-floor") || { echo "wake: the floor failed"; exit 1; }
left=$(docker ps -aq --filter label=io.dms.executor=$DMS_EXECUTOR_ID-floor | wc -l)
left=$((left + $(docker network ls -q --filter label=io.dms.executor=$DMS_EXECUTOR_ID-floor | wc -l)))
[ "$left" = 0 ] || { echo "wake: $left floor containers or networks left"; exit 1; }
printf '  %-11s p50 %7s ms  p90 %7s ms  max %7s ms\n' wake "$P50" "$P90" "$MAX"
for row in api-net api-create api-start cli-run; do
    printf '  %-11s p50 %7s ms  p90 %7s ms  max %7s ms\n' "$row" \
        $(jq -r --arg r "$row" '.[$r] | "\(.p50) \(.p90) \(.max)"' <<<"$FLOOR")
done
ratio() { jq -r --argjson w "$P50" --arg r "$1" '.[$r].p50 as $f | ($w / $f * 100 | round) / 100' <<<"$FLOOR"; }
met=$([ "$P50" -le 500 ] && [ "$P90" -le 500 ] && echo met || echo MISSED)
echo "SUMMARY wake: p50 $P50 ms, p90 $P90 ms (target 500 ms: $met); wake/api-net $(ratio api-net), wake/api-create $(ratio api-create), wake/api-start $(ratio api-start), wake/cli-run $(ratio cli-run) (p50s)"
if [ -n "$JSON_OUT" ]; then
    w=$(jq -n --argjson n "$WAKES" --argjson p50 "$P50" --argjson p90 "$P90" --argjson max "$MAX" --argjson floor "$FLOOR" \
        '{wake: {n: $n, p50: $p50, p90: $p90, max: $max, unit: "ms"}, floor: $floor, target_ms: 500}')
    if [ -s "$JSON_OUT" ]; then
        jq --argjson w "$w" '.wake = $w' "$JSON_OUT" >"$JSON_OUT.tmp" && mv "$JSON_OUT.tmp" "$JSON_OUT"
    else
        jq -n --argjson w "$w" '{wake: $w}' >"$JSON_OUT"
    fi
fi
