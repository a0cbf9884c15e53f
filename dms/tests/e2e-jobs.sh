#!/usr/bin/env bash
# dms/tests/e2e-jobs.sh - end-to-end test of issue 8 against the real Docker engine: build jobs (the koalaCI
# /job API), builds without a Dockerfile (stack detection) and droids that follow their branch (push hook and
# polling). Local git repositories only; the stack images of scripts/stack-images; one npm package from the npm
# registry for the cache check (set E2E_NO_NPM_REGISTRY=1 to leave that check out).
#
#   dms/tests/e2e-jobs.sh [BUILD_DIR]      (default: build; needs scripts/stack-images run before)
#
# Its own dmsd (own data dir and DMS_EXECUTOR_ID), killed with -9 once on purpose; nothing is left behind:
# every container, image and volume carrying its executor label is gone at the end (checked), and the droids'
# network it made is removed.
set -u
BUILD=${1:-build}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
DMSD=$ROOT/$BUILD/bin/dmsd
DMSCTL=$ROOT/$BUILD/bin/dmsctl
for b in "$DMSD" "$DMSCTL"; do [ -x "$b" ] || { echo "e2e-jobs: $b missing (make BUILD=$BUILD dmsd dmsctl)"; exit 2; }; done
command -v jq >/dev/null || { echo "e2e-jobs: needs jq"; exit 2; }
for img in $("$ROOT/scripts/stack-images" --list); do
    docker image inspect "$img" >/dev/null 2>&1 || { echo "e2e-jobs: $img missing: run scripts/stack-images"; exit 2; }
done

WORK=$(mktemp -d /tmp/dmsd-e2e-jobs.XXXXXX)
export DMS_EXECUTOR_ID=e2ej-$$
export DMS_JWT_SECRET=$(head -c 32 /dev/urandom | base64 | tr -d '/+=')
export DMS_DATA_DIR=$WORK/var
export DMS_LOG_LEVEL=${DMS_LOG_LEVEL:-info}
export DMS_JOB_CONCURRENCY=2
export DMS_JOB_USER_MAX=2 # one user (alice) runs the two long jobs below at once
export DMS_FOLLOW_INTERVAL_S=2
export DMS_PLUGIN_DIR=${DMS_PLUGIN_DIR:-$ROOT/$BUILD/plugins}
E2E_NAME=e2e-jobs
# shellcheck source=dms/tests/lib.sh
. "$ROOT/dms/tests/lib.sh"
trap cleanup EXIT

ALICE=$("$DMSCTL" token alice)
BOB=$("$DMSCTL" token bob)
code() { cat "$WORK/status"; }
errfield() { jq -r .field "$WORK/body"; }
repo() { # repo NAME FILE TEXT [FILE TEXT...] -> a bare repository $WORK/NAME.git with one commit on main
    local n=$1 w=$WORK/src-$1
    shift
    git init -q -b main "$w" || return 1
    while [ $# -gt 0 ]; do
        mkdir -p "$(dirname "$w/$1")" && printf '%b' "$2" >"$w/$1"
        shift 2
    done
    git -C "$w" add . && git -C "$w" -c user.email=e2e@dms -c user.name=e2e commit -qm init &&
        git clone -q --bare "$w" "$WORK/$n.git"
}
commit() { # commit NAME FILE TEXT: a new commit on main, pushed
    local w=$WORK/src-$1
    printf '%b' "$3" >"$w/$2" && git -C "$w" add . && git -C "$w" -c user.email=e2e@dms -c user.name=e2e commit -qm next &&
        git -C "$w" push -q "$WORK/$1.git" main
}
job_body() { # job_body PROJECT DEPLOYMENT REPO COMMAND PM DIST
    jq -cn --arg p "$1" --arg d "$2" --arg r "$WORK/$3.git" --arg c "$4" --arg m "$5" --arg t "$6" \
        '{project_id:$p, deployment_id:$d, project_branch:"main", project_repo_url:$r,
          project_build_command:$c, project_package_manager:$m, project_dist_directory:$t}'
}
create_job() { api "$ALICE" POST /job/create "$(job_body "$@")" | jq -r .id; }
job() { api "$ALICE" GET "/job/$1" | jq -r ".data.$2"; }
job_log() { api "$ALICE" GET "/job/$1/log" | jq -r .data; }
wait_job() { # wait_job ID STATUS SECONDS
    local s
    for _ in $(seq $(($3 * 5))); do
        s=$(job "$1" status)
        [ "$s" = "$2" ] && return 0
        case "$s" in succeeded | failed | cancelled) break ;; esac
        sleep 0.2
    done
    echo "    (job $1 is $s: $(job "$1" reason), not $2)"
    return 1
}
wait_step() { # wait_step ID STEP SECONDS
    for _ in $(seq $(($3 * 10))); do [ "$(job "$1" step)" = "$2" ] && [ "$(job "$1" status)" = running ] && return 0; sleep 0.1; done
    return 1
}
droid() { api "$ALICE" GET "/droids/$1" | jq -r ".$2"; }
wait_droid() { # wait_droid ID STATUS SECONDS
    local s
    for _ in $(seq $(($3 * 5))); do
        s=$(droid "$1" status)
        [ "$s" = "$2" ] && return 0
        sleep 0.2
    done
    echo "    (droid $1 is $s: $(droid "$1" reason), not $2)"
    return 1
}
serves() { # serves ID TEXT SECONDS: the droid's current url answers TEXT
    local body
    for _ in $(seq $(($3 * 5))); do
        body=$(curl -s --max-time 2 "$(droid "$1" url)/" 2>/dev/null)
        [[ "$body" == *"$2"* ]] && return 0
        sleep 0.2
    done
    echo "    (droid $1 answers \"$body\", not \"$2\")"
    return 1
}
containers_of_job() { docker ps -aq --filter label=io.dms.job=$1 --filter label=io.dms.executor=$DMS_EXECUTOR_ID | wc -l; }

# ---- fixtures ----
repo site package.json '{"name":"site","version":"1.0.0","scripts":{"build":"node build.js"}}\n' \
    build.js 'const fs=require("fs");fs.mkdirSync("dist/assets",{recursive:true});\nfs.writeFileSync("dist/index.html","<h1>site "+process.env.DMS_DEPLOYMENT_ID+"</h1>\\n");\nfs.writeFileSync("dist/assets/app.js","console.log(1)\\n");\nconsole.log("built with node "+process.version);\n'
repo pysite requirements.txt '# the standard library is enough\n' \
    build.py 'import os\nos.makedirs("out", exist_ok=True)\nopen("out/page.txt", "w").write("made by python\\n")\nprint("python build done")\n'
repo plain Makefile 'all:\n\tmkdir -p public && echo plain > public/index.txt\n'
repo npmdep package.json '{"name":"npmdep","version":"1.0.0","dependencies":{"is-number":"7.0.0"},"scripts":{"build":"mkdir -p dist && node -e \\"require(\x27is-number\x27); require(\x27fs\x27).writeFileSync(\x27dist/ok\x27,\x27ok\x27)\\""}}\n'
repo yarnsite package.json '{"name":"yarnsite","version":"1.0.0","scripts":{"build":"mkdir -p dist && echo yarn > dist/y.txt"}}\n'
# stacks without a Dockerfile
repo st-static index.html '<h1>static page</h1>\n'
repo st-shell start.sh 'mkdir -p /tmp/w && echo "shell app" > /tmp/w/index.html\nexec httpd -f -p "$PORT" -h /tmp/w\n'
repo st-node package.json '{"name":"n","version":"1.0.0","scripts":{"start":"node server.js"}}\n' \
    server.js 'require("http").createServer((q,s)=>s.end("node app "+process.version+"\\n")).listen(process.env.PORT);\n'
repo st-python requirements.txt '\n' app.py 'import http.server, os\nclass H(http.server.BaseHTTPRequestHandler):\n    def do_GET(self):\n        self.send_response(200); self.end_headers(); self.wfile.write(b"python app\\n")\nhttp.server.HTTPServer(("", int(os.environ["PORT"])), H).serve_forever()\n'
repo st-none README.md 'nothing to run here\n'
repo st-lang index.html '<h1>not served as static</h1>\n' start.sh 'mkdir -p /tmp/w && echo "shell by language" > /tmp/w/index.html\nexec httpd -f -p "$PORT" -h /tmp/w\n'
repo follow index.html '<h1>follow v1</h1>\n'
repo poll index.html '<h1>poll v1</h1>\n'

start_dmsd
echo "e2e-jobs: dmsd at $DMS_URL, executor $DMS_EXECUTOR_ID, data $DMS_DATA_DIR"

echo "jobs: the API's answers"
api "" POST /job/create "$(job_body p1 d1 site 'npm run build' npm dist)" >/dev/null
check "no token -> 401" [ "$(code)" = 401 ]
api "$ALICE" POST /job/create '{"project_id":"p1"}' >/dev/null
check "a payload without deployment_id -> 400 naming it" [ "$(code)" = 400 -a "$(errfield)" = deployment_id ]
api "$ALICE" POST /job/create "$(job_body p1 d1 site 'npm run build' bower dist)" >/dev/null
check "an unknown package manager -> 400 naming it" [ "$(code)" = 400 -a "$(errfield)" = project_package_manager ]
api "$ALICE" POST /job/create "$(job_body p1 d1 site 'npm run build' npm ../x)" >/dev/null
check "a dist directory outside the repo -> 400 naming it" [ "$(code)" = 400 -a "$(errfield)" = project_dist_directory ]
api "$ALICE" POST /job/create 'not json' >/dev/null
check "a body that is not JSON -> 400 on body" [ "$(code)" = 400 -a "$(errfield)" = body ]

echo "jobs: create -> log -> finish, artifact"
J1=$(create_job web d1 site 'npm run build' npm dist)
check "create -> 200 {data: OK, id}" [ "$(code)" = 200 -a -n "$J1" -a "$(jq -r .data "$WORK/body")" = OK ]
curl -s -N --max-time 120 -H "Authorization: Bearer $ALICE" "$DMS_URL/job/$J1/log?follow=1" >"$WORK/follow.log"
check "the followed log ends when the job ends, with the build's output" grep -q "built with node v" "$WORK/follow.log"
check "  and the job's last line" grep -q "job $J1 succeeded" "$WORK/follow.log"
check "job succeeded" wait_job "$J1" succeeded 5
check "GET log -> {data} with every step done" bash -c "[ \"\$(curl -s -H 'Authorization: Bearer $ALICE' $DMS_URL/job/$J1/log | jq -r .data | grep -c '^\[dms\] step [a-z]* done in ')\" = 3 ]"
check "the log names the commit it built" grep -q "checked out $(git -C "$WORK/src-site" rev-parse HEAD)" "$WORK/follow.log"
curl -s -H "Authorization: Bearer $ALICE" -o "$WORK/a.tar" -w '%{http_code} %{content_type}' "$DMS_URL/job/$J1/artifact" >"$WORK/status"
check "artifact -> 200 application/x-tar" [ "$(cat "$WORK/status")" = "200 application/x-tar" ]
check "  it holds the dist directory" bash -c "tar -tf $WORK/a.tar | sort | tr '\n' ' ' | grep -q '^./ ./assets/ ./assets/app.js ./index.html $'"
check "  with what the build wrote" [ "$(tar -xOf "$WORK/a.tar" ./index.html)" = "<h1>site d1</h1>" ]
check "  its size is the job's artifact.bytes" [ "$(stat -c %s "$WORK/a.tar")" = "$(job "$J1" artifact.bytes)" ]
check "the deployment id names the job too" [ "$(api "$ALICE" GET /job/d1 | jq -r .data.id)" = "$J1" ]
check "the clone is removed after the job" [ ! -e "$DMS_DATA_DIR/jobs/$J1/src" ]
check "no container of the job is left" [ "$(containers_of_job "$J1")" = 0 ]

echo "jobs: per user"
for p in "/job/$J1" "/job/$J1/log" "/job/$J1/artifact" "/job/d1"; do
    api "$BOB" GET "$p" >/dev/null
    check "another user's GET $p -> 404" [ "$(code)" = 404 ]
done
api "$BOB" PATCH "/job/$J1/cancel" >/dev/null
check "another user's cancel -> 404" [ "$(code)" = 404 ]
check "another user's list is empty" [ "$(api "$BOB" GET /jobs | jq '.data | length')" = 0 ]

echo "jobs: the dependency cache of a project"
check "the first job of the project found a cold cache" bash -c "[ \"\$(curl -s -H 'Authorization: Bearer $ALICE' $DMS_URL/job/$J1 | jq .data.cache.warm)\" = false ]"
J2=$(create_job web d2 site 'npm run build' npm dist)
check "the second job of the project succeeds" wait_job "$J2" succeeded 120
check "  its install found the cache the first one filled" bash -c "curl -s -H 'Authorization: Bearer $ALICE' $DMS_URL/job/$J2/log | jq -r .data | grep -q 'dependency cache: warm (filled by job $J1 '"
check "  and says so in the job" [ "$(job "$J2" cache.warm)" = true ]
check "  in the same volume" [ "$(job "$J2" cache.volume)" = "$(job "$J1" cache.volume)" ]
VOL=$(job "$J1" cache.volume)
check "the cache volume carries the executor's labels" \
    [ "$(docker volume inspect -f '{{index .Labels "io.dms.executor"}}' "$VOL")" = "$DMS_EXECUTOR_ID" ]
JB=$(api "$BOB" POST /job/create "$(job_body web bd1 site 'npm run build' npm dist)" | jq -r .id)
for _ in $(seq 300); do [ "$(api "$BOB" GET "/job/$JB" | jq -r .data.status)" = succeeded ] && break; sleep 0.3; done
check "bob's job of a project of the same name succeeds" [ "$(api "$BOB" GET "/job/$JB" | jq -r .data.status)" = succeeded ]
check "  with a cold cache in a volume of its own" \
    [ "$(api "$BOB" GET "/job/$JB" | jq -r .data.cache.warm)" = false -a "$(jq -r .data.cache.volume "$WORK/body")" != "$VOL" ]
if [ "${E2E_NO_NPM_REGISTRY:-0}" != 1 ]; then
    N1=$(create_job npmdep n1 npmdep 'npm run build' npm dist)
    check "a job with a registry dependency succeeds" wait_job "$N1" succeeded 180
    check "  its first install downloads the package (npm cache miss)" bash -c "curl -s -H 'Authorization: Bearer $ALICE' $DMS_URL/job/$N1/log | jq -r .data | grep -q 'is-number-7.0.0.tgz.*cache miss'"
    N2=$(create_job npmdep n2 npmdep 'npm run build' npm dist)
    check "the second job of that project succeeds" wait_job "$N2" succeeded 180
    check "  without downloading the package again" bash -c "! curl -s -H 'Authorization: Bearer $ALICE' $DMS_URL/job/$N2/log | jq -r .data | grep -q 'is-number-7.0.0.tgz.*cache miss'"
    echo "    (install: $(job "$N1" install_ms) ms cold, $(job "$N2" install_ms) ms warm)"
fi

echo "jobs: other package managers"
JP=$(create_job pysite p1 pysite 'python3 build.py' pip out)
check "a pip job succeeds (venv, requirements.txt)" wait_job "$JP" succeeded 120
check "  its artifact holds what python wrote" bash -c "curl -s -H 'Authorization: Bearer $ALICE' $DMS_URL/job/$JP/artifact | tar -xOf - ./page.txt | grep -qx 'made by python'"
JN=$(create_job plain p1 plain 'make || (mkdir -p public && echo plain > public/index.txt)' none public)
check "a job without a package manager runs the command in the base image" wait_job "$JN" succeeded 60
check "  and has no cache volume" [ "$(job "$JN" cache.volume)" = null ]
JY=$(create_job yarnsite y1 yarnsite 'yarn run build' yarn dist)
check "a yarn job succeeds" wait_job "$JY" succeeded 120

echo "jobs: failures"
JF=$(create_job web f1 site 'echo about to fail; exit 7' npm dist)
check "a failing build command -> failed" wait_job "$JF" failed 60
check "  with the step and its exit code" [ "$(job "$JF" reason)" = "step build exited with code 7" -a "$(job "$JF" exit_code)" = 7 ]
api "$ALICE" GET "/job/$JF/artifact" >/dev/null
check "  and no artifact (404)" [ "$(code)" = 404 ]
JD=$(create_job web f2 site 'true' npm nowhere)
check "a dist directory the build did not make -> failed" wait_job "$JD" failed 60
check "  saying which" bash -c "[[ \"\$(curl -s -H 'Authorization: Bearer $ALICE' $DMS_URL/job/$JD | jq -r .data.reason)\" == *'\"nowhere\" does not exist'* ]]"
JM=$(create_job pysite f3 pysite 'true' npm dist)
check "npm without a package.json -> failed, saying so" wait_job "$JM" failed 60
check "  (reason names the project file)" bash -c "curl -s -H 'Authorization: Bearer $ALICE' $DMS_URL/job/$JM/log | jq -r .data | grep -q 'no package.json'"
JR=$(api "$ALICE" POST /job/create "$(job_body web f4 site true npm dist | jq -c ".project_repo_url=\"$WORK/missing.git\"")" | jq -r .id)
check "an unreachable repository -> failed at clone" wait_job "$JR" failed 30
check "  (reason says clone)" bash -c "[[ \"\$(curl -s -H 'Authorization: Bearer $ALICE' $DMS_URL/job/$JR | jq -r .data.reason)\" == 'clone failed'* ]]"

echo "jobs: cancel, queue and concurrency"
LONG='echo started; sleep 300'
L1=$(create_job long l1 site "$LONG" none dist)
L2=$(create_job long l2 site "$LONG" none dist)
L3=$(create_job long l3 site "$LONG" none dist)
check "two long jobs run (DMS_JOB_CONCURRENCY=2)" bash -c "for i in \$(seq 100); do a=\$(curl -s -H 'Authorization: Bearer $ALICE' $DMS_URL/job/$L1 | jq -r .data.step); b=\$(curl -s -H 'Authorization: Bearer $ALICE' $DMS_URL/job/$L2 | jq -r .data.step); [ \$a = build -a \$b = build ] && exit 0; sleep 0.2; done; exit 1"
sleep 1
check "  the third waits in the queue" [ "$(job "$L3" status)" = queued ]
check "  and runs nothing" [ "$(containers_of_job "$L3")" = 0 ]
api "$ALICE" PATCH "/job/$L3/cancel" >/dev/null
check "cancel of a queued job -> 200 Queued for cancellation" [ "$(code)" = 200 -a "$(jq -r .data "$WORK/body")" = "Queued for cancellation" ]
check "  it is cancelled at once, never started" [ "$(job "$L3" status)" = cancelled -a "$(job "$L3" started_at)" = null ]
T0=$(date +%s%N)
api "$ALICE" PATCH "/job/l1/cancel" >/dev/null
check "cancel of a running job (by deployment id) -> 200" [ "$(code)" = 200 ]
check "  it ends cancelled" wait_job "$L1" cancelled 15
MS=$((($(date +%s%N) - T0) / 1000000))
check "  within the grace period (${MS} ms <= 5000 + 2000)" [ "$MS" -le 7000 ]
check "  its container is gone" [ "$(containers_of_job "$L1")" = 0 ]
check "  its reason names the step" [ "$(job "$L1" reason)" = "cancelled during build" ]
api "$ALICE" PATCH "/job/$L1/cancel" >/dev/null
check "cancel of a finished job -> 409" [ "$(code)" = 409 ]

echo "jobs: a dmsd killed during a job starts it again"
check "the second long job runs" [ "$(job "$L2" step)" = build ]
kill -9 "$DMSD_PID"
wait "$DMSD_PID" 2>/dev/null
start_dmsd
check "after the restart it runs again as attempt 2" bash -c "for i in \$(seq 100); do [ \"\$(curl -s -H 'Authorization: Bearer $ALICE' $DMS_URL/job/$L2 | jq -r '.data.attempt, .data.step' | tr '\n' ' ')\" = '2 build ' ] && exit 0; sleep 0.2; done; exit 1"
check "  its log keeps both attempts" bash -c "for i in \$(seq 50); do curl -s -H 'Authorization: Bearer $ALICE' $DMS_URL/job/$L2/log | jq -r .data | grep -c 'attempt . started' | grep -qx 2 && exit 0; sleep 0.2; done; exit 1"
check "  with one container (the first attempt's was stopped)" bash -c "for i in \$(seq 50); do [ \$(docker ps -q --filter label=io.dms.job=$L2 --filter label=io.dms.executor=$DMS_EXECUTOR_ID | wc -l) = 1 ] && exit 0; sleep 0.2; done; exit 1"
api "$ALICE" PATCH "/job/$L2/cancel" >/dev/null
check "  and it cancels" wait_job "$L2" cancelled 15

echo "stacks: builds without a Dockerfile"
declare -A STACK_TEXT=([static]="static page" [shell]="shell app" [node]="node app v" [python]="python app")
declare -A STACK_ID=()
for s in static shell node python; do
    STACK_ID[$s]=$(api "$ALICE" POST /droids "{\"name\":\"e2ej-$s-$$\",\"repo\":\"$WORK/st-$s.git\"}" | jq -r .id)
done
for s in static shell node python; do
    id=${STACK_ID[$s]}
    check "$s: the droid runs" wait_droid "$id" running 180
    check "$s: it answers on its port" serves "$id" "${STACK_TEXT[$s]}" 20
    check "$s: build.out shows the generated Dockerfile" bash -c "curl -s -H 'Authorization: Bearer $ALICE' '$DMS_URL/droids/$id/logs?build.out' | grep -q '^FROM dms-stack/'"
done
check "node: its Dockerfile starts with npm start" bash -c "curl -s -H 'Authorization: Bearer $ALICE' '$DMS_URL/droids/${STACK_ID[node]}/logs?build.out' | grep -qF 'CMD [\"sh\",\"-c\",\"npm start\"]'"
NONE=$(api "$ALICE" POST /droids "{\"name\":\"e2ej-none-$$\",\"repo\":\"$WORK/st-none.git\"}" | jq -r .id)
check "an undetectable repo fails" wait_droid "$NONE" failed 60
check "  saying what was looked for" bash -c "[[ \"\$(curl -s -H 'Authorization: Bearer $ALICE' $DMS_URL/droids/$NONE | jq -r .reason)\" == *package.json*requirements.txt*index.html*Procfile* ]]"
LANG_ID=$(api "$ALICE" POST /droids "{\"name\":\"e2ej-lang-$$\",\"repo\":\"$WORK/st-lang.git\",\"language\":\"shell\"}" | jq -r .id)
check "a language given wins over marker files (shell, not static)" serves "$LANG_ID" "shell by language" 120

echo "follow: a push hook rebuilds, the old release serves meanwhile"
FOLLOW=$(api "$ALICE" POST /droids "{\"name\":\"e2ej-follow-$$\",\"repo\":\"$WORK/follow.git\",\"follow\":true}")
FID=$(jq -r .id <<<"$FOLLOW")
SECRET=$(jq -r .hook_secret <<<"$FOLLOW")
check "create with follow:true returns the hook secret once" [ ${#SECRET} -ge 32 ]
check "  GET shows follow and the hook but not the secret" [ "$(api "$ALICE" GET "/droids/$FID" | jq -c '[.follow, .hook.secret_set, .hook_secret]')" = '[true,true,null]' ]
check "the followed droid serves v1" serves "$FID" "follow v1" 60
commit follow index.html '<h1>follow v2</h1>\n'
api "" POST "/droids/$FID/hooks/push" >/dev/null
check "a hook without a secret -> 401" [ "$(code)" = 401 ]
curl -s -o /dev/null -w '%{http_code}' -X POST -H "X-DMS-Hook-Secret: not-the-secret-at-all" "$DMS_URL/droids/$FID/hooks/push" >"$WORK/status"
check "a hook with a wrong secret -> 403" [ "$(code)" = 403 ]
curl -s -o /dev/null -w '%{http_code}' -X POST -H "X-DMS-Hook-Secret: $SECRET" "$DMS_URL/droids/d000000000000/hooks/push" >"$WORK/status"
check "the secret of another droid -> 403" [ "$(code)" = 403 ]
curl -s -o "$WORK/body" -w '%{http_code}' -X POST -H "X-DMS-Hook-Secret: $SECRET" -d '{"ref":"refs/heads/main"}' "$DMS_URL/droids/$FID/hooks/push" >"$WORK/status"
check "the hook with its secret -> 202 accepted" [ "$(code)" = 202 -a "$(jq -r .accepted "$WORK/body")" = true ]
# Polled through the droid's published port: a poll that fails because the url it used was just replaced
# (the switch to the new container) is not downtime; one whose url is still current is.
down=0
for _ in $(seq 300); do
    url=$(droid "$FID" url)
    body=$(curl -s --max-time 2 "$url/")
    [ "$body" = "<h1>follow v2</h1>" ] && break
    [ "$body" = "<h1>follow v1</h1>" ] || [ "$(droid "$FID" url)" != "$url" ] || down=$((down + 1))
    sleep 0.1
done
check "the new commit is deployed" [ "$body" = "<h1>follow v2</h1>" ]
check "  and every poll meanwhile got an answer ($down did not)" [ "$down" = 0 ]
check "  the droid's events say why" bash -c "curl -s -H 'Authorization: Bearer $ALICE' $DMS_URL/droids/$FID/events | jq -r '.[].reason' | grep -q 'moved to .*rebuild queued (follow)'"
check "  it runs the pushed commit" [ "$(droid "$FID" commit_sha)" = "$(git -C "$WORK/src-follow" rev-parse HEAD)" ]

echo "follow: polling (DMS_FOLLOW_INTERVAL_S=2) without a hook"
PID_=$(api "$ALICE" POST /droids "{\"name\":\"e2ej-poll-$$\",\"repo\":\"$WORK/poll.git\",\"follow\":true}" | jq -r .id)
check "the polled droid serves v1" serves "$PID_" "poll v1" 60
commit poll index.html '<h1>poll v2</h1>\n'
T0=$(date +%s)
check "a push is deployed without a hook" serves "$PID_" "poll v2" 60
echo "    (deployed $(($(date +%s) - T0)) s after the push)"
api "$ALICE" PATCH "/droids/$PID_" '{"follow":false}' >/dev/null
check "follow can be turned off" [ "$(code)" = 200 -a "$(jq -r .follow "$WORK/body")" = false ]
commit poll index.html '<h1>poll v3</h1>\n'
sleep 6
check "  then a push changes nothing" serves "$PID_" "poll v2" 2

echo "cleanup"
for id in $(api "$ALICE" GET /droids | jq -r '.[].id'); do api "$ALICE" DELETE "/droids/$id" >/dev/null; done
check "every droid deleted" [ "$(api "$ALICE" GET /droids | jq length)" = 0 ]
for p in web npmdep pysite yarnsite; do api "$ALICE" DELETE "/projects/$p/cache" >/dev/null; done
check "a project's cache can be dropped (then 404)" bash -c "[ \$(curl -s -o /dev/null -w '%{http_code}' -X DELETE -H 'Authorization: Bearer $ALICE' $DMS_URL/projects/web/cache) = 404 ]"
api "$BOB" DELETE "/projects/web/cache" >/dev/null
check "  bob drops his own" [ "$(code)" = 200 ]
check "no container of this dmsd is left" [ "$(docker ps -aq --filter label=io.dms.executor=$DMS_EXECUTOR_ID | wc -l)" = 0 ]
for _ in $(seq 120); do [ "$(docker images -q --filter label=io.dms.executor=$DMS_EXECUTOR_ID | wc -l)" = 0 ] && break; sleep 0.5; done
check "no image of this dmsd is left" [ "$(docker images -q --filter label=io.dms.executor=$DMS_EXECUTOR_ID | wc -l)" = 0 ]
check "no volume of this dmsd is left" [ "$(docker volume ls -q --filter label=io.dms.executor=$DMS_EXECUTOR_ID | wc -l)" = 0 ]

echo "e2e-jobs: $PASS passed, $FAILS failed"
[ "$FAILS" = 0 ] || { echo "e2e-jobs: dmsd log: $WORK/dmsd.log"; KEEP_WORK=1; }
[ "$FAILS" = 0 ]
