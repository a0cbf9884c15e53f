"""Several clients at once: concurrent dms-exec processes, and threads of one executor object (ctypes)."""
import json
import os
import subprocess

from behave import then, when

from dmsfeat import engine
from dmsfeat.steputil import assert_error, assert_ok, check_outcome, job, remember, subst
from dmsfeat.cli import Outcome

RECOVER_WAIT_TIMEOUT_MS = 30000
CAPI = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "dmsfeat", "capi.py")
# Debian's interpreter, as for behave itself (ctypes against our library; never another python on PATH).
PYTHON = "/usr/bin/python3"
CLIENT_TIMEOUT_S = 30
CAPI_TIMEOUT_S = 40
# A cancel returns once the job has ended: its grace period plus a margin. Longer is a hang; fail the step then.
CANCEL_CALL_TIMEOUT_S = 15


def all_at_once(context, argvs):
    """Starts every dms-exec at once (no waiting in between), then collects them all."""
    procs = [context.dms.spawn(a) for a in argvs]
    return [p.finish(CLIENT_TIMEOUT_S) for p in procs]


@when('{n:d} clients start execution "{execution:Q}" at the same time running "{script:Q}"')
def step_concurrent_starts(context, n, execution, script):
    context.outcomes = all_at_once(context, [["start", "--exec", execution, *job(context, script)]] * n)


@then('exactly one start succeeds and the others fail with {code:w}')
def step_one_wins(context, code):
    won = [o for o in context.outcomes if o.rc == 0]
    lost = [o for o in context.outcomes if o.rc != 0]
    assert len(won) == 1, f"{len(won)} starts succeeded:\n" + "\n".join(o.describe() for o in context.outcomes)
    for o in lost:
        assert_error(o, code)


@when('{n:d} clients start executions at the same time on the network "{network:Q}" running "{script:Q}"')
def step_concurrent_network(context, n, network, script):
    """Executions e1..en, each from its own dms-exec, all on one named network that nobody has made yet: every
    process sees it missing and creates it at once."""
    name = subst(context, network)
    argvs = [["start", "--exec", f"e{i + 1}", *job(context, script, f"--network {name}")] for i in range(n)]
    context.outcomes = all_at_once(context, argvs)


@then('every start succeeds')
def step_all_won(context):
    bad = [o for o in context.outcomes if o.rc != 0]
    assert not bad, f"{len(bad)} starts failed:\n" + "\n".join(o.describe() for o in bad)


@then('exactly one network named "{network:Q}" is left, carrying this executor\'s label')
def step_one_network(context, network):
    name = subst(context, network)
    out = engine.docker("network", "ls", "--filter", f"name={name}", "--format", "{{.Name}} {{.ID}}")
    exact = [line.split()[1] for line in out.splitlines() if line.split()[0] == name]
    assert len(exact) == 1, f"{len(exact)} networks are named {name}: {exact}"
    assert engine.labels("network", exact[0]).get("io.dms.executor") == context.executor_id


@when('{n:d} clients wait for execution "{execution:Q}" at the same time')
def step_concurrent_waits(context, n, execution):
    outs = all_at_once(context, [["wait", execution]] * n)
    for o in outs:
        assert o.json is not None and "outcome" in o.json, f"a waiter got no result:\n{o.describe()}"
    context.multi = [o.json for o in outs]


@when('{n:d} threads of one executor object wait for execution "{execution:Q}" at the same time')
def step_thread_waits(context, n, execution):
    argv = [PYTHON, CAPI, context.lib_path, context.plugin_dir, context.backend_name, context.executor_id,
            context.state_dir, "waiters", execution, str(n), str(CLIENT_TIMEOUT_S * 1000)]
    p = subprocess.run(argv, capture_output=True, text=True, timeout=CAPI_TIMEOUT_S, stdin=subprocess.DEVNULL)
    o = remember(context, Outcome(argv, p.returncode, p.stdout, p.stderr, 0))
    assert p.returncode == 0 and o.json, f"the threaded waiter failed:\n{o.describe()}"
    threads = o.json["threads"]
    assert len(threads) == n, f"expected {n} threads, got {len(threads)}"
    for t in threads:
        assert t["rc"] == 0, f"a thread's wait failed: {t}"
    context.multi = [t["result"] for t in threads]


def every_outcome(context, outcome, code):
    for res in context.multi:
        check_outcome(res, outcome, exit_code=code)


def every_same(context, stdout):
    first = context.multi[0]
    for res in context.multi[1:]:
        assert res == first, f"results differ:\n{json.dumps(first)}\n{json.dumps(res)}"
    assert first["stdout"] == stdout + "\n", f"expected stdout {stdout!r}, got {first['stdout']!r}"


@then('every {who:w} gets the outcome "{outcome:Q}" with exit code {code:d}')
def step_every_outcome(context, who, outcome, code):
    every_outcome(context, outcome, code)


@then('every {who:w} gets the same result, with stdout "{stdout:Q}"')
def step_every_same(context, who, stdout):
    every_same(context, stdout)


@then('both waits give the outcome "{outcome:Q}" with exit code {code:d}')
def step_both_outcome(context, outcome, code):
    assert context.previous_result and context.result, "expected two results"
    context.multi = [context.previous_result, context.result]
    every_outcome(context, outcome, code)


@then('both waits give the same result, with stdout "{stdout:Q}"')
def step_both_same(context, stdout):
    context.multi = [context.previous_result, context.result]
    every_same(context, stdout)


# ---- cancel ----

@when('I cancel execution "{execution:Q}"')
def step_cancel(context, execution):
    remember(context, context.dms.run(["cancel", execution], timeout_s=CANCEL_CALL_TIMEOUT_S))


@when('I cancel execution "{execution:Q}" at once')
def step_cancel_now(context, execution):
    remember(context, context.dms.run(["cancel", "--now", execution], timeout_s=CANCEL_CALL_TIMEOUT_S))


@then('the cancel succeeds')
def step_cancel_ok(context):
    assert_ok(context.last, "cancel")


@then('the cancel fails with {code:w}')
def step_cancel_fails(context, code):
    assert_error(context.last, code)


@when('{n:d} clients cancel execution "{execution:Q}" at the same time')
def step_concurrent_cancels(context, n, execution):
    context.outcomes = all_at_once(context, [["cancel", execution]] * n)


@then('every cancel succeeds within {seconds:g} seconds')
def step_every_cancel(context, seconds):
    for o in context.outcomes:
        assert_ok(o, "cancel")
        assert o.seconds < seconds, f"a cancel took {o.seconds:.2f} s:\n{o.describe()}"


def capi_start_cancel(context, execution, image, delay_ms):
    spec = {"execution_id": execution, "job_id": execution, "engine": {"image": image, "cmd": ["true"]}}
    path = os.path.join(context.scenario_dir, f"{execution}-capi.json")
    with open(path, "w") as f:
        json.dump(spec, f)
    argv = [PYTHON, CAPI, context.lib_path, context.plugin_dir, context.backend_name, context.executor_id,
            context.state_dir, "start-cancel", path, str(delay_ms)]
    p = subprocess.run(argv, capture_output=True, text=True, timeout=CAPI_TIMEOUT_S, stdin=subprocess.DEVNULL)
    o = remember(context, Outcome(argv, p.returncode, p.stdout, p.stderr, 0))
    assert p.returncode == 0 and o.json, f"the threaded start/cancel failed:\n{o.describe()}"
    return o.json


@when('a new process recovers the executor and waits for execution "{execution:Q}" on the same executor object')
def step_capi_recover_wait(context, execution):
    argv = [PYTHON, CAPI, context.lib_path, context.plugin_dir, context.backend_name, context.executor_id,
            context.state_dir, "recover-wait", execution, str(RECOVER_WAIT_TIMEOUT_MS)]
    p = subprocess.run(argv, capture_output=True, text=True, timeout=CAPI_TIMEOUT_S, stdin=subprocess.DEVNULL)
    o = remember(context, Outcome(argv, p.returncode, p.stdout, p.stderr, 0))
    assert p.returncode == 0 and o.json, f"recover and wait on one object failed:\n{o.describe()}"
    assert o.json["wait"] and o.json["wait"]["rc"] == 0, f"the wait after recover failed: {o.json}"
    context.recovered = {"adopted": o.json["adopted"]}
    context.result = o.json["result"]


@when('one thread starts execution "{execution:Q}" from an image on that registry and another thread cancels it a '
      'second later')
def step_thread_start_cancel(context, execution):
    context.capi = capi_start_cancel(context, execution, context.registry_image, 1000)
    assert context.registry.accepted > 0, "the registry was never asked for the image: the pull was not under way"


@then('the cancel succeeded within {seconds:g} seconds')
def step_capi_cancel_ok(context, seconds):
    c = context.capi["cancel"]
    assert c["rc"] == 0, f"cancel failed: {c}"
    assert c["seconds"] < seconds, f"cancel took {c['seconds']:.2f} s: {c}"


@then('the start failed with {code:w}')
def step_capi_start_failed(context, code):
    s = context.capi["start"]
    assert s["error"] == code, f"expected the start to fail with {code}: {s}"


@then('the result\'s outcome is "{outcome:Q}"')
def step_capi_result(context, outcome):
    res = context.capi["result"]
    assert res is not None, f"no result after the cancel: {context.capi}"
    check_outcome(res, outcome)
