"""Steps for dmsd's HTTP API: the daemon and the repositories of a scenario, requests and their answers, droids
and what the engine holds for them."""
import json
import os
import time

from behave import given, step, then, when

from dmsfeat import dmsd as dmsdmod
from dmsfeat import engine
from dmsfeat.dmsdsteps import (answer, call, containers, droid, droid_id, events, expect_status, host,
                               parse_body, releases, run_logs, serves, status, wait_for)
from dmsfeat.steputil import eventually  # noqa: F401 - also registers the Q type

FIRST_BUILD_TIMEOUT_S = 60
GONE_TIMEOUT_S = 30
LOG_APPEARS_TIMEOUT_S = 15
ENGINE_SETTLE_S = 3


# ---- the daemon and the repositories ----

@given('dmsd is running')
def step_dmsd_running(context):
    context.dmsd_host.start()


@given('dmsd is running with the settings')
def step_dmsd_running_with(context):
    """A table of | setting | value |; the value "(unset)" removes a setting the harness gives every dmsd."""
    env = {row["setting"]: None if row["value"] == "(unset)" else row["value"] for row in context.table}
    context.dmsd_host.start(extra_env=env)


@given('dmsd is running and keeps {n:d} releases per droid')
def step_dmsd_running_keeps(context, n):
    context.dmsd_host.start(keep_releases=n)


def dockerfile(context):
    """The step's Dockerfile, <unique> replaced by a token of this scenario: the engine's build cache must not
    answer a step whose output a scenario watches live."""
    return context.text.replace("<unique>", context.dmsd_host.executor_id)


@given('a git repository "{repo:Q}" whose Dockerfile is')
def step_repo(context, repo):
    context.dmsd_repos.create(repo, {"Dockerfile": dockerfile(context)})


@given('a git repository "{repo:Q}" with a README and no Dockerfile')
def step_repo_no_dockerfile(context, repo):
    context.dmsd_repos.create(repo, {"README": "This repository has no Dockerfile.\n"})


@given('the repository "{repo:Q}" has a branch "{branch:Q}" whose Dockerfile is')
def step_repo_branch(context, repo, branch):
    context.dmsd_repos.commit(repo, {"Dockerfile": dockerfile(context)}, branch=branch)


@step('a new commit on the repository "{repo:Q}" changes its Dockerfile to')
def step_repo_commit(context, repo):
    context.dmsd_repos.commit(repo, {"Dockerfile": dockerfile(context)})


# ---- creating droids ----

def create(context, user, name, repo, extra=None):
    body = {"name": name, "repo": context.dmsd_repos.path(repo)}
    body.update(extra or {})
    a = call(context, "POST", "/droids", user, body=body)
    if a.status == 201:
        context.dmsd_droids[name] = a.json["id"]
        host(context).add_droid(a.json["id"])
        host(context).repo_of[name] = repo
    return a


def remember_created(context):
    a = answer(context)
    if a.status == 201 and isinstance(a.json, dict):
        context.dmsd_droids[a.json["name"]] = a.json["id"]
        host(context).add_droid(a.json["id"])


@when('{user:w} creates the droid "{name:Q}" from the repository "{repo:Q}"')
def step_create(context, user, name, repo):
    create(context, user, name, repo)


@given('{user:w} created the droid "{name:Q}" from the repository "{repo:Q}"')
def step_created(context, user, name, repo):
    expect_status(create(context, user, name, repo), 201)


@when('{user:w} creates a droid with the body')
def step_create_body(context, user):
    call(context, "POST", "/droids", user, body=parse_body(context, context.text))
    remember_created(context)


@given('{user:w} has a running droid "{name:Q}" from the repository "{repo:Q}"')
def step_has_running(context, user, name, repo):
    expect_status(create(context, user, name, repo), 201)
    wait_for(context, name, "running", FIRST_BUILD_TIMEOUT_S, user)


@given('{user:w} has a running droid "{name:Q}" from the repository "{repo:Q}" with the env')
def step_has_running_env(context, user, name, repo):
    env = {row["name"]: row["value"] for row in context.table}
    expect_status(create(context, user, name, repo, {"env": env}), 201)
    wait_for(context, name, "running", FIRST_BUILD_TIMEOUT_S, user)


# ---- other requests ----

@when('{user:w} changes the droid "{name:Q}" with')
def step_patch(context, user, name):
    a = call(context, "PATCH", f"/droids/<droid {name}>", user, body=parse_body(context, context.text))
    if a.status == 200 and a.json.get("name") != name:
        context.dmsd_droids[a.json["name"]] = context.dmsd_droids.pop(name)


@when('{user:w} deletes the droid "{name:Q}"')
def step_delete(context, user, name):
    call(context, "DELETE", f"/droids/<droid {name}>", user, timeout_s=dmsdmod.DELETE_TIMEOUT_S)


@when('{user:w} stops the droid "{name:Q}"')
def step_stop(context, user, name):
    call(context, "POST", f"/droids/<droid {name}>/stop", user)


@when('{user:w} starts the droid "{name:Q}"')
def step_start(context, user, name):
    call(context, "POST", f"/droids/<droid {name}>/start", user)


@when('{user:w} restarts the droid "{name:Q}"')
def step_restart(context, user, name):
    context.dmsd_request_at = time.monotonic()
    call(context, "POST", f"/droids/<droid {name}>/restart", user)


@when('{user:w} restarts the droid "{name:Q}" with force')
def step_restart_force(context, user, name):
    context.dmsd_request_at = time.monotonic()
    call(context, "POST", f"/droids/<droid {name}>/restart?force=1", user)


@when('{user:w} asks whether the name "{name:Q}" is available')
def step_available(context, user, name):
    call(context, "GET", f"/droids/available?name={name}", user)


CREDENTIALS = {
    "no Authorization header": lambda h: None,
    "a bearer token that is not a JWT": lambda h: "Bearer not.a.jwt",
    "a token signed with another secret": lambda h: "Bearer " + dmsdmod.mint_token(
        h.secret + "-other", dmsdmod.user_claims("alice")),
    "a token that has expired": lambda h: "Bearer " + dmsdmod.mint_token(
        h.secret, dict(dmsdmod.user_claims("alice"), exp=int(time.time()) - 60)),
    "a token without a user_id": lambda h: "Bearer " + dmsdmod.mint_token(
        h.secret, {"sub": "alice", "exp": int(time.time()) + 600}),
    "a token signed with HS512": lambda h: "Bearer " + dmsdmod.mint_token(
        h.secret, dmsdmod.user_claims("alice"), alg="HS512"),
    "basic credentials instead of a bearer": lambda h: "Basic YWxpY2U6c2VjcmV0",
    "a token for the numeric user_id 42": lambda h: "Bearer " + dmsdmod.mint_token(
        h.secret, {"user_id": 42, "exp": int(time.time()) + 600}),
}


@when('someone lists the droids with {credentials}')
def step_list_with(context, credentials):
    assert credentials in CREDENTIALS, f"unknown credentials {credentials!r}; known: {', '.join(CREDENTIALS)}"
    auth = CREDENTIALS[credentials](host(context))
    call(context, "GET", "/droids", None, headers={"Authorization": auth} if auth else None)


@then('every one of these requests by {user:w} about the droid "{name:Q}" is answered {code:d}')
def step_requests_answered(context, user, name, code):
    wrong = []
    for row in context.table:
        body = parse_body(context, row["body"]) if row["body"].strip() else None
        a = call(context, row["method"], row["path"], user, body=body)
        if a.status != code:
            wrong.append(a.describe())
    assert not wrong, f"answered other than {code}:\n" + "\n".join(wrong)


# ---- answers ----

@then('the answer is {code:d}')
def step_answer(context, code):
    expect_status(answer(context), code)


@then('the answer is {code:d} naming the field "{field:Q}"')
def step_answer_field(context, code, field):
    a = answer(context)
    expect_status(a, code)
    assert isinstance(a.json, dict) and a.json.get("field") == field, \
        f"expected an error naming the field {field!r}: {a.describe()}"
    assert a.json.get("error"), f"the error says nothing: {a.describe()}"


@then('the answer is {code:d} and the droid is "{state:Q}"')
def step_answer_state(context, code, state):
    a = answer(context)
    expect_status(a, code)
    assert a.json.get("status") == state, f"expected the droid to be {state}: {a.describe()}"


@then('the answer is {code:d} and says the name is {free:w}')
def step_answer_available(context, code, free):
    a = answer(context)
    expect_status(a, code)
    assert free in ("free", "taken"), free
    assert a.json.get("available") is (free == "free"), f"expected the name to be {free}: {a.describe()}"


@then('the answer is {code:d} and the droid\'s name is "{name:Q}"')
def step_answer_name(context, code, name):
    a = answer(context)
    expect_status(a, code)
    assert a.json.get("name") == name, a.describe()


@then('the answer is {code:d} and lists no droids')
def step_answer_empty(context, code):
    a = answer(context)
    expect_status(a, code)
    assert a.json == [], a.describe()


@then('the answer says "{text:Q}"')
def step_answer_says(context, text):
    a = answer(context)
    assert text in (a.json or {}).get("error", a.text), f"the answer does not say {text!r}: {a.describe()}"


# ---- droids as their owner sees them ----

def names_of(context, user):
    a = host(context).request("GET", "/droids", user)
    expect_status(a, 200)
    return sorted(d["name"] for d in a.json)


@then('{user:w}\'s droids are "{names:Q}"')
def step_droids_are(context, user, names):
    want = sorted(n.strip() for n in names.split(","))
    got = names_of(context, user)
    assert got == want, f"{user}'s droids are {got}, not {want}"


@then('{user:w} has no droids')
def step_no_droids(context, user):
    got = names_of(context, user)
    assert got == [], f"{user} has droids: {got}"


@step('the droid "{name:Q}" becomes "{state:Q}" within {seconds:d} seconds')
def step_becomes(context, name, state, seconds):
    wait_for(context, name, state, seconds)


@then('the droid "{name:Q}" is "{state:Q}"')
def step_is(context, name, state):
    s = status(context, name)
    assert s["status"] == state, f"droid {name} is {s['status']} ({s.get('reason')}), not {state}"


@then('the droid "{name:Q}" serves "{text:Q}"')
def step_serves(context, name, text):
    serves(context, name, text)


@then('the droid "{name:Q}" is on the branch "{branch:Q}" at the latest commit of the repository "{repo:Q}"')
def step_on_branch(context, name, branch, repo):
    d = droid(context, name)
    head = context.dmsd_repos._git("rev-parse", branch, cwd=context.dmsd_repos.path(repo)).strip()
    assert d["branch"] == branch and d["commit_sha"] == head, \
        f"droid {name} is on {d['branch']} at {d['commit_sha']}, not {branch} at {head}"


@then('the droid "{name:Q}" is at release {n:d}')
def step_at_release(context, name, n):
    d = droid(context, name)
    assert d["release"] == n, f"droid {name} is at release {d['release']}, not {n}"


@then('the droid "{name:Q}" has an event saying "{text:Q}"')
def step_event_saying(context, name, text):
    evs = events(context, name)
    assert any(text in (e.get("reason") or "") for e in evs), \
        f"no event of droid {name} says {text!r}: " + json.dumps(evs, indent=1)


@then('reading the droid "{name:Q}" is answered {code:d}')
def step_read_answered(context, name, code):
    expect_status(call(context, "GET", f"/droids/<droid {name}>", "alice"), code)


@then('the name "{name:Q}" is free')
def step_name_free(context, name):
    a = call(context, "GET", f"/droids/available?name={name}", "alice")
    expect_status(a, 200)
    assert a.json["available"] is True, a.describe()


@then('the name "{a:Q}" is free and the name "{b:Q}" is taken')
def step_names(context, a, b):
    for n, want in ((a, True), (b, False)):
        r = call(context, "GET", f"/droids/available?name={n}", "alice")
        expect_status(r, 200)
        assert r.json["available"] is want, r.describe()


# ---- what the engine holds ----

@then('the droid "{name:Q}" runs in exactly one container, labelled as this dmsd\'s')
def step_one_container_labelled(context, name):
    ids = containers(context, name)
    assert len(ids) == 1, f"droid {name} has {len(ids)} containers: {ids}"
    labels = engine.labels("container", ids[0])
    want = {"io.dms.managed": "true", "io.dms.executor": host(context).executor_id,
            "io.dms.job": droid_id(context, name), "io.dms.role": "job"}
    wrong = {k: labels.get(k) for k, v in want.items() if labels.get(k) != v}
    assert not wrong, f"the container of droid {name} has the labels {wrong}, expected {want}"
    assert engine.inspect("container", ids[0])["State"]["Running"], f"the container of droid {name} is not running"


@then('the droid "{name:Q}" runs in exactly one container')
def step_one_container(context, name):
    ids = containers(context, name)
    running = containers(context, name, running_only=True)
    assert len(ids) == 1 and running == ids, \
        f"droid {name} has {len(ids)} containers ({ids}), {len(running)} running"


@then('no container of the droid "{name:Q}" is running')
def step_none_running(context, name):
    running = containers(context, name, running_only=True)
    assert not running, f"droid {name} still has running containers: {running}"


@then('no container of the droid "{name:Q}" runs any more')
def step_none_running_soon(context, name):
    # dmsd learns of an exit from the engine's die event; the engine's own state says "exited" a little later.
    def probe():
        running = containers(context, name, running_only=True)
        assert not running, f"still running: {running}"
        return True
    eventually(probe, ENGINE_SETTLE_S, f"no container of droid {name} runs", interval_s=0.1)


def running_container(context, name):
    running = containers(context, name, running_only=True)
    assert len(running) == 1, f"droid {name} has {len(running)} running containers: {running}"
    return running[0]


@given('I note the container of the droid "{name:Q}"')
def step_note_container(context, name):
    cid = running_container(context, name)
    context.dmsd_noted = {"droid": name, "container": cid,
                          "execution": engine.labels("container", cid).get("io.dms.execution"),
                          "events": len(events(context, name))}


def noted(context):
    n = getattr(context, "dmsd_noted", None)
    assert n, "no container was noted"
    return n


@then('the droid "{name:Q}" is "{state:Q}" in the noted container')
def step_in_noted(context, name, state):
    s = status(context, name)
    assert s["status"] == state, f"droid {name} is {s['status']} ({s.get('reason')}), not {state}"
    running = containers(context, name, running_only=True)
    assert running == [noted(context)["container"]], \
        f"droid {name} runs in {running}, not (only) in the noted container {noted(context)['container'][:12]}"


@then('the droid "{name:Q}" runs in a new container within {seconds:d} seconds')
def step_new_container(context, name, seconds):
    old = noted(context)["container"]

    def probe():
        s = status(context, name)
        assert s["status"] == "running", f"it is {s['status']} ({s.get('reason')})"
        ids = containers(context, name)
        assert old not in ids, f"the noted container {old[:12]} is still there"
        assert len(ids) == 1, f"it has {len(ids)} containers"
        return True
    eventually(probe, seconds, f"droid {name} runs in one new container", interval_s=0.2)


@then('the droid "{name:Q}" listens on port {port:d} in its container')
def step_listens_on(context, name, port):
    assert droid(context, name)["port"] == port, f"droid {name} says port {droid(context, name)['port']}"
    ids = containers(context, name, running_only=True)
    assert len(ids) == 1, f"droid {name} runs in {ids}"
    out = engine.docker("inspect", "--format", "{{json .Config.Env}} {{json .NetworkSettings.Ports}}", ids[0])
    env, ports = out.split(" ", 1)
    assert f"PORT={port}" in json.loads(env), f"the container's env: {env}"
    assert f"{port}/tcp" in json.loads(ports), f"the container publishes {ports}"


@then('the current run of the droid "{name:Q}" has printed "{text:Q}"')
@given('the current run of the droid "{name:Q}" has printed "{text:Q}"')
def step_current_printed(context, name, text):
    def probe():
        a = run_logs(context, name)
        assert text in a.text.splitlines(), f"its logs are {a.text[-500:]!r}"
        return True
    eventually(probe, LOG_APPEARS_TIMEOUT_S, f"the current run of droid {name} printed {text!r}", interval_s=0.2)


@then('the noted run printed "{text:Q}"')
def step_noted_run_printed(context, text):
    n = noted(context)
    a = run_logs(context, n["droid"], f"?run={n['execution']}")
    assert text in a.text.splitlines(), f"run {n['execution']} printed {a.text[-800:]!r}, not {text!r}"


@then('the noted run did not print "{text:Q}"')
def step_noted_run_not_printed(context, text):
    n = noted(context)
    a = run_logs(context, n["droid"], f"?run={n['execution']}")
    assert text not in a.text, f"run {n['execution']} printed {text!r}: {a.text[-800:]!r}"


def droid_volume_names(context, name):
    return dmsdmod.volumes_named(droid_id(context, name) + "-")


@then('the engine holds a container, an image and the volume "{volume:Q}" of the droid "{name:Q}"')
def step_engine_holds(context, volume, name):
    assert containers(context, name), f"no container of droid {name}"
    assert dmsdmod.images_of(host(context).executor_id, droid_id(context, name)), f"no image of droid {name}"
    vols = droid_volume_names(context, name)
    want = f"{droid_id(context, name)}-{volume}"
    assert vols == [want], f"droid {name}'s volumes are {vols}, expected [{want}]"
    labels = engine.labels("volume", want)
    assert labels.get("io.dms.executor") == host(context).executor_id, f"volume {want} has labels {labels}"


@then('the engine holds no container, image or volume of the droid "{name:Q}"')
def step_engine_holds_nothing(context, name):
    # DELETE answers once the containers are gone; an image removal the engine refused is retried by dmsd.
    def probe():
        left = {"containers": containers(context, name),
                "images": dmsdmod.images_of(host(context).executor_id, droid_id(context, name)),
                "volumes": droid_volume_names(context, name)}
        left = {k: v for k, v in left.items() if v}
        assert not left, f"left: {left}"
        return True
    eventually(probe, GONE_TIMEOUT_S, f"nothing of droid {name} is left in the engine", interval_s=0.5)
    # An engine build the delete interrupted may still commit its last step: look again once it had time to.
    time.sleep(ENGINE_SETTLE_S)
    probe()


def data_dir_of(context, name):
    return os.path.join(host(context).data_dir, "droids", droid_id(context, name))


@then('the droid "{name:Q}" has a data directory')
def step_has_data(context, name):
    assert os.path.isdir(data_dir_of(context, name)), f"{data_dir_of(context, name)} does not exist"


@then('the droid "{name:Q}" has no data directory')
def step_no_data(context, name):
    assert not os.path.exists(data_dir_of(context, name)), f"{data_dir_of(context, name)} still exists"


@then('the droid "{name:Q}" has no release and no container')
def step_no_release(context, name):
    assert releases(context, name) == [], f"droid {name} has releases: {releases(context, name)}"
    assert droid(context, name)["release"] is None
    assert not containers(context, name), f"droid {name} has containers: {containers(context, name)}"
