"""Helpers the step modules share (kept out of steps/: behave executes every file there as a step module, so a
step module imported by another would register its steps twice)."""
import os
import shlex

import parse
from behave import register_type

from dmsfeat.util import eventually  # noqa: F401 - re-exported for the step modules

# A quoted step argument: anything but a double quote (so two quoted arguments never run into each other).
@parse.with_pattern(r'[^"]*')
def _quoted(text):
    return text


register_type(Q=_quoted)

STATUS_POLL_TIMEOUT_S = 10
WORKLOAD_GONE_TIMEOUT_S = 10
EXIT_DMS_ERROR = 125


def subst(context, text):
    """Replaces <executor id> (the scenario's executor id) in step text."""
    return text.replace("<executor id>", context.executor_id)


def flags_of(context, flags):
    return shlex.split(subst(context, flags)) if flags else []


def job(context, script, flags="", image=None):
    """dms-exec request flags for a job running `sh -c script` on this backend (with the marker if any)."""
    return context.backend.job_args(script, marker_dir=getattr(context, "marker_dir", None), image=image,
                                    extra=flags_of(context, flags))


def remember(context, outcome):
    context.last = outcome
    return outcome


def start(context, execution, args):
    return remember(context, context.dms.run(["start", "--exec", execution, *args]))


def assert_ok(outcome, what):
    assert outcome.rc == 0, f"{what} failed:\n{outcome.describe()}"


def assert_error(outcome, code, field=None):
    assert outcome.rc == EXIT_DMS_ERROR, f"expected a dms error ({code}), exit {EXIT_DMS_ERROR}:\n{outcome.describe()}"
    assert outcome.error_code == code, f"expected error {code}, got {outcome.error_code}:\n{outcome.describe()}"
    if field is not None:
        got = outcome.json.get("field")
        assert got == field, f"expected the error to name the field {field!r}, it names {got!r}:\n{outcome.describe()}"


def status(context, execution):
    """The status JSON of an execution, or None when the executor does not know it (NOT_FOUND)."""
    r = context.dms.run(["status", execution])
    if r.rc != 0 and r.error_code == "NOT_FOUND":
        return None
    assert_ok(r, f"status {execution}")
    return r.json


def wait_result(context, execution, extra=()):
    r = remember(context, context.dms.run(["wait", *extra, execution]))
    if r.json is not None and "outcome" in r.json:
        context.result = r.json
        context.results[execution] = r.json
    return r


def the_result(context):
    res = getattr(context, "result", None)
    assert res is not None, f"no result yet; the last call was:\n{context.last.describe() if context.last else '-'}"
    return res


def check_outcome(res, outcome, exit_code=None, signal=None):
    assert res.get("outcome") == outcome, f"expected outcome {outcome}, got {res}"
    if exit_code is not None:
        assert res.get("exit_code") == exit_code, f"expected exit code {exit_code}, got {res}"
    if signal is not None:
        assert res.get("signal") == signal, f"expected signal {signal}, got {res}"


def exec_dirs(context, execution):
    """The state directories of one execution (however the backend lays out its state dir)."""
    found = []
    for root, dirs, _files in os.walk(context.state_dir):
        if os.path.basename(root) == execution and root != context.state_dir:
            found.append(root)
            dirs[:] = []
    return found


def objects_of(context, execution):
    return context.backend.execution_objects(context.executor_id, execution, context.state_dir)
