#!/usr/bin/env bash
# dms/tests/e2e.sh - end-to-end test of dmsd against the real Docker engine: local git repositories whose
# Dockerfiles build FROM the local test images, driven through the HTTP API (curl) and dmsctl.
#
#   dms/tests/e2e.sh [BUILD_DIR]        (default: build; needs dms-test/web and dms-test/busybox: scripts/test-images)
#
# It runs its own dmsd (own data dir, own DMS_EXECUTOR_ID, so nothing of another dmsd is touched), checks each
# behaviour, kills dmsd with -9 on purpose to check reconciliation, and leaves nothing behind: every container,
# image and volume carrying its executor label is gone at the end (checked).
set -u
BUILD=${1:-build}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
DMSD=$ROOT/$BUILD/bin/dmsd
DMSCTL=$ROOT/$BUILD/bin/dmsctl
for b in "$DMSD" "$DMSCTL"; do [ -x "$b" ] || { echo "e2e: $b missing (make BUILD=$BUILD dmsd dmsctl)"; exit 2; }; done
command -v jq >/dev/null || { echo "e2e: needs jq"; exit 2; }
docker image inspect dms-test/web:latest >/dev/null 2>&1 && docker image inspect dms-test/busybox:latest >/dev/null 2>&1 ||
    { echo "e2e: test images missing: run scripts/test-images"; exit 2; }

WORK=$(mktemp -d /tmp/dmsd-e2e.XXXXXX)
export DMS_EXECUTOR_ID=e2e-$$
export DMS_JWT_SECRET=$(head -c 32 /dev/urandom | base64 | tr -d '/+=')
export DMS_DATA_DIR=$WORK/var
export DMS_LOG_LEVEL=${DMS_LOG_LEVEL:-info}
export DMS_KEEP_RELEASES=2
export DMS_PROXY_LISTEN=127.0.0.1:0 # its own Caddy on a free port (droids at http://<name>.localhost:<port>/)
export DMS_PLUGIN_DIR=${DMS_PLUGIN_DIR:-$ROOT/$BUILD/plugins}
export DMS_LOCAL_REPO_ROOTS=$WORK     # its repositories (its data dir, beneath, is never read from)
export DMS_GIT_ALLOW_NETS=127.0.0.0/8 # the clone network error below is a refused loopback connection
E2E_NAME=e2e
# shellcheck source=dms/tests/lib.sh
. "$ROOT/dms/tests/lib.sh"
trap cleanup EXIT

ALICE=$("$DMSCTL" token alice)
BOB=$("$DMSCTL" token bob)
status_of() { api "$ALICE" GET "/droids/$1/status" | jq -r .status; }
field() { api "$ALICE" GET "/droids/$1" | jq -r ".$2"; }
wait_status() { # wait_status ID STATUS SECONDS
    local s
    for _ in $(seq $(($3 * 5))); do
        s=$(status_of "$1")
        [ "$s" = "$2" ] && return 0
        sleep 0.2
    done
    echo "    (droid $1 is $s: $(field "$1" reason), not $2)"
    return 1
}
ctl() { DMS_TOKEN=$ALICE "$DMSCTL" "$@"; }
containers_of() { docker ps -q --filter label=io.dms.job=$1 --filter label=io.dms.executor=$DMS_EXECUTOR_ID | wc -l; }
repo() { # repo NAME DOCKERFILE-TEXT [FILE]  -> a bare repository $WORK/NAME.git with one commit on main
    local w=$WORK/src-$1
    git init -q -b main "$w" && printf '%b' "$2" >"$w/${3:-Dockerfile}" &&
        git -C "$w" add . && git -C "$w" -c user.email=e2e@dms -c user.name=e2e commit -qm init &&
        git clone -q --bare "$w" "$WORK/$1.git"
}
push() { # push NAME DOCKERFILE-TEXT: a new commit on main
    local w=$WORK/src-$1
    printf '%b' "$2" >"$w/Dockerfile" && git -C "$w" -c user.email=e2e@dms -c user.name=e2e commit -qam next &&
        git -C "$w" push -q "$WORK/$1.git" main
}
create() { ctl --json create "$@" | jq -r .id; }

repo web 'FROM dms-test/web:latest\nENV PAGE=web-v1\n'
repo ticker 'FROM dms-test/busybox:latest\nCMD ["sh","-c","i=0; while :; do echo tick $i; i=$((i+1)); sleep 0.1; done"]\n'
repo crash 'FROM dms-test/busybox:latest\nCMD ["sh","-c","echo about to fail; exit 3"]\n'
repo badstep 'FROM dms-test/busybox:latest\nRUN echo failing on purpose && false\n'
repo nodf 'no Dockerfile here\n' README
repo slow 'FROM dms-test/busybox:latest\nRUN sleep 30\n'
repo slow2 'FROM dms-test/busybox:latest\nRUN sleep 6\nCMD ["sh","-c","exec httpd -f -p $PORT -h /"]\n'
repo vol 'FROM dms-test/web:latest\n'
repo nostart 'FROM dms-test/busybox:latest\nCMD ["/no/such/program"]\n'
repo many 'FROM dms-test/web:latest\nENV PAGE=many-1\n'
start_dmsd
echo "e2e: dmsd at $DMS_URL, executor $DMS_EXECUTOR_ID, data $DMS_DATA_DIR"

echo "auth"
api "" GET /droids >/dev/null
check "no token -> 401" [ "$(cat "$WORK/status")" = 401 ]
api "not.a.jwt" GET /droids >/dev/null
check "bad token -> 401" [ "$(cat "$WORK/status")" = 401 ]

echo "create, build, run"
WEB=$(create web --repo "$WORK/web.git")
check "create returns an id" [ -n "$WEB" ]
check "web reaches running" wait_status "$WEB" running 60
URL1=$(field "$WEB" url)
check "web serves its page at $URL1" [ "$(curl -s "$URL1")" = web-v1 ]
check "events: pending -> building -> starting -> running" \
    [ "$(api "$ALICE" GET "/droids/$WEB/events" | jq -r '[.[].to] | join(",")')" = "pending,building,starting,running" ]
check "branch defaulted to the remote's default branch" [ "$(field "$WEB" branch)" = main ]
check "build.out has the build's steps" bash -c "DMS_TOKEN=$ALICE $DMSCTL logs --build $WEB | grep -q 'Step 1/'"
check "dmsctl ls shows it" bash -c "DMS_TOKEN=$ALICE $DMSCTL ls | grep -q '^$WEB .*running'"
api "$ALICE" POST /droids "{\"name\":\"web\",\"repo\":\"$WORK/x.git\"}" >/dev/null
check "a taken name -> 409 on name" [ "$(cat "$WORK/status")" = 409 -a "$(jq -r .field "$WORK/body")" = name ]
api "$ALICE" POST /droids '{"name":"Nope!","repo":"/x"}' >/dev/null
check "a bad name -> 400 on name" [ "$(cat "$WORK/status")" = 400 -a "$(jq -r .field "$WORK/body")" = name ]

echo "isolation"
api "$BOB" GET "/droids/$WEB" >/dev/null
check "another user's droid -> 404" [ "$(cat "$WORK/status")" = 404 ]
api "$BOB" POST "/droids/$WEB/stop" >/dev/null
check "another user cannot stop it -> 404" [ "$(cat "$WORK/status")" = 404 ]
check "another user's list is empty" [ "$(api "$BOB" GET /droids | jq length)" = 0 ]

echo "runtime logs"
TICK=$(create ticker --repo "$WORK/ticker.git")
check "ticker reaches running" wait_status "$TICK" running 60
sleep 1.5
P1=$(curl -s -D "$WORK/h1" -H "Authorization: Bearer $ALICE" "$DMS_URL/droids/$TICK/logs?limit=3")
C1=$(tr -d '\r' <"$WORK/h1" | awk -F': ' 'tolower($1)=="x-last-log-nano"{print $2}')
check "limit=3 gives 3 lines" [ "$(printf '%s\n' "$P1" | wc -l)" = 3 -a "$(printf '%s\n' "$P1" | head -1)" = "tick 0" ]
check "X-Last-Log-Nano is a timestamp" [ "${#C1}" -ge 18 ]
P2=$(curl -s -D "$WORK/h2" -H "Authorization: Bearer $ALICE" "$DMS_URL/droids/$TICK/logs?from=$C1&limit=3")
C2=$(tr -d '\r' <"$WORK/h2" | awk -F': ' 'tolower($1)=="x-last-log-nano"{print $2}')
check "the next page starts after the cursor line (no repeat)" [ "$(printf '%s\n' "$P2" | head -1)" = "tick 3" ]
check "the cursor moves forward" [ "$C2" -gt "$C1" ]
T3=$(curl -s -H "Authorization: Bearer $ALICE" "$DMS_URL/droids/$TICK/logs?tail=2" | wc -l)
check "tail=2 gives 2 lines" [ "$T3" = 2 ]
curl -s -N --max-time 2 -H "Authorization: Bearer $ALICE" "$DMS_URL/droids/$TICK/logs?follow=1&tail=0" >"$WORK/follow"
check "follow streams new lines live (got $(wc -l <"$WORK/follow"))" [ "$(wc -l <"$WORK/follow")" -ge 5 ]
check "dmsctl logs --json gives ts per line" bash -c "DMS_TOKEN=$ALICE $DMSCTL --json logs --limit 1 $TICK | jq -e .ts >/dev/null"

echo "env change restarts with the new config"
ctl update "$WEB" --env PAGE=patched >/dev/null
check "web running again" wait_status "$WEB" running 30
sleep 0.5
URL2=$(field "$WEB" url)
check "serves the new env" [ "$(curl -s "$URL2")" = patched ]
sleep 4
check "one container after the restart" [ "$(containers_of "$WEB")" = 1 ]

echo "rebuild without downtime, releases, rollback"
push web 'FROM dms-test/web:latest\nENV PAGE=web-v2\n'
OLDURL=$(field "$WEB" url)
ctl update "$WEB" --branch main --unset-env PAGE >/dev/null
DOWN=0
SAMPLES=0
for _ in $(seq 300); do
    S=$(api "$ALICE" GET "/droids/$WEB/status")
    [ "$(echo "$S" | jq -r .status)" = running ] && [ "$(echo "$S" | jq -r .release)" = 2 ] && break
    SAMPLES=$((SAMPLES + 1))
    curl -sf -o /dev/null --max-time 1 "$OLDURL" || DOWN=$((DOWN + 1))
    sleep 0.1
done
check "the old container served during the rebuild ($SAMPLES samples, $DOWN failed)" [ "$SAMPLES" -gt 3 -a "$DOWN" = 0 ]
check "release 2 serves v2" [ "$(curl -s "$(field "$WEB" url)")" = web-v2 ]
check "two releases" [ "$(api "$ALICE" GET "/droids/$WEB/releases" | jq length)" = 2 ]
ctl rollback "$WEB" 1 >/dev/null
check "rollback reaches running" wait_status "$WEB" running 30
check "rollback serves release 1 again" [ "$(curl -s "$(field "$WEB" url)")" = web-v1 ]
api "$ALICE" POST "/droids/$WEB/rollback" '{"release":7}' >/dev/null
check "rollback to an unknown release -> 404, nothing changed" [ "$(cat "$WORK/status")" = 404 -a "$(field "$WEB" release)" = 1 ]

echo "routing and snooze"
RURL=$(ctl url "$WEB")
check "dmsctl url prints the route ($RURL)" [ "$RURL" = "$(field "$WEB" route_url)" ]
check "  http://web.localhost:<proxy port>/" bash -c "[[ $RURL == http://web.localhost:*/ ]]"
check "the route serves the page" [ "$(curl -s "$RURL")" = web-v1 ]
check "a host no droid has -> 404" [ "$(curl -s -o /dev/null -w '%{http_code}' "${RURL/web.localhost/nobody.localhost}")" = 404 ]
ctl snooze "$WEB" --window 25:00-07:00 >"$WORK/snz" 2>&1
check "dmsctl snooze refuses a bad window (400 on windows[0].from)" grep -q 'windows\[0\].from' "$WORK/snz"
ctl snooze "$WEB" --idle 2 >/dev/null
check "dmsctl snooze shows the schedule" bash -c "DMS_TOKEN=$ALICE $DMSCTL snooze $WEB | grep -q 'awake; idle timeout 2s'"
check "an idle droid is snoozed" wait_status "$WEB" snoozed 15
for _ in $(seq 50); do [ "$(containers_of "$WEB")" = 0 ] && break; sleep 0.2; done
check "  and has no container" [ "$(containers_of "$WEB")" = 0 ]
T0=$(date +%s%N)
check "a request wakes it with its page" [ "$(curl -s --max-time 10 "$RURL")" = web-v1 ]
echo "    (woken and answered in $((($(date +%s%N) - T0) / 1000000)) ms)"
check "  snoozed -> starting is an event" \
    [ "$(api "$ALICE" GET "/droids/$WEB/events" | jq '[.[] | select(.from == "snoozed" and .to == "starting")] | length')" -ge 1 ]
ctl snooze "$WEB" --clear >/dev/null
check "dmsctl snooze --clear" [ "$(field "$WEB" snooze)" = null ]
check "  it runs again" wait_status "$WEB" running 30

echo "faults"
CRASH=$(create crash --repo "$WORK/crash.git")
BAD=$(create badstep --repo "$WORK/badstep.git")
NODF=$(create nodf --repo "$WORK/nodf.git")
NOBR=$(create nobranch --repo "$WORK/web.git" --branch nope)
check "failing Dockerfile step -> failed" wait_status "$BAD" failed 60
check "  with the step's error as reason" bash -c "[[ \"$(field "$BAD" reason)\" == *'non-zero code'* ]]"
check "  and no retry (one build, failed)" [ "$(api "$ALICE" GET "/droids/$BAD/builds" | jq -r '[.[].status]|join(",")')" = failed ]
check "missing Dockerfile -> failed" wait_status "$NODF" failed 60
check "  reason names the Dockerfile" bash -c "[[ \"$(field "$NODF" reason)\" == *'no Dockerfile'* ]]"
check "unknown branch -> failed" wait_status "$NOBR" failed 60
check "crash loop -> failed after bounded restarts" wait_status "$CRASH" failed 90
check "  reason says crash loop and the exit code" bash -c "[[ \"$(field "$CRASH" reason)\" == *'crash loop'*'code 3'* ]]"
check "  5 restarts with backoff are in the events" \
    [ "$(api "$ALICE" GET "/droids/$CRASH/events" | jq '[.[] | select(.reason | test("restart [0-9]/5"))] | length')" = 5 ]
check "  its crashed runs' logs are readable" bash -c "DMS_TOKEN=$ALICE $DMSCTL logs $CRASH | grep -q 'about to fail'"
NOSTART=$(create nostart --repo "$WORK/nostart.git")
check "a container that will not start -> failed" wait_status "$NOSTART" failed 60
check "  after 4 attempts" bash -c "[[ \"$(field "$NOSTART" reason)\" == *'would not start after 4 attempts'* ]]"
check "  each attempt is an event" \
    [ "$(api "$ALICE" GET "/droids/$NOSTART/events" | jq '[.[] | select(.reason | test("start attempt [0-9]/4"))] | length')" = 3 ]
NET=$(create netfail --repo http://127.0.0.1:1/app.git)
for _ in $(seq 50); do [[ "$(field "$NET" reason)" == *retrying* ]] && break; sleep 0.2; done
check "a clone network error is retried with backoff" bash -c "[[ \"$(field "$NET" reason)\" == *'attempt 1/5 failed'*'retrying in 2s'* ]]"
check "  and waits as pending" [ "$(status_of "$NET")" = pending ]
ctl rm "$NET" >/dev/null

echo "old images are pruned (DMS_KEEP_RELEASES=2); rollback checks the image first"
MANY=$(create many --repo "$WORK/many.git")
check "many release 1 runs" wait_status "$MANY" running 60
for v in 2 3; do
    push many "FROM dms-test/web:latest\nENV PAGE=many-$v\n"
    ctl update "$MANY" --branch main >/dev/null
    for _ in $(seq 300); do
        [ "$(field "$MANY" release)" = "$v" ] && [ "$(status_of "$MANY")" = running ] && break
        sleep 0.2
    done
done
check "release 3 runs" [ "$(curl -s "$(field "$MANY" url)")" = many-3 ]
check "release 1's image was removed, 2 and 3 kept" \
    [ "$(api "$ALICE" GET "/droids/$MANY/releases" | jq -c '[.[] | .image_available]')" = "[true,true,false]" ]
api "$ALICE" POST "/droids/$MANY/rollback" '{"release":1}' >/dev/null
check "rollback to a pruned release -> 409, nothing touched" \
    [ "$(cat "$WORK/status")" = 409 -a "$(jq -r .field "$WORK/body")" = release -a "$(field "$MANY" release)" = 3 ]
check "  still serving release 3" [ "$(curl -s "$(field "$MANY" url)")" = many-3 ]

echo "build cancel; the next queued build starts"
SLOW=$(create slow --repo "$WORK/slow.git")
VOL=$(create vol --repo "$WORK/vol.git" --volume data:/data)
check "slow is building" wait_status "$SLOW" building 30
curl -s -N --max-time 30 -H "Authorization: Bearer $ALICE" "$DMS_URL/droids/$SLOW/logs?build.out&follow=1" \
    >"$WORK/build-follow" &
FOLLOW=$!
sleep 1.5
api "$ALICE" POST "/droids/$SLOW/build/cancel" >/dev/null
check "cancel -> 200" [ "$(cat "$WORK/status")" = 200 ]
check "slow stops with reason cancelled" wait_status "$SLOW" stopped 15
check "  reason is cancelled" [ "$(field "$SLOW" reason)" = cancelled ]
check "  its build is cancelled" [ "$(api "$ALICE" GET "/droids/$SLOW/builds" | jq -r '.[0].status')" = cancelled ]
for _ in $(seq 30); do kill -0 "$FOLLOW" 2>/dev/null || break; sleep 0.1; done
check "  the build log follow ended with the build" bash -c "! kill -0 $FOLLOW 2>/dev/null"
check "  and showed the build live, then the cancel" \
    bash -c "grep -q 'Step 2/' $WORK/build-follow && grep -q 'cancelled' $WORK/build-follow"
check "  no build container left running" bash -c "! docker ps --format '{{.Command}}' | grep -q 'sleep 30'"
check "the next queued build (vol) runs" wait_status "$VOL" running 60

echo "volumes survive restarts and rebuilds"
VC=$(docker ps -q --filter label=io.dms.job=$VOL --filter label=io.dms.executor=$DMS_EXECUTOR_ID | head -1)
docker exec "$VC" sh -c 'echo kept > /data/f'
ctl restart "$VOL" >/dev/null
sleep 1
check "restarted" wait_status "$VOL" running 30
sleep 4
VC=$(docker ps -q --filter label=io.dms.job=$VOL --filter label=io.dms.executor=$DMS_EXECUTOR_ID | head -1)
check "the file is still there after a restart" [ "$(docker exec "$VC" cat /data/f 2>/dev/null)" = kept ]
ctl update "$VOL" --branch main >/dev/null
sleep 1
check "rebuilt" wait_status "$VOL" running 60
sleep 4
VC=$(docker ps -q --filter label=io.dms.job=$VOL --filter label=io.dms.executor=$DMS_EXECUTOR_ID | head -1)
check "the file is still there after a rebuild" [ "$(docker exec "$VC" cat /data/f 2>/dev/null)" = kept ]

echo "stop and start"
ctl stop "$TICK" >/dev/null
check "stop returns once stopped" [ "$(status_of "$TICK")" = stopped -a "$(containers_of "$TICK")" = 0 ]
ctl start "$TICK" >/dev/null
check "start -> running" wait_status "$TICK" running 30

echo "reconciliation after kill -9"
WEBC=$(docker ps -q --no-trunc --filter label=io.dms.job=$WEB --filter label=io.dms.executor=$DMS_EXECUTOR_ID)
SLOW2=$(create slow2 --repo "$WORK/slow2.git")
wait_status "$SLOW2" building 30 >/dev/null
sleep 1
kill -9 "$DMSD_PID"
wait "$DMSD_PID" 2>/dev/null
docker kill "$(docker ps -q --filter label=io.dms.job=$TICK --filter label=io.dms.executor=$DMS_EXECUTOR_ID)" >/dev/null
start_dmsd
check "web is running after the restart" wait_status "$WEB" running 20
check "  in the very same container (re-adopted, not restarted)" \
    [ "$(docker ps -q --no-trunc --filter label=io.dms.job=$WEB --filter label=io.dms.executor=$DMS_EXECUTOR_ID)" = "$WEBC" ]
check "  and still serving" [ "$(curl -s "$(field "$WEB" url)")" = web-v1 ]
check "the interrupted build was re-queued and completes" wait_status "$SLOW2" running 60
check "  as build attempt 2, after the interrupted one" \
    [ "$(api "$ALICE" GET "/droids/$SLOW2/builds" | jq -r '.[0].attempt')" = 2 ]
check "a container that died while dmsd was down is restarted" wait_status "$TICK" running 30
sleep 4
for d in "$WEB" "$TICK" "$SLOW2" "$VOL"; do
    check "  droid $d has exactly one container" [ "$(containers_of "$d")" = 1 ]
done

echo "delete"
IMGS=$(docker images -q --filter label=io.dms.job=$WEB | wc -l)
ctl rm "$WEB" >/dev/null
check "rm answers once done; the droid is gone (404)" bash -c "[ \$(curl -s -o /dev/null -w '%{http_code}' -H 'Authorization: Bearer $ALICE' $DMS_URL/droids/$WEB) = 404 ]"
check "  its containers are gone" [ "$(docker ps -aq --filter label=io.dms.job=$WEB | wc -l)" = 0 ]
# Image removal can be retried by the collector when the engine is slow: allow it a minute.
for _ in $(seq 120); do [ "$(docker images -q --filter label=io.dms.job=$WEB | wc -l)" = 0 ] && break; sleep 0.5; done
check "  its images are gone (had $IMGS)" [ "$(docker images -q --filter label=io.dms.job=$WEB | wc -l)" = 0 ]
check "  its data dir is gone" [ ! -e "$DMS_DATA_DIR/droids/$WEB" ]
check "  the name is free again" bash -c "DMS_TOKEN=$ALICE $DMSCTL available web >/dev/null"
for id in $(api "$ALICE" GET /droids | jq -r '.[].id'); do ctl rm "$id" >/dev/null || failed "rm $id"; done
check "every droid deleted" [ "$(api "$ALICE" GET /droids | jq length)" = 0 ]
check "no container of this dmsd is left" [ "$(docker ps -aq --filter label=io.dms.executor=$DMS_EXECUTOR_ID | wc -l)" = 0 ]
for _ in $(seq 120); do [ "$(docker images -q --filter label=io.dms.executor=$DMS_EXECUTOR_ID | wc -l)" = 0 ] && break; sleep 0.5; done
check "no image of this dmsd is left" [ "$(docker images -q --filter label=io.dms.executor=$DMS_EXECUTOR_ID | wc -l)" = 0 ]
check "no volume of this dmsd is left (deleted with their droids)" [ "$(docker volume ls -q --filter label=io.dms.executor=$DMS_EXECUTOR_ID | wc -l)" = 0 ]

echo "e2e: $PASS passed, $FAILS failed"
[ "$FAILS" = 0 ] || { echo "e2e: dmsd log: $WORK/dmsd.log"; KEEP_WORK=1; }
[ "$FAILS" = 0 ]
