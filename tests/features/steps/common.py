"""Steps and helpers shared by every feature: starting, running, waiting, results, timing."""
import os
import signal

from behave import given, step, then, when

from dmsfeat.steputil import (STATUS_POLL_TIMEOUT_S, WORKLOAD_GONE_TIMEOUT_S, assert_error, assert_ok, check_outcome,
                              eventually, exec_dirs, flags_of, job, objects_of, remember, start, status, the_result,
                              wait_result)

# ---- starting ----

@when('I start execution "{execution:Q}" of job "{job_id:Q}" running "{script:Q}"')
def step_start_with_job(context, execution, job_id, script):
    start(context, execution, ["--job", job_id, *job(context, script)])


@when('I start execution "{execution:Q}" running "{script:Q}"')
def step_start(context, execution, script):
    start(context, execution, job(context, script))


@given('I started execution "{execution:Q}" running "{script:Q}"')
def step_started(context, execution, script):
    assert_ok(start(context, execution, job(context, script)), f"start {execution}")


@given('I started execution "{execution:Q}" with the flags "{flags:Q}" running "{script:Q}"')
def step_started_flags(context, execution, flags, script):
    assert_ok(start(context, execution, job(context, script, flags)), f"start {execution}")


@when('I start execution "{execution:Q}" with the flags "{flags:Q}"')
def step_start_flags(context, execution, flags):
    start(context, execution, job(context, "true", flags))


@when('I start execution "{execution:Q}" from the JSON spec')
def step_start_spec(context, execution):
    path = os.path.join(context.scenario_dir, f"{execution}.json")
    with open(path, "w") as f:
        f.write(context.text)
    start(context, execution, ["--spec", path])


@when('I start execution "{execution:Q}" from the image "{image:Q}"')
def step_start_image(context, execution, image):
    start(context, execution, job(context, "true", image=image))


@when('I start execution "{execution:Q}" with the entrypoint "{program:Q}"')
def step_start_entrypoint(context, execution, program):
    start(context, execution, context.backend.job_args(None, extra=["--entrypoint", program]))


@given('I started a job that ignores SIGTERM as execution "{execution:Q}" with the flags "{flags:Q}"')
def step_started_ignorer(context, execution, flags):
    args = context.backend.sigterm_ignorer_args(extra=flags_of(context, flags))
    assert_ok(start(context, execution, args), f"start {execution}")


@then('the start succeeds')
def step_start_succeeds(context):
    assert_ok(context.last, "start")


@then('the start fails with {code:w}')
def step_start_fails(context, code):
    assert_error(context.last, code)


@then('the start fails with {code:w} naming the field "{field:Q}"')
def step_start_fails_field(context, code, field):
    assert_error(context.last, code, field)


@then('the error message mentions "{text:Q}"')
def step_error_mentions(context, text):
    msg = (context.last.json or {}).get("message", "")
    assert text in msg, f"the error message does not mention {text!r}:\n{context.last.describe()}"


# ---- running to completion ----

def ran_to_completion(context, execution, script, flags=""):
    r = remember(context, context.dms.run(["run", "--exec", execution, *job(context, script, flags)]))
    assert r.json is not None and "outcome" in r.json, f"run {execution} gave no result:\n{r.describe()}"
    context.result = r.json
    context.results[execution] = r.json
    return r


@given('execution "{execution:Q}" ran to completion running "{script:Q}"')
def step_ran(context, execution, script):
    ran_to_completion(context, execution, script)


@given('execution "{execution:Q}" ran to completion with the flags "{flags:Q}" running "{script:Q}"')
def step_ran_flags(context, execution, flags, script):
    ran_to_completion(context, execution, script, flags)


# ---- where an execution stands ----

@step('execution "{execution:Q}" is running')
def step_is_running(context, execution):
    def probe():
        st = status(context, execution)
        assert st is not None, f"status: no execution {execution}"
        assert st["state"] == "running", f"state is {st['state']}: {st}"
        return st
    eventually(probe, STATUS_POLL_TIMEOUT_S, f"execution {execution} is running")


@then('execution "{execution:Q}" is preparing')
def step_is_preparing(context, execution):
    st = status(context, execution)
    assert st is not None, f"status: no execution {execution}"
    assert st["state"] == "preparing", f"expected state preparing while the image is pulled, got {st}"


@then('nothing exists for execution "{execution:Q}" but its state')
def step_nothing_but_state(context, execution):
    found = objects_of(context, execution)
    assert not found, f"execution {execution} left objects behind: {found}"


@then('nothing exists for execution "{execution:Q}"')
def step_nothing(context, execution):
    found = objects_of(context, execution)
    assert not found, f"execution {execution} left objects behind: {found}"
    dirs = exec_dirs(context, execution)
    assert not dirs, f"execution {execution} left state behind: {dirs}"
    st = status(context, execution)
    assert st is None, f"the executor still knows execution {execution}: {st}"


@step('the workload of execution "{execution:Q}" is gone')
def step_workload_gone(context, execution):
    eventually(lambda: not objects_of(context, execution), WORKLOAD_GONE_TIMEOUT_S,
               f"the workload of execution {execution} is gone (found {objects_of(context, execution)})")


# ---- markers: proof of how many times a job ran ----

@given('a marker file the job can append to')
def step_marker(context):
    d = os.path.join(context.scenario_dir, "mark")
    os.makedirs(d)
    os.chmod(d, 0o777)
    context.marker_dir = d


@then('the marker file says the job ran exactly once')
def step_marker_once(context):
    path = os.path.join(context.marker_dir, "runs")
    lines = open(path).read().splitlines() if os.path.exists(path) else []
    assert lines == ["ran"], f"expected the job to have run exactly once, the marker file holds {lines}"


# ---- waiting ----

@when('I wait for execution "{execution:Q}"')
def step_wait(context, execution):
    context.previous_result = getattr(context, "result", None)
    context.result = None
    wait_result(context, execution)


@when('I wait for execution "{execution:Q}" again')
def step_wait_again(context, execution):
    context.previous_result = getattr(context, "result", None)
    context.result = None
    wait_result(context, execution)


@when('I wait for execution "{execution:Q}" for at most {ms:d} ms')
def step_wait_timeout(context, execution, ms):
    context.result = None
    wait_result(context, execution, ["--timeout", f"{ms}ms"])


@then('the wait fails with {code:w}')
def step_wait_fails(context, code):
    assert_error(context.last, code)


@then('the outcome is "{outcome:Q}"')
def step_outcome(context, outcome):
    check_outcome(the_result(context), outcome)


@then('the outcome is "{outcome:Q}" with exit code {code:d}')
def step_outcome_code(context, outcome, code):
    check_outcome(the_result(context), outcome, exit_code=code)


@then('the outcome is "{outcome:Q}" with signal {sig:d}')
def step_outcome_signal(context, outcome, sig):
    check_outcome(the_result(context), outcome, signal=sig)


@then('the result\'s stdout is "{text:Q}"')
def step_result_stdout(context, text):
    res = the_result(context)
    assert res["stdout"] == text + "\n", f"expected stdout {text!r}, got {res['stdout']!r}"


@then('the result\'s stderr is "{text:Q}"')
def step_result_stderr(context, text):
    res = the_result(context)
    assert res["stderr"] == text + "\n", f"expected stderr {text!r}, got {res['stderr']!r}"


@then('the result\'s error mentions "{text:Q}"')
def step_result_error(context, text):
    res = the_result(context)
    assert text in res.get("error", ""), f"the result's error does not mention {text!r}: {res}"


@then('the result says it was OOM-killed')
def step_oom(context):
    res = the_result(context)
    assert res["oom_killed"] is True, f"expected oom_killed true: {res}"


@then('the result says it was not OOM-killed')
def step_not_oom(context):
    res = the_result(context)
    assert res["oom_killed"] is False, f"expected oom_killed false: {res}"


@then('dms-exec exited with {rc:d}')
def step_exit_code(context, rc):
    assert context.last.rc == rc, f"expected dms-exec to exit {rc}:\n{context.last.describe()}"


# ---- timing ----

@then('the answer came within {seconds:g} seconds')
def step_within(context, seconds):
    assert context.last.seconds < seconds, f"took {context.last.seconds:.2f} s (limit {seconds:g} s):\n" \
                                           f"{context.last.describe()}"


@then('the answer came after at least {low:g} seconds and within {high:g} seconds')
def step_between(context, low, high):
    s = context.last.seconds
    assert low <= s < high, f"took {s:.2f} s, expected [{low:g}, {high:g}) s:\n{context.last.describe()}"


@when('someone outside dms kills the workload of execution "{execution:Q}" with SIGKILL')
def step_kill_outside(context, execution):
    st = status(context, execution)
    assert st is not None and st["state"] == "running", f"execution {execution} is not running: {st}"
    context.backend.kill_from_outside(st, signal.SIGKILL)


@then('no workload of execution "{execution:Q}" is running any more')
def step_no_workload_running(context, execution):
    # No polling: cancel returns once the execution has ended.
    alive = context.backend.running_workloads(context.executor_id, execution, context.state_dir)
    assert not alive, f"execution {execution} still runs: {alive}"
