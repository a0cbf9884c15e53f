"""Steps of healthcheck.feature: what status says of a workload's health check, an image with a check of its own,
and a backend that runs no checks."""
import os
import time

from behave import given, then

from dmsfeat.steputil import assert_error, assert_ok, eventually, job, objects_of, remember, start, status

# Long enough for the engine's first verdicts with a 200 ms interval on a loaded 2-core machine (each check is an
# exec, about 0.1 s here: docs/engine-notes.md §10), short enough that a check that never passes fails the step.
HEALTH_DEADLINE_S = 20
BUILD_TIMEOUT_S = 60
# The tag healthcheck.feature's scenarios carry where the backend must run the check itself.
NEEDS_HEALTHCHECK = "needs-healthcheck"


def health_of(context, execution):
    st = status(context, execution)
    assert st is not None, f"status: no execution {execution}"
    assert "health" in st, f"status reports no health: {st}"
    return st


@then('execution "{execution:Q}" becomes "{health:Q}"')
def step_becomes(context, execution, health):
    def probe():
        st = health_of(context, execution)
        assert st["state"] == "running", f"state is {st['state']} (health {st['health']}): {st}"
        assert st["health"] == health, f"health is {st['health']}"
        return st
    eventually(probe, HEALTH_DEADLINE_S, f"execution {execution} is {health}")


@then('execution "{execution:Q}" stays "{health:Q}" for {seconds:g} seconds')
def step_stays(context, execution, health, seconds):
    end = time.monotonic() + seconds
    while True:
        st = health_of(context, execution)
        assert st["state"] == "running", f"execution {execution} stopped running: {st}"
        assert st["health"] == health, f"execution {execution} is {st['health']}, not {health}: {st}"
        if time.monotonic() >= end:
            return
        time.sleep(0.2)


@given('an image "{name:Q}" of this executor whose own HEALTHCHECK passes')
def step_image_with_check(context, name):
    """Built from dms-test/busybox by dms-exec build, so it carries the executor's labels and the scenario's cleanup
    removes it. The check's interval is short so that its verdict comes within the scenario's deadline."""
    d = os.path.join(context.scenario_dir, "image-" + name)
    os.makedirs(d)
    with open(os.path.join(d, "Dockerfile"), "w") as f:
        f.write("FROM dms-test/busybox:latest\nHEALTHCHECK --interval=200ms --retries=2 CMD true\n")
    context.image_tag = f"{context.executor_id}-{name}:latest".lower()
    r = remember(context, context.dms.run(["build", "--tag", context.image_tag, d], as_json=False,
                                          timeout_s=BUILD_TIMEOUT_S))
    assert_ok(r, f"build {context.image_tag}")


@given('I started execution "{execution:Q}" from that image with the flags "{flags:Q}" running "{script:Q}"')
def step_started_from_image(context, execution, flags, script):
    assert_ok(start(context, execution, job(context, script, flags, image=context.image_tag)), f"start {execution}")


@then('the start succeeds where the backend runs health checks, and elsewhere fails with {code:w} naming the field '
      '"{field:Q}" and leaves nothing of execution "{execution:Q}"')
def step_start_where_checks_run(context, code, field, execution):
    if NEEDS_HEALTHCHECK not in context.backend.UNSUPPORTED:
        assert_ok(context.last, f"start {execution}")
        return
    assert_error(context.last, code, field)
    found = objects_of(context, execution)
    assert not found, f"execution {execution} left objects behind: {found}"
    assert status(context, execution) is None, f"the executor knows the refused execution {execution}"
