#!/usr/bin/env bash
# bench/compose.sh - examples/compose-app deployed and redeployed by dmsd, against Debian's docker-compose on the
# same file, in the same run (issue 14, Bench).
#
#   bench/compose.sh [BUILD_DIR] [ROUNDS] [JSON]  (default: build, 3 rounds; needs docker-compose, jq, git)
#   bench/run compose                             (the same, its figures added to the run's results JSON)
#   make bench-compose
#
# Each round, both halves, in an order that alternates from round to round (so neither always gets a warmer
# machine):
#   compose  a copy of the example: `docker-compose up -d --build`, timed until the command has returned and
#            the api answers /api/hello on its container address ("create"); then a change to the frontend and
#            `up -d --build` again, timed until the api serves the changed page ("redeploy"); then
#            `down -v --rmi local`.
#   dmsd     the example as a git repository: POST /droids (dmsctl create), timed until the droid is running
#            and its route answers /api/hello ("create"); then the same change committed and PATCH {branch}
#            (dmsctl update), timed until the droid runs release 2 and the route serves the changed page
#            ("redeploy"); then DELETE.
# Every half builds code no other half built (a nonce in the frontend and the worker), so no build is a pure
# cache hit of the other's: a create rebuilds every service's code layers from the local base images, a
# redeploy the api's only, as a real commit would. Prints each round, the p50s, and a SUMMARY line with the
# ratios dmsd/compose (p50s). With JSON, the figures go into that file under "compose".
#
# BENCH_COMPOSE_DMSD=0 runs the compose half alone (no ratios). The dmsd half needs a dmsd that runs compose
# droids; a droid that fails fails the run, with its reason. Runs its own dmsd (own data dir, executor id and
# proxy port) and leaves nothing behind (checked): compose projects dmsex-<pid>-*, the executor's containers,
# networks, volumes and images, and the untagged images its builds leave (label dms-example=compose-app).
set -u
BUILD=${1:-build}
ROUNDS=${2:-3}
JSON_OUT=${3:-}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
EXAMPLE=$ROOT/examples/compose-app
DMSD=$ROOT/$BUILD/bin/dmsd
DMSCTL=$ROOT/$BUILD/bin/dmsctl
WITH_DMSD=${BENCH_COMPOSE_DMSD:-1}
WAIT_S=${BENCH_COMPOSE_WAIT_S:-300} # each create or redeploy, bounded
POLL_S=0.1
EXAMPLE_LABEL=dms-example=compose-app
PROJECT=dmsex-$$

say() { printf 'compose: %s\n' "$*"; }
die() { printf 'compose: %s\n' "$*" >&2; exit 1; }

command -v docker-compose >/dev/null || { echo "compose: needs docker-compose (scripts/install-deps --all)"; exit 2; }
command -v jq >/dev/null || { echo "compose: needs jq"; exit 2; }
[[ "$ROUNDS" =~ ^[1-9][0-9]?$ ]] || { echo "compose: ROUNDS must be 1 to 99"; exit 2; }
[[ "$WAIT_S" =~ ^[1-9][0-9]{0,3}$ ]] || { echo "compose: BENCH_COMPOSE_WAIT_S must be 1 to 9999"; exit 2; }
for img in dms-stack/python:latest dms-stack/node:latest; do
    docker image inspect "$img" >/dev/null 2>&1 || { echo "compose: $img missing (scripts/stack-images)"; exit 2; }
done
if [ "$WITH_DMSD" = 1 ]; then
    for b in "$DMSD" "$DMSCTL"; do [ -x "$b" ] || { echo "compose: $b missing (make)"; exit 2; }; done
fi
# Debian's docker-compose (v1) builds with docker-py and the classic builder unless told otherwise.
export COMPOSE_DOCKER_CLI_BUILD=0 DOCKER_BUILDKIT=0

WORK=$(mktemp -d /tmp/dmsd-compose.XXXXXX)
export DMS_EXECUTOR_ID=bench-compose-$$
DMS_JWT_SECRET=$(head -c 32 /dev/urandom | base64 | tr -d '/+=')
export DMS_JWT_SECRET
export DMS_DATA_DIR=$WORK/var
export DMS_LOCAL_REPO_ROOTS=$WORK # the repositories (the data dir beneath is never read from)
export DMS_LOG_LEVEL=info
export DMS_PROXY_LISTEN=127.0.0.1:0
export DMS_PLUGIN_DIR=${DMS_PLUGIN_DIR:-$ROOT/$BUILD/plugins}
DMSD_PID=

# Every compose project of this run, stopped and removed with its volumes and built images.
compose_down_all() {
    local p
    for p in $(docker ps -a --filter "label=com.docker.compose.project" --format '{{.Label "com.docker.compose.project"}}' |
        grep "^$PROJECT-" | sort -u); do
        docker-compose -p "$p" -f "$EXAMPLE/compose.yaml" down -v --rmi local >/dev/null 2>&1
    done
}
cleanup() {
    [ -n "$DMSD_PID" ] && kill "$DMSD_PID" 2>/dev/null && wait "$DMSD_PID" 2>/dev/null
    compose_down_all
    local l=label=io.dms.executor=$DMS_EXECUTOR_ID
    docker ps -aq --filter "$l" | xargs -r docker rm -f >/dev/null 2>&1
    docker images -q --filter "$l" | sort -u | xargs -r docker rmi -f >/dev/null 2>&1
    docker network ls -q --filter "$l" | xargs -r docker network rm >/dev/null 2>&1
    docker volume ls -q --filter "$l" | xargs -r docker volume rm >/dev/null 2>&1
    docker image prune -f --filter "label=$EXAMPLE_LABEL" >/dev/null 2>&1
    [ "${KEEP_WORK:-0}" = 1 ] || rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

now_ms() { echo $(($(date +%s%N) / 1000000)); }

# Writes a fresh copy of the example into $1 whose frontend and worker carry the nonce $2 (new code layers).
example_copy() {
    rm -rf "$1" && cp -r "$EXAMPLE/." "$1" || return 1
    printf '# bench nonce %s\n' "$2" >>"$1/worker/worker.py"
    mark_page "$1" "$2"
}
# The change of a redeploy: the page the api serves says $2.
mark_page() {
    sed -i "s|<footer>.*</footer>|<footer>bench $2, built <span id=\"built\">__BUILD_TIME__</span></footer>|" \
        "$1/frontend/src/index.html" && grep -q "bench $2," "$1/frontend/src/index.html" ||
        { echo "compose: cannot mark $1/frontend/src/index.html (its <footer> line changed?)" >&2; return 1; }
}

# Polls until the URL answers 200 with a body containing $2 (empty: any 200), or $WAIT_S passes. 0 or 1.
wait_answer() {
    local deadline=$(($(date +%s) + WAIT_S)) body
    while [ "$(date +%s)" -lt "$deadline" ]; do
        if body=$(curl -sf --max-time 2 "$1") && [[ "$body" == *"$2"* ]]; then return 0; fi
        sleep "$POLL_S"
    done
    echo "compose: $1 did not answer${2:+ with \"$2\"} within ${WAIT_S}s" >&2
    return 1
}

# ---- the docker-compose half ----
# Prints "create_ms redeploy_ms".
compose_round() {
    local dir=$WORK/compose-$1 p=$PROJECT-$1 t0 create redeploy ip
    example_copy "$dir" "compose-$1-$RANDOM$RANDOM" || return 1
    t0=$(now_ms)
    (cd "$dir" && docker-compose -p "$p" up -d --build) >"$WORK/compose-$1.log" 2>&1 ||
        { tail -20 "$WORK/compose-$1.log" >&2; return 1; }
    ip=$(docker inspect -f '{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}' "${p}_api_1") || return 1
    wait_answer "http://$ip:8080/api/hello" '"visits"' || return 1
    create=$(($(now_ms) - t0))

    local nonce=redeploy-compose-$1-$RANDOM$RANDOM
    mark_page "$dir" "$nonce" || return 1
    t0=$(now_ms)
    (cd "$dir" && docker-compose -p "$p" up -d --build) >>"$WORK/compose-$1.log" 2>&1 ||
        { tail -20 "$WORK/compose-$1.log" >&2; return 1; }
    ip=$(docker inspect -f '{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}' "${p}_api_1") || return 1
    wait_answer "http://$ip:8080/" "$nonce" || return 1
    redeploy=$(($(now_ms) - t0))
    # The worker really ran: its heartbeat is in the volume, as the api reads it.
    wait_answer "http://$ip:8080/api/worker" '"beats"' || return 1
    (cd "$dir" && docker-compose -p "$p" down -v --rmi local) >>"$WORK/compose-$1.log" 2>&1 || return 1
    echo "$create $redeploy"
}

# ---- the dmsd half ----
start_dmsd() {
    "$DMSD" --listen 127.0.0.1:0 --port-file "$WORK/port" >"$WORK/dmsd.log" 2>&1 &
    DMSD_PID=$!
    for _ in $(seq 100); do [ -s "$WORK/port" ] && break; sleep 0.1; done
    [ -s "$WORK/port" ] || { tail "$WORK/dmsd.log"; die "dmsd did not start"; }
    DMS_URL=http://127.0.0.1:$(cat "$WORK/port")
    export DMS_URL
    DMS_TOKEN=$("$DMSCTL" token bench) || die "dmsctl token failed"
    export DMS_TOKEN
}

# Polls until the droid runs release $2 ("release" of its status) and its route serves $4 at path $3; prints
# the route's URL. A failed droid ends the wait at once, with its reason.
wait_droid() {
    local deadline=$(($(date +%s) + WAIT_S)) st s url
    while [ "$(date +%s)" -lt "$deadline" ]; do
        st=$("$DMSCTL" --json status "$1" 2>/dev/null) || st='{}'
        s=$(jq -r .status <<<"$st")
        if [ "$s" = failed ]; then
            echo "compose: droid $1 failed: $(jq -r .reason <<<"$st")" >&2
            "$DMSCTL" logs --build "$1" 2>/dev/null | tail -15 >&2
            return 1
        fi
        url=$(jq -r '.route_url // empty' <<<"$st")
        if [ "$s" = running ] && [ "$(jq -r .release <<<"$st")" = "$2" ] && [ -n "$url" ]; then
            wait_answer "${url%/}$3" "$4" || return 1
            echo "$url"
            return 0
        fi
        sleep "$POLL_S"
    done
    echo "compose: droid $1 did not run release $2 within ${WAIT_S}s ($(jq -c '{status, reason}' <<<"$st"))" >&2
    return 1
}

git_commit() { git -C "$1" add -A && git -C "$1" -c user.email=bench@dms -c user.name=bench commit -qm "$2"; }

# Prints "create_ms redeploy_ms".
dmsd_round() {
    local src=$WORK/src-$1 repo=$WORK/app-$1.git name=compose-$1 t0 create redeploy id url
    example_copy "$src" "dmsd-$1-$RANDOM$RANDOM" || return 1
    git -C "$src" init -q -b main && git_commit "$src" "compose-app, round $1" || return 1
    git clone -q --bare "$src" "$repo" || return 1
    t0=$(now_ms)
    id=$("$DMSCTL" --json create "$name" --repo "$repo" | jq -r .id) && [ -n "$id" ] && [ "$id" != null ] ||
        { echo "compose: dmsctl create $name failed" >&2; return 1; }
    url=$(wait_droid "$id" 1 /api/hello '"visits"') || return 1
    create=$(($(now_ms) - t0))

    local nonce=redeploy-dmsd-$1-$RANDOM$RANDOM
    mark_page "$src" "$nonce" || return 1
    git_commit "$src" "redeploy, round $1" && git -C "$src" push -q "$repo" main || return 1
    t0=$(now_ms)
    "$DMSCTL" update "$id" --branch main >/dev/null || { echo "compose: dmsctl update $name failed" >&2; return 1; }
    wait_droid "$id" 2 / "$nonce" >/dev/null || return 1
    redeploy=$(($(now_ms) - t0))
    wait_answer "${url%/}/api/worker" '"beats"' || return 1
    "$DMSCTL" rm "$id" >/dev/null || { echo "compose: dmsctl rm $name failed" >&2; return 1; }
    echo "$create $redeploy"
}

# ---- the run ----
[ "$WITH_DMSD" = 1 ] && start_dmsd
say "examples/compose-app, $ROUNDS rounds; docker-compose $(docker-compose version --short 2>/dev/null)${DMS_URL:+, dmsd at $DMS_URL}"
c_create=() c_redeploy=() d_create=() d_redeploy=()
for i in $(seq "$ROUNDS"); do
    halves=(compose dmsd)
    [ $((i % 2)) = 0 ] && halves=(dmsd compose)
    for h in "${halves[@]}"; do
        [ "$h" = dmsd ] && [ "$WITH_DMSD" != 1 ] && continue
        hint=
        [ "$h" = dmsd ] && hint=" (it needs a dmsd that runs compose droids; BENCH_COMPOSE_DMSD=0 runs the other half alone)"
        out=$("${h}_round" "$i") || die "round $i: the $h half failed$hint"
        read -r cr rd <<<"$out"
        if [ "$h" = compose ]; then c_create+=("$cr") c_redeploy+=("$rd"); else d_create+=("$cr") d_redeploy+=("$rd"); fi
        printf '  round %d %-8s create %6d ms  redeploy %6d ms\n' "$i" "$h" "$cr" "$rd"
    done
done

p50() { printf '%s\n' "$@" | sort -n | awk '{ v[NR] = $1 } END { print v[int((NR - 1) / 2) + 1] }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
CC=$(p50 "${c_create[@]}") CR=$(p50 "${c_redeploy[@]}")
printf '  %-8s create p50 %6d ms  redeploy p50 %6d ms\n' compose "$CC" "$CR"
if [ "$WITH_DMSD" = 1 ]; then
    DC=$(p50 "${d_create[@]}") DR=$(p50 "${d_redeploy[@]}")
    printf '  %-8s create p50 %6d ms  redeploy p50 %6d ms\n' dmsd "$DC" "$DR"
fi

# Nothing left behind: dmsd's and compose's containers, networks, volumes and images, untagged images.
if [ -n "$DMSD_PID" ]; then kill "$DMSD_PID" && wait "$DMSD_PID"; fi
DMSD_PID=
cleanup_left() {
    local l=label=io.dms.executor=$DMS_EXECUTOR_ID n=0
    n=$((n + $(docker ps -aq --filter "$l" | wc -l) + $(docker network ls -q --filter "$l" | wc -l)))
    n=$((n + $(docker volume ls -q --filter "$l" | wc -l)))
    n=$((n + $(docker ps -a --format '{{.Names}}' | grep -c "^$PROJECT-")))
    n=$((n + $(docker network ls --format '{{.Name}}' | grep -c "^$PROJECT-")))
    n=$((n + $(docker volume ls --format '{{.Name}}' | grep -c "^$PROJECT-")))
    n=$((n + $(docker images --format '{{.Repository}}' | grep -c "^$PROJECT-")))
    n=$((n + $(docker images -q --filter dangling=true --filter "label=$EXAMPLE_LABEL" | wc -l)))
    echo "$n"
}
# What a deleted droid and `down -v --rmi local` do not remove: the untagged images the example's builds leave
# (the frontend's build stage, the api image a redeploy replaced), this run's and, if another copy of the
# example builds at the same time, its: they are only cache.
docker image prune -f --filter "label=$EXAMPLE_LABEL" >/dev/null
left=$(cleanup_left)
[ "$left" = 0 ] || die "$left containers, networks, volumes or images left behind"

if [ "$WITH_DMSD" = 1 ]; then
    echo "SUMMARY compose: create p50 dmsd $DC ms, docker-compose $CC ms (dmsd/compose $(ratio "$DC" "$CC")); redeploy p50 dmsd $DR ms, docker-compose $CR ms (dmsd/compose $(ratio "$DR" "$CR"))"
else
    echo "SUMMARY compose: create p50 docker-compose $CC ms, redeploy p50 docker-compose $CR ms (dmsd half not run)"
fi
if [ -n "$JSON_OUT" ]; then
    arr() { printf '%s\n' "$@" | jq -s -c 'map(select(. != null))'; }
    c=$(jq -n --argjson cr "$(arr "${c_create[@]}")" --argjson rd "$(arr "${c_redeploy[@]}")" \
        --argjson cp "$CC" --argjson rp "$CR" '{create_ms: $cr, redeploy_ms: $rd, create_p50: $cp, redeploy_p50: $rp}')
    d=null
    if [ "$WITH_DMSD" = 1 ]; then
        d=$(jq -n --argjson cr "$(arr "${d_create[@]}")" --argjson rd "$(arr "${d_redeploy[@]}")" \
            --argjson cp "$DC" --argjson rp "$DR" \
            '{create_ms: $cr, redeploy_ms: $rd, create_p50: $cp, redeploy_p50: $rp}')
    fi
    w=$(jq -n --argjson n "$ROUNDS" --argjson c "$c" --argjson d "$d" \
        '{rounds: $n, docker_compose: $c, dmsd: $d, unit: "ms"} |
         if $d then .ratio = {create: ($d.create_p50 / $c.create_p50), redeploy: ($d.redeploy_p50 / $c.redeploy_p50)} else . end')
    if [ -s "$JSON_OUT" ]; then
        jq --argjson w "$w" '.compose = $w' "$JSON_OUT" >"$JSON_OUT.tmp" && mv "$JSON_OUT.tmp" "$JSON_OUT"
    else
        jq -n --argjson w "$w" '{compose: $w}' >"$JSON_OUT"
    fi
fi
