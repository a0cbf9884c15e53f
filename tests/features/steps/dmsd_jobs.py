"""Steps for dmsd's build jobs (the /job API), builds without a Dockerfile (stacks) and droids that follow their
branch (push hooks). Step text may name a job by placeholder: <job NAME> is the id of the scenario's job NAME."""
import hashlib
import hmac
import io
import json
import re
import subprocess
import tarfile
import time
import urllib.error
import urllib.request

from behave import given, step, then, when

from dmsfeat import engine
from dmsfeat.dmsdsteps import answer, call, droid, droid_id, expect_status, expand, fetch_page, host
from dmsfeat.steputil import eventually

JOB_POLL_INTERVAL_S = 0.2
SERVES_TIMEOUT_S = 20
STACK_IMAGES_SCRIPT = "scripts/stack-images"
JOB_ID = re.compile(r"^j[0-9a-f]{12}$")
HOOK_HEADER = "X-DMS-Hook-Secret"

# A valid job payload; a scenario changes one key of it.
GOOD_PAYLOAD = {"project_id": "web", "deployment_id": "d1", "project_branch": "main",
                "project_repo_url": "/srv/none.git", "project_build_command": "true",
                "project_package_manager": "none", "project_dist_directory": "."}


# ---- jobs of the scenario ----

def jobs(context):
    if not hasattr(context, "dmsd_jobs"):
        context.dmsd_jobs = {}  # name -> (user, id)
    return context.dmsd_jobs


def job_id(context, name):
    known = jobs(context)
    assert name in known, f"the scenario knows no job {name!r} (known: {', '.join(sorted(known)) or 'none'})"
    return known[name][1]


def job_user(context, name):
    return jobs(context)[name][0] if name in jobs(context) else "alice"


def expand_jobs(context, text):
    return expand(context, re.sub(r"<job ([A-Za-z0-9_-]+)>", lambda m: job_id(context, m.group(1)), text))


def get_job(context, name, user=None):
    a = host(context).request("GET", f"/job/{job_id(context, name)}", user or job_user(context, name))
    expect_status(a, 200)
    return a.json["data"]


def job_log(context, name):
    a = host(context).request("GET", f"/job/{job_id(context, name)}/log", job_user(context, name))
    expect_status(a, 200)
    return a.json["data"]


def wait_job(context, name, state, seconds, user=None):
    def probe():
        host(context).check_alive()
        j = get_job(context, name, user)
        if j["status"] != state and j["status"] in ("succeeded", "failed", "cancelled"):
            raise _Final(f"job {name} ended {j['status']}: {j.get('reason')}")
        assert j["status"] == state, f"it is {j['status']} (step {j.get('step')}, reason {j.get('reason')})"
        return j
    try:
        return eventually(probe, seconds, f"job {name} is {state}", interval_s=JOB_POLL_INTERVAL_S)
    except _Final as e:
        raise AssertionError(f"{e}\nits log:\n{job_log(context, name)[-3000:]}") from None


class _Final(Exception):
    """A job that ended otherwise: no point in waiting longer."""


def job_containers(context, name, running_only=False):
    args = ["ps", "--no-trunc", "--filter", f"label=io.dms.executor={host(context).executor_id}",
            "--filter", f"label=io.dms.job={job_id(context, name)}", "--format", "{{.ID}}"]
    if not running_only:
        args.insert(1, "-a")
    return [line for line in engine.docker(*args).splitlines() if line.strip()]


# ---- the machine ----

@given('the stack images are made')
def step_stack_images(context):
    p = subprocess.run([STACK_IMAGES_SCRIPT, "--list"], capture_output=True, text=True, check=True, timeout=30)
    missing = []
    for ref in p.stdout.split():
        if engine.docker("image", "inspect", "--format", "{{.Id}}", ref, check=False).strip() == "":
            missing.append(ref)
    assert not missing, f"stack images missing: {', '.join(missing)}; make them with {STACK_IMAGES_SCRIPT}"


@given('a git repository "{repo:Q}" with the file "{path:Q}"')
def step_repo_file(context, repo, path):
    context.dmsd_repos.create(repo, {path: context.text})


@given('the repository "{repo:Q}" also has the file "{path:Q}"')
def step_repo_more(context, repo, path):
    context.dmsd_repos.commit(repo, {path: context.text})


# ---- creating, reading and cancelling jobs ----

def create_job(context, user, name, project, deployment, repo):
    row = context.table[0]
    body = {"project_id": project, "deployment_id": deployment, "project_branch": "main",
            "project_repo_url": context.dmsd_repos.path(repo), "project_build_command": row["build command"],
            "project_package_manager": row["package manager"], "project_dist_directory": row["dist directory"]}
    a = call(context, "POST", "/job/create", user, body=body)
    if a.status == 200:
        jobs(context)[name] = (user, a.json["id"])
    return a


@when('{user:w} creates the job "{name:Q}" for the project "{project:Q}" and the deployment "{dep:Q}" of the '
      'repository "{repo:Q}" with')
def step_create_job(context, user, name, project, dep, repo):
    create_job(context, user, name, project, dep, repo)


@given('{user:w} created the job "{name:Q}" for the project "{project:Q}" and the deployment "{dep:Q}" of the '
       'repository "{repo:Q}" with')
def step_created_job(context, user, name, project, dep, repo):
    expect_status(create_job(context, user, name, project, dep, repo), 200)


@when('{user:w} posts a job whose "{key:Q}" is {value}')
def step_post_bad(context, user, key, value):
    body = dict(GOOD_PAYLOAD)
    if value == "missing":
        del body[key]
    else:
        body[key] = json.loads(value)
    call(context, "POST", "/job/create", user, body=body)


@then('the answer is {code:d} with the data "{text:Q}" and the job\'s id')
def step_answer_data_id(context, code, text):
    a = answer(context)
    expect_status(a, code)
    assert a.json.get("data") == text, f"data is not {text!r}: {a.describe()}"
    assert JOB_ID.match(a.json.get("id") or ""), f"no job id: {a.describe()}"


@then('the answer is {code:d} with the data "{text:Q}"')
def step_answer_data(context, code, text):
    a = answer(context)
    expect_status(a, code)
    assert a.json.get("data") == text, f"data is not {text!r}: {a.describe()}"


@when('{user:w} cancels the job "{name:Q}"')
def step_cancel(context, user, name):
    call(context, "PATCH", f"/job/{job_id(context, name)}/cancel", user)


@when('{user:w} fetches the artifact of the job "{name:Q}"')
def step_fetch_artifact(context, user, name):
    call(context, "GET", f"/job/{job_id(context, name)}/artifact", user)


@when('{user:w} drops the dependency cache of the project "{project:Q}"')
def step_drop_cache(context, user, project):
    call(context, "DELETE", f"/projects/{project}/cache", user)


@step('the job "{name:Q}" becomes "{state:Q}" within {seconds:d} seconds')
def step_job_becomes(context, name, state, seconds):
    wait_job(context, name, state, seconds)


@given('the job "{name:Q}" became "{state:Q}" within {seconds:d} seconds')
def step_job_became(context, name, state, seconds):
    wait_job(context, name, state, seconds)


@then('the job "{name:Q}" of {user:w} becomes "{state:Q}" within {seconds:d} seconds')
def step_job_of_becomes(context, name, user, state, seconds):
    wait_job(context, name, state, seconds, user)


@then('the job "{name:Q}" is "{state:Q}"')
def step_job_is(context, name, state):
    j = get_job(context, name)
    assert j["status"] == state, f"job {name} is {j['status']} ({j.get('reason')}), not {state}"


@then('the job "{name:Q}" is "{state:Q}" and never started')
def step_job_never_started(context, name, state):
    j = get_job(context, name)
    assert j["status"] == state and j["started_at"] is None and j["attempt"] == 0, f"job {name}: {j}"


@then('the reason of the job "{name:Q}" is "{text:Q}"')
def step_job_reason(context, name, text):
    j = get_job(context, name)
    assert j["reason"] == expand_jobs(context, text), f"job {name}'s reason is {j['reason']!r}"


@then('the job "{a:Q}" is the job "{b:Q}"')
def step_job_alias(context, a, b):
    a_ = host(context).request("GET", f"/job/{a}", job_user(context, b))
    expect_status(a_, 200)
    assert a_.json["data"]["id"] == job_id(context, b), f"/job/{a} is {a_.json['data']['id']}"


@then('the job "{name:Q}" left no container')
def step_job_no_container(context, name):
    left = job_containers(context, name)
    assert not left, f"job {name} left containers {left}"


@when('the jobs "{a:Q}" and "{b:Q}" run their build step')
def step_jobs_build(context, a, b):
    for name in (a, b):
        eventually(lambda n=name: get_job(context, n)["step"] == "build" and job_containers(context, n, True),
                   60, f"job {name} runs its build step in a container")


@then('{seconds:d} seconds later the job "{name:Q}" is still "{state:Q}" and has no container')
def step_still(context, seconds, name, state):
    time.sleep(seconds)
    j = get_job(context, name)
    assert j["status"] == state, f"job {name} is {j['status']}, not {state}"
    assert not job_containers(context, name), f"job {name} has containers"


# ---- the log ----

@then('the log of the job "{name:Q}" has "{text:Q}"')
def step_log_has(context, name, text):
    log = job_log(context, name)
    want = expand_jobs(context, text)
    assert want in log, f"the log of job {name} does not have {want!r}:\n{log[-3000:]}"


@then('the log of the job "{name:Q}" has "{a:Q}" and "{b:Q}"')
def step_log_has_two(context, name, a, b):
    step_log_has(context, name, a)
    step_log_has(context, name, b)


@given('the log of the job "{name:Q}" came to have "{text:Q}" within {seconds:d} seconds')
def step_log_came(context, name, text, seconds):
    eventually(lambda: text in job_log(context, name), seconds, f"the log of job {name} has {text!r}")


@when('{user:w} follows the log of the job "{name:Q}"')
def step_follow_log(context, user, name):
    s = host(context).stream(f"/job/{job_id(context, name)}/log?follow=1", user)
    assert s.status == 200, f"following the log of job {name}: status {s.status}"
    context.dmsd_job_follower = s


@then('the job log follower ends by itself within {seconds:d} seconds')
def step_follower_ends(context, seconds):
    f = context.dmsd_job_follower
    eventually(f.ended, seconds, "the job log follower ended", interval_s=0.1)
    assert f.error is None, f"the follow ended with an error: {f.error}"


@then('the job log follower showed "{text:Q}"')
def step_follower_showed(context, text):
    got = context.dmsd_job_follower.texts()
    assert any(text in line for line in got), f"the follower never showed {text!r}; it got {got[-20:]}"


# ---- the artifact ----

def artifact(context, name):
    a = host(context).request("GET", f"/job/{job_id(context, name)}/artifact", job_user(context, name))
    expect_status(a, 200)
    assert a.header("content-type") == "application/x-tar", f"content type {a.header('content-type')}"
    return tarfile.open(fileobj=io.BytesIO(a.body))


@then('the artifact of the job "{name:Q}" is a tar of {entries}')
def step_artifact_entries(context, name, entries):
    want = sorted(re.findall(r'"([^"]*)"', entries))
    got = sorted(m.name + ("/" if m.isdir() and m.name != "." else "") for m in artifact(context, name))
    got = ["./" if g in (".", "./") else g for g in got]
    assert got == want, f"the artifact of job {name} holds {got}, not {want}"
    j = get_job(context, name)
    a = host(context).request("GET", f"/job/{job_id(context, name)}/artifact", job_user(context, name))
    assert len(a.body) == j["artifact"]["bytes"], f"{len(a.body)} bytes, the job says {j['artifact']}"


@then('the file "{path:Q}" of the artifact of the job "{name:Q}" says "{text:Q}"')
def step_artifact_file(context, path, name, text):
    t = artifact(context, name)
    got = t.extractfile(path).read().decode().strip()
    assert got == text, f"{path} of the artifact of job {name} says {got!r}"


# ---- the dependency cache ----

@then('the cache of the job "{name:Q}" was cold')
def step_cache_cold(context, name):
    j = get_job(context, name)
    assert j["cache"]["warm"] is False and j["cache"]["volume"], f"job {name}'s cache: {j['cache']}"
    assert "dependency cache: cold" in job_log(context, name)


@then('the cache of the job "{name:Q}" was warm, in the volume of the job "{other:Q}"')
def step_cache_warm(context, name, other):
    j, o = get_job(context, name), get_job(context, other)
    assert j["cache"]["warm"] is True, f"job {name}'s cache: {j['cache']}"
    assert j["cache"]["volume"] == o["cache"]["volume"], f"{j['cache']} vs {o['cache']}"


@then('the cache volume of the job "{name:Q}" carries this dmsd\'s executor label')
def step_cache_label(context, name):
    vol = get_job(context, name)["cache"]["volume"]
    got = engine.docker("volume", "inspect", "--format", '{{index .Labels "io.dms.executor"}}', vol).strip()
    assert got == host(context).executor_id, f"volume {vol} carries io.dms.executor={got!r}"


@then('the cache of the job "{name:Q}" of {user:w} was cold, in a volume of its own')
def step_cache_own(context, name, user):
    j = get_job(context, name, user)
    assert j["cache"]["warm"] is False, f"job {name}'s cache: {j['cache']}"
    others = {get_job(context, n)["cache"]["volume"] for n, (u, _) in jobs(context).items() if u != user}
    assert j["cache"]["volume"] not in others, f"{user}'s job shares the volume {j['cache']['volume']}"


# ---- who may ask ----

@then('every one of these requests without a token is answered {code:d}')
def step_no_token(context, code):
    wrong = []
    for row in context.table:
        a = call(context, row["method"], expand_jobs(context, row["path"]), None,
                 body=GOOD_PAYLOAD if row["method"] == "POST" else None)
        if a.status != code:
            wrong.append(a.describe())
    assert not wrong, f"answered other than {code}:\n" + "\n".join(wrong)


@then('every one of these requests by {user:w} is answered {code:d}')
def step_requests_by(context, user, code):
    wrong = []
    for row in context.table:
        a = call(context, row["method"], expand_jobs(context, row["path"]), user)
        if a.status != code:
            wrong.append(a.describe())
    assert not wrong, f"answered other than {code}:\n" + "\n".join(wrong)


@then('{user:w} has no jobs')
def step_no_jobs(context, user):
    a = host(context).request("GET", "/jobs", user)
    expect_status(a, 200)
    assert a.json["data"] == [], f"{user} has jobs: {a.json}"


# ---- stacks: repositories without a Dockerfile ----

STACK_EXAMPLES = {
    "static": {"index.html": "static page"},
    "shell": {"start.sh": 'mkdir -p /tmp/w && echo "shell app" > /tmp/w/index.html\n'
                          'exec httpd -f -p "$PORT" -h /tmp/w\n'},
    "node": {"package.json": '{"name": "n", "version": "1.0.0", "scripts": {"start": "node server.js"}}',
             "server.js": 'require("http").createServer((q, s) => s.end("node app " + process.version + "\\n"))'
                          '.listen(process.env.PORT);\n'},
    "python": {"requirements.txt": "# the standard library is enough\n",
               "app.py": "import http.server, os\n"
                         "class H(http.server.BaseHTTPRequestHandler):\n"
                         "    def do_GET(self):\n"
                         "        self.send_response(200); self.end_headers(); self.wfile.write(b'python app\\n')\n"
                         "http.server.HTTPServer(('', int(os.environ['PORT'])), H).serve_forever()\n"},
}


@given('a git repository "{repo:Q}" holding the {stack:w} example')
def step_stack_repo(context, repo, stack):
    assert stack in STACK_EXAMPLES, f"no {stack} example (known: {', '.join(STACK_EXAMPLES)})"
    context.dmsd_repos.create(repo, STACK_EXAMPLES[stack])


@given('a git repository "{repo:Q}" holding the shell example and an index.html')
def step_stack_repo_both(context, repo):
    files = dict(STACK_EXAMPLES["shell"])
    files["index.html"] = "static page: not what this droid serves"
    context.dmsd_repos.create(repo, files)


@then('the droid "{name:Q}" answers "{text:Q}"')
def step_answers(context, name, text):
    def probe():
        d = droid(context, name)
        page = fetch_page(d["url"]) if d.get("url") else None
        assert page is not None and text in page, f"{d.get('url')} answered {page!r}"
        return True
    eventually(probe, SERVES_TIMEOUT_S, f"droid {name} answers {text!r}", interval_s=0.2)


@then('the droid "{name:Q}" answers 404 for "{path:Q}"')
def step_answers_404(context, name, path):
    d = droid(context, name)
    url = d["url"].rstrip("/") + path
    try:
        with urllib.request.urlopen(url, timeout=10) as r:
            raise AssertionError(f"{url} answered {r.status}: {r.read()[:200]!r}")
    except urllib.error.HTTPError as e:
        assert e.code == 404, f"{url} answered {e.code}"


# ---- follow: push hooks ----

@then('the answer has a hook secret that reading the droid "{name:Q}" does not show')
def step_hook_secret(context, name):
    a = answer(context)
    secret = a.json.get("hook_secret") or ""
    assert len(secret) >= 32, f"no hook secret in the answer: {a.describe()}"
    assert a.json.get("follow") is True, f"follow is not on: {a.describe()}"
    if not hasattr(context, "dmsd_hook_secrets"):
        context.dmsd_hook_secrets = {}
    context.dmsd_hook_secrets[name] = secret
    d = droid(context, name)
    assert "hook_secret" not in d and secret not in json.dumps(d), f"reading the droid shows the secret: {d}"
    assert d["hook"]["secret_set"] is True and d["follow"] is True, f"the droid says {d}"


@when('a new commit on the repository "{repo:Q}" changes "{path:Q}" to "{text:Q}"')
def step_commit_file(context, repo, path, text):
    context.dmsd_repos.commit(repo, {path: text})


def call_hook(context, name, secret):
    headers = {HOOK_HEADER: secret} if secret is not None else {}
    return call(context, "POST", f"/droids/{droid_id(context, name)}/hooks/push", None,
                body={"ref": "refs/heads/main"}, headers=headers)


@when('the git host calls the push hook of the droid "{name:Q}" without a secret')
def step_hook_none(context, name):
    call_hook(context, name, None)


@when('the git host calls the push hook of the droid "{name:Q}" with the secret "{secret:Q}"')
def step_hook_wrong(context, name, secret):
    call_hook(context, name, secret)


def call_signed_hook(context, name, secret):
    """As GitHub calls a hook: the body signed with HMAC-SHA256 keyed by the secret, in X-Hub-Signature-256."""
    body = json.dumps({"ref": "refs/heads/main", "repository": {"name": name}}).encode()
    sig = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return call(context, "POST", f"/droids/{droid_id(context, name)}/hooks/push", None, body=body,
                headers={"X-Hub-Signature-256": sig})


@when('the git host calls the push hook of the droid "{name:Q}" signed with the secret "{secret:Q}"')
def step_hook_signed_wrong(context, name, secret):
    call_signed_hook(context, name, secret)


@when('the git host calls the push hook of the droid "{name:Q}" signed with its secret, as GitHub does')
def step_hook_signed_right(context, name):
    call_signed_hook(context, name, context.dmsd_hook_secrets[name])


@when('the git host calls the push hook of the droid "{name:Q}" with its secret')
def step_hook_right(context, name):
    call_hook(context, name, context.dmsd_hook_secrets[name])


@then('the droid "{name:Q}" comes to answer "{text:Q}" within {seconds:d} seconds, answering all along')
def step_answers_all_along(context, name, text, seconds):
    """Polled through the droid's published port: a poll that fails because the url it used was just replaced
    (the switch to the new container) is not downtime; one whose url is still current is."""
    silent = []

    def probe():
        url = droid(context, name)["url"]
        page = fetch_page(url) if url else None
        if page != text and page is None and droid(context, name)["url"] == url:
            silent.append(url)
        assert page == text, f"it answers {page!r}"
        return True
    eventually(probe, seconds, f"droid {name} answers {text!r}", interval_s=0.1)
    assert not silent, f"droid {name} did not answer {len(silent)} time(s) while it was redeployed: {silent[:3]}"


@then('the droid "{name:Q}" runs the latest commit of the repository "{repo:Q}"')
def step_latest_commit(context, name, repo):
    sha = context.dmsd_repos._git("rev-parse", "main", cwd=context.dmsd_repos.work(repo)).strip()
    got = droid(context, name)["commit_sha"]
    assert got == sha, f"droid {name} runs {got}, the latest commit is {sha}"



@then('the status route of the job "{name:Q}" answers "{state:Q}"')
def step_job_status_route(context, name, state):
    a = host(context).request("GET", f"/job/{job_id(context, name)}/status", job_user(context, name))
    expect_status(a, 200)
    assert a.json == {"data": state}, f"GET /job/:id/status answered {a.json}"
