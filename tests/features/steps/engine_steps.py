"""Steps that look at (or fake) what lies behind the backend: its socket, a registry, the engine's objects."""
import os

from behave import given, then, when

from dmsfeat import engine, fakes
from dmsfeat.steputil import assert_ok, job, remember, subst

REGISTRY_CONTACT_TIMEOUT_S = 10
INSTALLED_CALL_TIMEOUT_S = 30
STALLING_IMAGE_PATH = "dms-features/stalled:latest"


# ---- is_installed ----

def ask_installed(context, options=()):
    remember(context, context.dms.run(["is-installed"], options=options, timeout_s=INSTALLED_CALL_TIMEOUT_S))


@when('I ask whether the backend is installed')
def step_ask(context):
    ask_installed(context)


@when('I ask whether the backend is installed through a socket path where nothing exists')
def step_ask_nothing(context):
    context.socket_path = os.path.join(context.scenario_dir, "nonexistent.sock")
    ask_installed(context, [f"host=unix://{context.socket_path}"])


@given('a unix socket server that accepts connections and never answers')
def step_silent_socket(context):
    context.socket_path = os.path.join(context.scenario_dir, "silent.sock")
    context.servers.append(fakes.SilentUnixServer(context.socket_path))


@given('a unix socket server that answers garbage')
def step_garbage_socket(context):
    context.socket_path = os.path.join(context.scenario_dir, "garbage.sock")
    context.servers.append(fakes.GarbageUnixServer(context.socket_path))


@when('I ask whether the backend is installed through that socket')
def step_ask_socket(context):
    ask_installed(context, [f"host=unix://{context.socket_path}"])


@then('it says it is installed')
def step_installed(context):
    r = context.last
    assert r.rc == 0 and r.json and r.json.get("installed") is True, f"expected installed:\n{r.describe()}"


@then('it says it is not installed')
def step_not_installed(context):
    r = context.last
    assert r.rc == 1 and r.json and r.json.get("installed") is False, f"expected not installed:\n{r.describe()}"


@then('the reason names the socket')
def step_reason_socket(context):
    reason = context.last.json.get("reason", "")
    assert context.socket_path in reason, f"the reason does not name {context.socket_path}: {reason!r}"


# ---- a registry that never answers ----

@given('a registry on 127.0.0.1 that accepts connections and never answers')
def step_registry(context):
    context.registry = fakes.StallingRegistry()
    context.servers.append(context.registry)
    context.registry_image = f"127.0.0.1:{context.registry.port}/{STALLING_IMAGE_PATH}"


@given('a client is starting execution "{execution:Q}" from an image on that registry')
def step_starting_from_registry(context, execution):
    context.starter = context.dms.spawn(["start", "--exec", execution,
                                         *job(context, "true", image=context.registry_image)])


@when('the registry has been asked for the image')
@given('the registry has been asked for the image')
def step_registry_asked(context):
    assert context.registry.accepted_event.wait(REGISTRY_CONTACT_TIMEOUT_S), \
        f"nobody contacted the registry within {REGISTRY_CONTACT_TIMEOUT_S} s; the starting client: " \
        f"{'still running' if context.starter.running() else context.starter.finish(1).describe()}"


@then('the starting client fails with {code:w} within {seconds:g} seconds')
def step_starter_fails(context, code, seconds):
    o = context.starter.finish(seconds)
    assert o.rc == 125 and o.error_code == code, f"expected the start to fail with {code}:\n{o.describe()}"


# ---- labels ----

@then('the container of execution "{execution:Q}" carries the labels')
def step_labels(context, execution):
    objs = context.backend.execution_objects(context.executor_id, execution, context.state_dir)
    ids = objs.get("container", [])
    assert len(ids) == 1, f"expected one container for execution {execution}, found {objs}"
    got = engine.labels("container", ids[0])
    for row in context.table:
        want = subst(context, row["value"])
        assert got.get(row["label"]) == want, f"label {row['label']}: expected {want!r}, got {got.get(row['label'])!r}" \
                                              f" (all labels: {got})"


# ---- bystanders: what cleanup must leave alone ----

def make_bystanders(context, names, labels):
    made = []
    for kind, name in zip(engine.KINDS, names):
        ident = engine.create(kind, name, labels, image="dms-test/busybox:latest")
        context.bystanders.append((kind, ident))
        made.append((kind, ident))
    return made


@given('a container, a network and a volume named like ours but without our labels')
def step_unlabelled(context):
    x = context.executor_id
    context.unlabelled = make_bystanders(context, [f"dms-{x}-stray", f"{x}-net-stray", f"{x}-vol-stray"],
                                         {engine.BYSTANDER_LABEL: context.run_id})


@given('a container, a network and a volume labelled as another executor\'s')
def step_other_executor(context):
    other = f"{context.executor_id}-other"
    labels = {"io.dms.managed": "true", "io.dms.executor": other, "io.dms.job": "x", "io.dms.execution": "x",
              engine.BYSTANDER_LABEL: context.run_id}
    context.other_executor = make_bystanders(context, [f"dms-{other}-x", f"{other}-net", f"{other}-vol"], labels)


@then('the container, the network and the volume without our labels still exist')
def step_unlabelled_survive(context):
    for kind, ident in context.unlabelled:
        assert engine.exists(kind, ident), f"cleanup removed a {kind} without our labels: {ident}"


@then('the container, the network and the volume of the other executor still exist')
def step_other_survive(context):
    for kind, ident in context.other_executor:
        assert engine.exists(kind, ident), f"cleanup removed another executor's {kind}: {ident}"


# ---- cleanup ----

@when('I clean up')
@when('I clean up again')
def step_cleanup(context):
    r = remember(context, context.dms.run(["cleanup"]))
    assert_ok(r, "cleanup")
    assert r.json, f"cleanup printed no counts:\n{r.describe()}"
    context.cleanup = r.json


@then('cleanup reports {c:d} containers, {n:d} networks, {v:d} volumes and {e:d} errors')
def step_cleanup_counts(context, c, n, v, e):
    want = {"containers": c, "networks": n, "volumes": v, "errors": e}
    got = {k: context.cleanup.get(k) for k in want}
    assert got == want, f"cleanup reported {context.cleanup}, expected {want}"


@then('cleanup reports {n:d} execution state directories removed')
def step_cleanup_state(context, n):
    assert context.cleanup.get("state_dirs") == n, f"cleanup reported {context.cleanup}, expected state_dirs {n}"


@then('nothing carries our executor label any more')
def step_nothing_labelled(context):
    # Cleanup returns once it has removed everything: no polling here.
    left = context.backend.leftovers(context.executor_id, context.state_dir)
    assert not left, f"cleanup returned but these still carry io.dms.executor={context.executor_id}: {left}"


# ---- no engine: dms-exec falls back to the process backend when the workload allows ----

def unchosen(context, args):
    """dms-exec with no backend chosen (no -x, no DMS_EXECUTOR) and the Docker backend pointed at the scenario's
    socket path; the scenario's executor id and state dir as usual."""
    d = context.dms
    argv = [d.binary, "-i", d.executor_id, "--state-dir", d.state_dir, "--plugin-dir", d.plugin_dir,
            "-o", f"host=unix://{context.socket_path}", "--json", *args]
    r = remember(context, d.spawn_argv(argv).finish())
    if r.json is not None and "outcome" in r.json:
        context.result = r.json
    return r


@when('without choosing a backend, through a socket path where nothing exists, I start execution "{execution:Q}" '
      'running "{script:Q}"')
def step_unchosen_start(context, execution, script):
    context.socket_path = os.path.join(context.scenario_dir, "nonexistent.sock")
    unchosen(context, ["start", "--exec", execution, "--", "sh", "-c", script])


@when('without choosing a backend, through a socket path where nothing exists, I start execution "{execution:Q}" '
      'from the image "{image:Q}"')
def step_unchosen_start_image(context, execution, image):
    context.socket_path = os.path.join(context.scenario_dir, "nonexistent.sock")
    unchosen(context, ["start", "--exec", execution, "--image", image, "--", "true"])


@when('without choosing a backend, through that socket path, I call dms-exec {command:w} on "{execution:Q}"')
def step_unchosen_command(context, command, execution):
    unchosen(context, [command, execution])


@then('dms-exec printed "{text:Q}"')
def step_printed(context, text):
    assert text in context.last.out, f"expected {text!r} on stdout:\n{context.last.describe()}"


@then('dms-exec said "{a:Q}" and "{b:Q}"')
def step_said(context, a, b):
    err = context.last.err
    assert a in err and b in err, f"expected {a!r} and {b!r} on stderr:\n{context.last.describe()}"
