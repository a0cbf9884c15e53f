"""Steps for what happens to a droid's containers over time: stop timing, dmsd killed and restarted, crash loops;
and dmsd's git check."""
import os
import re
import time
import urllib.parse

from behave import given, then, when

from dmsfeat import dmsd as dmsdmod
from dmsfeat import engine
from dmsfeat.dmsdsteps import (answer, builds, call, containers, droid_id, events, expand, expect_status,
                               fetch_page, host, status)
import dmsfeat.steputil  # noqa: F401 - registers the Q type

STOP_WATCH_TIMEOUT_S = 15
STOP_POLL_S = 0.03
NS_PER_S = 1_000_000_000
# Event times are taken by dmsd around its own work; a restart that fires on time may be a hair early in them.
BACKOFF_SLACK_S = 0.1
RESTART_RE = re.compile(r"restart (\d+)/(\d+) in (\d+)s")


def noted(context):
    n = getattr(context, "dmsd_noted", None)
    assert n, "no container was noted"
    return n


def is_running(cid):
    out = engine.docker("inspect", "--type", "container", "--format", "{{.State.Running}}", cid, check=False)
    return out.strip() == "true"  # a removed container answers nothing


def noted_stop_delay(context):
    """Seconds from the last request to the moment the noted container was seen no longer running."""
    cid = noted(context)["container"]
    t0 = context.dmsd_request_at
    deadline = time.monotonic() + STOP_WATCH_TIMEOUT_S
    while time.monotonic() < deadline:
        if not is_running(cid):
            return time.monotonic() - t0
        time.sleep(STOP_POLL_S)
    raise AssertionError(f"the noted container {cid[:12]} still runs {STOP_WATCH_TIMEOUT_S} s after the request")


@then('the noted container stopped within {seconds:g} seconds of the request')
def step_stopped_within(context, seconds):
    d = noted_stop_delay(context)
    assert d <= seconds, f"the noted container stopped {d:.2f} s after the request, not within {seconds} s"


@then('the noted container stopped no sooner than {seconds:g} seconds after the request')
def step_stopped_after(context, seconds):
    d = noted_stop_delay(context)
    assert d >= seconds, f"the noted container stopped {d:.2f} s after the request, before {seconds} s"


# ---- dmsd killed and restarted ----

@when('dmsd is killed with SIGKILL')
def step_kill9(context):
    host(context).kill9()


@when('dmsd starts again on the same data')
def step_start_again(context):
    host(context).start()


def late_socket(context):
    return os.path.join(host(context).dir, "engine", "docker.sock")


@when('dmsd starts again on the same data while the engine\'s socket is missing')
def step_start_again_no_engine(context):
    sock = late_socket(context)
    os.makedirs(os.path.dirname(sock), exist_ok=True)
    assert not os.path.exists(sock)
    host(context).docker_host = "unix://" + sock
    host(context).start()


@when('the engine\'s socket appears')
def step_socket_appears(context):
    real = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
    assert real.startswith("unix://"), f"DOCKER_HOST={real}: the scenario needs the engine on a unix socket"
    os.symlink(real[len("unix://"):], late_socket(context))
    context.dmsd_socket_at = time.monotonic()


@then('every one of {n:d} requests listing {user:w}\'s droids was answered 200 meanwhile')
def step_answered_meanwhile(context, n, user):
    for _ in range(n):
        r = call(context, "GET", "/droids", user)
        assert r.status == 200, f"GET /droids: {r.describe()}"
        time.sleep(0.05)


@then('the droid "{name:Q}" still serves "{text:Q}" while dmsd is down')
def step_serves_down(context, name, text):
    assert not host(context).running(), "dmsd is running"
    cid = noted(context)["container"]
    ports = engine.inspect("container", cid)["NetworkSettings"]["Ports"] or {}
    bound = [b for binds in ports.values() if binds for b in binds]
    assert bound, f"the container of droid {name} publishes no port: {ports}"
    url = f"http://127.0.0.1:{bound[0]['HostPort']}"
    page = fetch_page(url)
    assert page == text, f"{url} answered {page!r} while dmsd was down"


@when('someone outside dmsd kills the noted container')
def step_kill_container(context):
    engine.docker("kill", noted(context)["container"])


@then('{seconds:d} seconds later the droid "{name:Q}" still runs only in the noted container')
def step_later_noted(context, seconds, name):
    time.sleep(seconds)
    s = status(context, name)
    ids = containers(context, name)
    assert s["status"] == "running" and ids == [noted(context)["container"]], \
        f"droid {name} is {s['status']} with the containers {ids}, noted {noted(context)['container'][:12]}"


@then('{seconds:d} seconds later the droid "{name:Q}" runs in exactly one container, from exactly one image')
def step_later_one(context, seconds, name):
    time.sleep(seconds)
    ids = containers(context, name)
    running = containers(context, name, running_only=True)
    imgs = dmsdmod.images_of(host(context).executor_id, droid_id(context, name))
    assert len(ids) == 1 and running == ids, f"droid {name} has the containers {ids}, running {running}"
    assert len(imgs) == 1, f"droid {name} has {len(imgs)} images: {imgs}"


@then('the droid "{name:Q}" has exactly one build, "{state:Q}", at attempt {n:d}')
def step_one_build_attempt(context, name, state, n):
    bs = builds(context, name)
    assert len(bs) == 1 and bs[0]["status"] == state and bs[0]["attempt"] == n, \
        f"expected one build, {state}, attempt {n}; droid {name} has {bs}"


# ---- crash loops ----

def announced_restarts(evs):
    out = []
    for e in evs:
        m = RESTART_RE.search(e.get("reason") or "")
        if m:
            out.append((int(m.group(1)), int(m.group(2)), int(m.group(3)), e))
    return out


@then('the events of the droid "{name:Q}" announce restarts 1/5 to 5/5 after {delays} seconds')
def step_announced(context, name, delays):
    want = [int(x) for x in re.findall(r"\d+", delays)]
    got = [(k, total, d) for k, total, d, _ in announced_restarts(events(context, name))]
    assert got == [(i + 1, 5, d) for i, d in enumerate(want)], f"the announced restarts are {got}"


@then('each restart came no sooner than the delay it announced')
def step_restart_delays(context):
    name = next(iter(context.dmsd_droids))
    evs = events(context, name)
    for k, _, delay, e in announced_restarts(evs):
        later = [x for x in evs if x["id"] > e["id"]]
        assert later, f"nothing followed restart {k}"
        waited = (later[0]["ts_ns"] - e["ts_ns"]) / NS_PER_S
        assert waited >= delay - BACKOFF_SLACK_S, \
            f"restart {k} announced {delay} s but the next event came after {waited:.2f} s: {later[0]}"


@then('{seconds:d} seconds later the droid "{name:Q}" is still "{state:Q}" and has no new events')
def step_later_quiet(context, seconds, name, state):
    before = events(context, name)
    time.sleep(seconds)
    after = events(context, name)
    s = status(context, name)
    assert s["status"] == state, f"droid {name} is {s['status']} ({s.get('reason')})"
    assert after == before, f"new events: {after[len(before):]}"


@then('the events of the droid "{name:Q}" hold {n:d} saying "{text:Q}"')
def step_events_count(context, name, n, text):
    hits = [e for e in events(context, name) if text in (e.get("reason") or "")]
    assert len(hits) == n, f"{len(hits)} events say {text!r}: {hits}"


# ---- git check ----

def git_check(context, user, repo, branch=None):
    q = {"repo": expand(context, repo)}
    if branch is not None:
        q["branch"] = branch
    call(context, "GET", "/git/check?" + urllib.parse.urlencode(q), user)


@when('{user:w} checks the repository "{repo:Q}"')
def step_check_repo(context, user, repo):
    git_check(context, user, repo)


@when('{user:w} checks the branch "{branch:Q}" of the repository "{repo:Q}"')
def step_check_branch(context, user, branch, repo):
    git_check(context, user, repo, branch)


@then('the answer is {code:d} and says the repository is reachable')
def step_reachable(context, code):
    a = answer(context)
    expect_status(a, code)
    assert a.json.get("reachable") is True, a.describe()


@then('the answer is {code:d} and says the repository is not reachable, with the error')
def step_unreachable(context, code):
    a = answer(context)
    expect_status(a, code)
    assert a.json.get("reachable") is False and a.json.get("error"), a.describe()


@then('its default branch is "{branch:Q}" and its branches are "{branches:Q}"')
def step_branches(context, branch, branches):
    j = answer(context).json
    want = sorted(b.strip() for b in branches.split(","))
    assert j.get("default_branch") == branch and sorted(j.get("branches") or []) == want, \
        f"expected default {branch} and branches {want}: {j}"


@then('it says the branch exists')
def step_branch_exists(context):
    assert answer(context).json.get("branch_exists") is True, answer(context).describe()


@then('it says the branch does not exist')
def step_branch_missing(context):
    assert answer(context).json.get("branch_exists") is False, answer(context).describe()


@then('the answer came within {seconds:g} seconds of the question')
def step_answer_time(context, seconds):
    a = answer(context)
    assert a.seconds <= seconds, f"the answer took {a.seconds:.2f} s"


# ---- inside the container ----

@given('the droid "{name:Q}"\'s container has written "{text:Q}" to "{path:Q}"')
def step_container_writes(context, name, text, path):
    running = containers(context, name, running_only=True)
    assert len(running) == 1, f"droid {name} has {len(running)} running containers"
    engine.docker("exec", running[0], "sh", "-c", f"printf %s '{text}' > '{path}'")


@then('the droid "{name:Q}"\'s container reads "{text:Q}" from "{path:Q}"')
def step_container_reads(context, name, text, path):
    running = containers(context, name, running_only=True)
    assert len(running) == 1, f"droid {name} has {len(running)} running containers"
    got = engine.docker("exec", running[0], "cat", path, check=False)
    assert got == text, f"{path} in the container of droid {name} holds {got!r}, not {text!r}"
