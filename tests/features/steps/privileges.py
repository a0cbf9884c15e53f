"""Steps about what a workload may do as a process: the privilege probe (a static program, and a setuid-root copy
of it) in a directory every backend lets the job reach, runs under several ids, and the capability sets the
workload reports."""
import os
import shutil
import tempfile

from behave import given, then, when

from dmsfeat import backends, engine
from dmsfeat.probe import compile_probe
from dmsfeat.steputil import job, remember


@given('the privilege probe, and a setuid-root copy of it, where the job can run them')
def step_probe(context):
    """$MARK/privprobe and $MARK/privprobe-suid (owned by root, mode 4755). The directory is made outside the
    scenario's private (0700) tree, so that a job running as another uid on the host can reach it too; docker
    binds it at /mark like any marker directory."""
    d = tempfile.mkdtemp(prefix="dms-privprobe-")
    context.add_cleanup(shutil.rmtree, d, True)
    os.chmod(d, 0o755)
    plain = compile_probe(os.path.join(d, "privprobe"))
    suid = os.path.join(d, "privprobe-suid")
    shutil.copy(plain, suid)
    if os.geteuid() == 0:
        os.chown(suid, 0, 0)
        os.chmod(suid, 0o4755)
    else:
        # Not root here (the process backend skips these scenarios then): the engine's root makes it setuid.
        engine.docker("run", "--rm", "--network", "none", "-v", f"{d}:/p", backends.BUSYBOX, "sh", "-c",
                      "chown 0:0 /p/privprobe-suid && chmod 4755 /p/privprobe-suid")
    context.marker_dir = d


@when('I run "{script:Q}" as execution "{execution:Q}" with the flags "{flags:Q}"')
def step_run_as(context, script, execution, flags):
    r = remember(context, context.dms.run(["run", "--exec", execution, *job(context, script, flags)]))
    assert r.json is not None and "outcome" in r.json, f"no result:\n{r.describe()}"
    context.result = r.json


@then('the workload\'s capability sets are')
def step_cap_sets(context):
    """A table of | set | mask | against the CapXxx: lines of /proc/self/status in the result's stdout."""
    lines = dict(line.split(":", 1) for line in context.result["stdout"].splitlines() if ":" in line)
    got = {k: v.strip() for k, v in lines.items()}
    for row in context.table:
        assert got.get(row["set"]) == row["mask"], \
            f"{row['set']} is {got.get(row['set'])!r}, expected {row['mask']!r} (stdout: {context.result['stdout']!r})"
