"""Steps of dmsd_compose.feature: compose droids on a routed dmsd (dmsfeat/routed.py): repositories holding a
compose file, each service's container seen through the engine (its dms.service label), per-service logs,
redeploys, and what a delete leaves."""
import os
import time

from behave import given, then, when

from dmsfeat import engine
from dmsfeat import steputil  # noqa: F401 - registers the Q type
from dmsfeat.routed import mint_token
from dmsfeat.util import eventually

BUILD_RUN_TIMEOUT_S = 90
STILL_FOR_S = 5  # a container "still" runs: it is there all this time


def rt(context):
    if not getattr(context, "routed", None):
        raise AssertionError("no routed dmsd in this scenario (a Given step starts it)")
    return context.routed


def work_dir(d, repo):
    return os.path.join(d.repos.root, "src-" + repo)


def write_files(d, repo, files):
    work = work_dir(d, repo)
    for path, text in files.items():
        full = os.path.join(work, path)
        os.makedirs(os.path.dirname(full), exist_ok=True)
        with open(full, "w") as f:
            f.write(text)


def commit(d, repo, message):
    work = work_dir(d, repo)
    d.repos._git("add", ".", cwd=work)
    d.repos._git("commit", "-qm", message, cwd=work)
    d.repos._git("push", "-q", os.path.join(d.repos.root, repo + ".git"), "main", cwd=work)


def service_containers(d, name, service, running_only=True):
    args = ["ps", "-q"] if running_only else ["ps", "-aq"]
    out = engine.docker(*args, "--filter", f"label=io.dms.executor={d.executor_id}",
                        "--filter", f"label=dms.droid={d.droids[name]}", "--filter", f"label=dms.service={service}")
    return [line for line in out.splitlines() if line.strip()]


# ---- repositories and droids ----

@given('a git repository "{repo:Q}" holding the compose file')
def step_repo(context, repo):
    d = rt(context)
    # Repos.create writes a Dockerfile: a compose file at the root wins over it.
    d.repos.create(repo, "FROM dms-test/web:latest\n", {"compose.yaml": context.text})


@given('the repository "{repo:Q}" has the file "{path:Q}"')
def step_repo_file(context, repo, path):
    d = rt(context)
    write_files(d, repo, {path: context.text + "\n"})
    commit(d, repo, "add " + path)


@given('the compose droid "{name:Q}" is created from the repository "{repo:Q}"')
@when('the compose droid "{name:Q}" is created from the repository "{repo:Q}"')
def step_create(context, name, repo):
    d = rt(context)
    a = d.api("POST", "/droids", {"name": name, "repo": os.path.join(d.repos.root, repo + ".git")})
    if a.status != 201:
        raise AssertionError(f"create {name}: {a.describe()}")
    d.droids[name] = a.json["id"]


@when('a new commit of "{name:Q}" changes "{old:Q}" to "{new:Q}" in its compose file and is deployed')
def step_push_change(context, name, old, new):
    d = rt(context)
    path = os.path.join(work_dir(d, name), "compose.yaml")
    text = open(path).read()
    assert old in text, f"{old!r} is not in the compose file of {name}"
    write_files(d, name, {"compose.yaml": text.replace(old, new)})
    commit(d, name, "change")
    d.api_ok("PATCH", f"/droids/{d.droids[name]}", {"branch": "main"})


@when('"{name:Q}" is stopped through the API')
def step_stop(context, name):
    d = rt(context)
    d.api_ok("POST", f"/droids/{d.droids[name]}/stop")


@when('"{name:Q}" is started through the API')
def step_start(context, name):
    d = rt(context)
    d.api_ok("POST", f"/droids/{d.droids[name]}/start")


# ---- services ----

@then('the droid "{name:Q}" shows the services "{routed:Q}" (routed) and "{other:Q}", each "{state:Q}"')
def step_services(context, name, routed, other, state):
    d = rt(context)

    def probe():
        svcs = {s["name"]: s for s in (d.droid(name).get("services") or [])}
        assert set(svcs) == {routed, other}, f"services of {name}: {svcs}"
        assert svcs[routed]["routed"] and not svcs[other]["routed"], f"services of {name}: {svcs}"
        for s in svcs.values():
            assert s["status"] == state, f"service {s['name']} of {name} is {s['status']}: {svcs}"
        return True
    eventually(probe, 30, f"the services of {name} are {state}")


@then('the service "{service:Q}" of "{name:Q}" runs in its own container on the droid\'s network')
def step_own_container(context, service, name):
    d = rt(context)
    ids = eventually(lambda: service_containers(d, name, service), 30, f"a container of {service}")
    assert len(ids) == 1, f"{service} of {name} runs in {len(ids)} containers"
    nets = engine.docker("inspect", "--format", "{{range $k, $v := .NetworkSettings.Networks}}{{$k}} {{end}}",
                         ids[0]).split()
    assert len(nets) == 1 and nets[0].endswith("-" + d.droids[name]), f"{service} is on the networks {nets}"
    web = service_containers(d, name, "web") if service != "web" else ids
    if web:
        wnets = engine.docker("inspect", "--format", "{{range $k, $v := .NetworkSettings.Networks}}{{$k}} {{end}}",
                              web[0]).split()
        assert wnets == nets, f"web is on {wnets}, {service} on {nets}"


@then('the logs of the service "{service:Q}" of "{name:Q}" say "{text:Q}" within {secs:d} s')
def step_service_logs(context, service, name, text, secs):
    d = rt(context)

    def probe():
        a = d.api("GET", f"/droids/{d.droids[name]}/logs?service={service}&tail=50")
        assert a.status == 200, a.describe()
        assert text in a.text, f"the logs of {service} say: {a.text[-500:]!r}"
        return True
    eventually(probe, secs, f"the logs of {service} of {name} say {text}")


@given('I note the container of the service "{service:Q}" of "{name:Q}"')
@then('I note the container of the service "{service:Q}" of "{name:Q}"')
@when('I note the container of the service "{service:Q}" of "{name:Q}"')
def step_note(context, service, name):
    d = rt(context)
    ids = eventually(lambda: service_containers(d, name, service), 30, f"a container of {service}")
    assert len(ids) == 1, f"{service} of {name} runs in {len(ids)} containers"
    context.noted_service_container = ids[0]


@then('the service "{service:Q}" of "{name:Q}" still runs in the noted container')
def step_same_container(context, service, name):
    # The runner converges the other services after the routed one swapped: it must leave this one alone for
    # good, not merely for a moment.
    d = rt(context)
    deadline = time.monotonic() + STILL_FOR_S
    while time.monotonic() < deadline:
        ids = service_containers(d, name, service)
        assert ids == [context.noted_service_container], \
            f"{service} of {name} runs in {ids}, not in the noted {context.noted_service_container}"
        time.sleep(0.2)


@then('the service "{service:Q}" of "{name:Q}" runs in a new container within {secs:d} s')
def step_new_container(context, service, name, secs):
    d = rt(context)

    def probe():
        ids = service_containers(d, name, service)
        assert len(ids) == 1 and ids[0] != context.noted_service_container, f"{service} of {name} runs in {ids}"
        return True
    eventually(probe, secs, f"{service} of {name} runs in a new container")


@then('only one container of the service "{service:Q}" of "{name:Q}" runs')
def step_one_service_container(context, service, name):
    d = rt(context)
    eventually(lambda: len(service_containers(d, name, service)) == 1, 20, f"one container of {service}")


@then('the service "{service:Q}" of "{name:Q}" has been restarted at least {n:d} times within {secs:d} s')
def step_restarted(context, service, name, n, secs):
    d = rt(context)

    def probe():
        svcs = {s["name"]: s for s in (d.droid(name).get("services") or [])}
        s = svcs.get(service)
        assert s and s["restarts"] >= n, f"service {service} of {name}: {s}"
        assert s["exit_code"] in (None, 3), f"service {service} of {name}: {s}"
        return True
    eventually(probe, secs, f"{service} restarted {n} times")


# ---- the engine's view ----

def droid_objects(d, droid_id):
    label = f"label=io.dms.executor={d.executor_id}"
    return {
        "container": engine.docker("ps", "-aq", "--filter", label, "--filter", f"label=dms.droid={droid_id}").split(),
        "image": [i for i in engine.docker("images", "--format", "{{.Repository}}:{{.Tag}}").split()
                  if i.startswith(f"dms-droid/{droid_id}:")],
        "volume": [v for v in engine.docker("volume", "ls", "-q").split() if v.startswith(droid_id + "-")],
        "network": [n for n in engine.docker("network", "ls", "--format", "{{.Name}}").split()
                    if n.endswith("-" + droid_id)],
    }


@given('the engine holds the volume "{volume:Q}" and the network of the compose droid "{name:Q}"')
def step_holds(context, volume, name):
    d = rt(context)
    ident = d.droids[name]
    eventually(lambda: service_containers(d, name, "writer"), 30, "the writer runs")
    found = droid_objects(d, ident)
    assert f"{ident}-{volume}" in found["volume"], f"volumes: {found['volume']}"
    assert len(found["network"]) == 1, f"networks: {found['network']}"
    assert found["image"], f"images: {found['image']}"


@then('the engine holds nothing of the compose droid "{name:Q}" within {secs:d} s')
def step_nothing(context, name, secs):
    d = rt(context)
    ident = d.droids[name]

    def probe():
        found = {k: v for k, v in droid_objects(d, ident).items() if v}
        assert not found, f"the engine still holds {found}"
        return True
    eventually(probe, secs, f"nothing of {name} is left")


# ---- other users ----

@then('bob\'s request for the logs of the service "{service:Q}" of "{name:Q}" is answered {code:d}')
def step_bob_logs(context, service, name, code):
    d = rt(context)
    a = d.api("GET", f"/droids/{d.droids[name]}/logs?service={service}", token=mint_token(d.secret, "bob"))
    assert a.status == code, a.describe()
    assert service not in a.text or code != 404, a.describe()


@then('bob\'s request for the droid "{name:Q}" is answered {code:d}')
def step_bob_droid(context, name, code):
    d = rt(context)
    a = d.api("GET", f"/droids/{d.droids[name]}", token=mint_token(d.secret, "bob"))
    assert a.status == code, a.describe()


# ---- routing.feature's state check, also as a Given or a When (the step is a Then there) ----

@given('the routed droid "{name:Q}" is "{state:Q}" within {secs:d} s')
@when('the routed droid "{name:Q}" is "{state:Q}" within {secs:d} s')
def step_is_within(context, name, state, secs):
    rt(context).wait_status(name, state, secs)


@given('I note the container of the droid "{name:Q}" as its routed service')
def step_note_routed(context, name):
    d = rt(context)
    routed = [s["name"] for s in (d.droid(name).get("services") or []) if s["routed"]]
    assert len(routed) == 1, f"routed services of {name}: {routed}"
    ids = service_containers(d, name, routed[0])
    assert len(ids) == 1, f"{routed[0]} of {name} runs in {ids}"
    context.noted_routed = (routed[0], ids[0])


@then('the routed service of "{name:Q}" still runs in the noted container')
def step_routed_same(context, name):
    d = rt(context)
    service, noted = context.noted_routed
    deadline = time.monotonic() + STILL_FOR_S
    while time.monotonic() < deadline:
        ids = service_containers(d, name, service)
        assert ids == [noted], f"{service} of {name} runs in {ids}, not in the noted {noted}"
        time.sleep(0.2)


@then('the service "{later:Q}" of "{name:Q}" started at least {secs:f} s after the service "{first:Q}"')
def step_started_after(context, later, name, secs, first):
    import datetime
    d = rt(context)

    def started(service):
        ids = service_containers(d, name, service)
        assert len(ids) == 1, f"{service} of {name} runs in {ids}"
        t = engine.docker("inspect", "--format", "{{.State.StartedAt}}", ids[0]).strip()
        # 2026-12-07T21:30:01.123456789Z: keep microseconds for fromisoformat
        head, frac = t.rstrip("Z").split(".")
        return datetime.datetime.fromisoformat(f"{head}.{frac[:6]}").timestamp()
    gap = started(later) - started(first)
    assert gap >= secs, f"{later} started {gap:.2f} s after {first}, not {secs} s or more"


# ---- the example ----

EXAMPLES = os.path.join(os.path.dirname(__file__), "..", "..", "..", "examples")


@given('a git repository "{repo:Q}" holding the example "{example:Q}"')
def step_repo_example(context, repo, example):
    d = rt(context)
    root = os.path.join(EXAMPLES, example)
    files = {}
    for dirpath, _, names in os.walk(root):
        for n in names:
            full = os.path.join(dirpath, n)
            files[os.path.relpath(full, root)] = open(full).read()
    d.repos.create(repo, "FROM dms-test/web:latest\n", {})
    os.unlink(os.path.join(work_dir(d, repo), "Dockerfile"))
    write_files(d, repo, files)
    commit(d, repo, "the example " + example)


@then('"{name:Q}" answers "{path:Q}" with JSON holding "{key:Q}" through the proxy within {secs:d} s')
def step_answers_json(context, name, path, key, secs):
    import json
    d = rt(context)

    def probe():
        a = d.via_proxy(name, path=path)
        assert a.status == 200, a.describe()
        body = json.loads(a.text)
        assert key in body, f"{path}: {body}"
        return body
    eventually(probe, secs, f"{name} answers {path} with {key}")


@when('"{name:Q}" is restarted through the API')
def step_restart(context, name):
    d = rt(context)
    d.api_ok("POST", f"/droids/{d.droids[name]}/restart")


@then('the droid "{name:Q}" shows the services "{a:Q}" and "{b:Q}", each "{state:Q}", none routed')
def step_services_unrouted(context, name, a, b, state):
    d = rt(context)

    def probe():
        svcs = {s["name"]: s for s in (d.droid(name).get("services") or [])}
        assert set(svcs) == {a, b}, f"services of {name}: {svcs}"
        for s in svcs.values():
            assert s["status"] == state and not s["routed"], f"services of {name}: {svcs}"
        return True
    eventually(probe, 30, f"the services of {name} are {state}")


@when('a new commit of "{name:Q}" changes the file "{path:Q}" to "{text:Q}" and is deployed')
def step_push_file(context, name, path, text):
    d = rt(context)
    write_files(d, name, {path: text + "\n"})
    commit(d, name, "change " + path)
    d.api_ok("PATCH", f"/droids/{d.droids[name]}", {"branch": "main"})


@then('the service "{service:Q}" of "{name:Q}" mounts "{target:Q}" read-only')
def step_mount_ro(context, service, name, target):
    import json
    d = rt(context)
    ids = service_containers(d, name, service)
    assert len(ids) == 1, f"{service} of {name} runs in {ids}"
    mounts = json.loads(engine.docker("inspect", "--format", "{{json .Mounts}}", ids[0]))
    m = [x for x in mounts if x["Destination"] == target]
    assert len(m) == 1 and m[0]["RW"] is False and m[0]["Type"] == "bind", f"mounts: {mounts}"
    assert f"/droids/{d.droids[name]}/binds/" in m[0]["Source"], f"mounts: {mounts}"
