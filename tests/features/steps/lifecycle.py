"""Steps about run (start + wait in one call) and recover (a new process picking up what an earlier one left)."""
import signal

from behave import given, then, when

from dmsfeat.steputil import (WORKLOAD_GONE_TIMEOUT_S, assert_ok, eventually, job, objects_of, remember, status)

RUN_EXEC = "run1"


# ---- run ----

def run(context, script, flags="", as_json=True):
    r = remember(context, context.dms.run(["run", "--exec", RUN_EXEC, *job(context, script, flags)], as_json=as_json))
    if as_json and r.json is not None and "outcome" in r.json:
        context.result = r.json
    return r


@when('I run "{script:Q}"')
def step_run_plain(context, script):
    run(context, script, as_json=False)


@when('I run "{script:Q}" with a JSON result')
def step_run_json(context, script):
    run(context, script)


@when('I run "{script:Q}" with the flags "{flags:Q}" and a JSON result')
def step_run_flags_json(context, script, flags):
    run(context, script, flags)


@when('I run the program "{program:Q}" with a JSON result')
def step_run_program(context, program):
    remember(context, context.dms.run(["run", "--exec", RUN_EXEC,
                                       *context.backend.job_args(None, extra=["--entrypoint", program])]))


@then('its own output shows "{text:Q}"')
def step_run_output(context, text):
    assert text + "\n" in context.last.out, f"dms-exec run did not show {text!r}:\n{context.last.describe()}"


@then('nothing is left running for the run')
def step_nothing_running(context):
    eventually(lambda: not objects_of(context, RUN_EXEC), WORKLOAD_GONE_TIMEOUT_S,
               f"the workload of execution {RUN_EXEC} is gone (found {objects_of(context, RUN_EXEC)})")


# ---- recover ----

@given('a client started execution "{execution:Q}" running "{script:Q}" and stays to wait for it')
def step_client_running(context, execution, script):
    context.client = context.dms.spawn(["run", "--quiet", "--exec", execution, *job(context, script)])


@given('that client dies without a word')
def step_client_dies(context):
    assert context.client.running(), f"the client ended too early:\n{context.client.finish(1).describe()}"
    context.client.kill()  # SIGKILL by pid: no cancel, no cleanup, like a crash
    context.client.proc.wait(10)
    assert context.client.proc.returncode == -signal.SIGKILL


@given('the workload of execution "{execution:Q}" has ended while nobody watched')
def step_ended_unwatched(context, execution):
    st = status(context, execution)
    assert st is not None, f"no execution {execution}"
    if st["state"] == "finished":
        return
    assert st.get("handle"), f"status names no workload: {st}"
    eventually(lambda: context.backend.workload_ended(st), WORKLOAD_GONE_TIMEOUT_S,
               f"the workload of {execution} ended")


@when('a new process recovers the executor')
def step_recover(context):
    r = remember(context, context.dms.run(["recover"]))
    assert_ok(r, "recover")
    context.recovered = r.json


@then('it adopted {n:d} execution')
def step_adopted(context, n):
    assert context.recovered and context.recovered.get("adopted") == n, \
        f"expected {n} adopted executions, got {context.recovered}"


@then('the result\'s stdout has every line from "{first:Q}" to "{last:Q}"')
def step_stdout_range(context, first, last):
    prefix, a = first.rsplit(" ", 1)
    _, b = last.rsplit(" ", 1)
    want = "".join(f"{prefix} {i}\n" for i in range(int(a), int(b) + 1))
    got = context.result["stdout"]
    assert got == want, f"expected stdout {want!r}, got {got!r}"
