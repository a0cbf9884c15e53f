"""behave hooks: one isolated executor per scenario, leak checks after each scenario and after the run.

Options (behave -D key=value):
  executor=docker|process   the backend under test (default docker)
  build=DIR                 the build tree holding bin/dms-exec, lib/ and plugins/ (default: $DMS_BUILD or
                            <repo>/build)
  report=FILE               write a JSON report of every scenario (status, skip reason) for scripts/run-features
                            (default: $DMS_FEATURES_REPORT, or none)

Every scenario gets its own executor id (feat-<run>-<n>) and --state-dir under a temp dir. Scenarios tagged with a
capability the backend lacks (dmsfeat/backends.py) are skipped with the reason printed. After each scenario:
`dms-exec cleanup` for its executor, then proof that nothing carrying its executor label is left (containers,
networks, volumes; host processes and cgroups for the process backend); a leak fails the scenario (and is removed
so it does not outlive the run). after_all checks that no io.dms.managed resource of this run is left.

Scenarios tagged @dmsd (dmsd's HTTP API) also get a dmsd of their own (dmsfeat/dmsd.py: own data dir, executor
id <executor id>-dmsd, JWT secret, port), started by their first step; after the scenario it is torn down (droids
deleted, dmsd stopped by pid, `dms-exec cleanup` for its id) and anything still labelled with its executor id
(containers, images, networks, volumes) fails the scenario. They run on the docker backend only."""
import json
import os
import secrets
import shutil
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from dmsfeat import backends, cli, dmsd, engine  # noqa: E402

REPO = os.path.dirname(os.path.dirname(HERE))
CLEANUP_TIMEOUT_S = 60


def _say(msg):
    sys.stderr.write(msg + "\n")
    sys.stderr.flush()


def before_all(context):
    ud = context.config.userdata
    context.backend_name = ud.get("executor", "docker")
    build = os.path.abspath(ud.get("build", os.environ.get("DMS_BUILD") or os.path.join(REPO, "build")))
    context.build_dir = build
    context.dms_bin = os.path.join(build, "bin", "dms-exec")
    context.plugin_dir = os.path.join(build, "plugins")
    context.lib_path = os.path.join(build, "lib", "libdms-executor.so")
    context.report_path = ud.get("report", os.environ.get("DMS_FEATURES_REPORT", ""))
    context.run_id = "feat-" + secrets.token_hex(3)
    context.tmp_root = tempfile.mkdtemp(prefix=f"dms-{context.run_id}-")
    context.backend = backends.make(context.backend_name, context.tmp_root)
    context.scenario_count = 0
    context.unsupported = {}  # scenario location -> reason
    context.entered = set()   # locations whose before_scenario ran
    plugin = os.path.join(context.plugin_dir, f"libdms-executor-{context.backend_name}.so")
    for path in (context.dms_bin, context.lib_path, plugin):
        if not os.path.exists(path):
            raise AssertionError(f"{path} is missing: build first (make, or -D build=DIR)")
    context.engine_up = engine.reachable()
    _say(f"features: backend={context.backend_name} run={context.run_id} build={build} "
         f"engine={'up' if context.engine_up else 'NOT REACHABLE'}")


def before_scenario(context, scenario):
    loc = str(scenario.location)
    context.entered.add(loc)
    reason = (context.backend.unsupported_reason(scenario.effective_tags)
              or dmsd.unsupported_reason(context.backend_name, scenario.effective_tags))
    if reason:
        context.unsupported[loc] = reason
        _say(f"SKIP {loc} \"{scenario.name}\" on backend {context.backend_name}: {reason}")
        scenario.skip(reason)
        return
    context.scenario_count += 1
    context.executor_id = f"{context.run_id}-{context.scenario_count}"
    context.scenario_dir = tempfile.mkdtemp(prefix=f"s{context.scenario_count}-", dir=context.tmp_root)
    context.state_dir = os.path.join(context.scenario_dir, "state")
    context.dms = cli.DmsExec(context.dms_bin, context.plugin_dir, context.backend_name, context.executor_id,
                              context.state_dir)
    context.servers = []     # fake servers to stop
    context.bystanders = []  # (kind, id) the scenario created outside dms, removed at the end
    context.results = {}     # execution id -> last result JSON seen
    context.last = None      # the last dms-exec Outcome
    context.dmsd_host = None  # @dmsd: the scenario's own dmsd (started by a step)
    if dmsd.TAG in scenario.effective_tags:
        context.dmsd_host = dmsd.Dmsd(context.build_dir, context.scenario_dir, context.executor_id + "-dmsd")
        context.dmsd_repos = dmsd.Repos(os.path.join(context.scenario_dir, "repos"))
        context.dmsd_droids = {}  # the scenario's name for a droid -> its id


def after_scenario(context, scenario):
    if str(scenario.location) in context.unsupported or not hasattr(context, "dms"):
        return
    problems = []
    if context.dmsd_host is not None:
        problems += context.dmsd_host.teardown(scenario_failed=scenario.status.name == "failed")
    # Our own background clients first: a killed client must not race the cleanup.
    context.dms.kill_all()
    try:
        r = context.dms.run(["cleanup"], timeout_s=CLEANUP_TIMEOUT_S)
        if r.rc != 0:
            problems.append("cleanup failed: " + r.describe())
    except AssertionError as e:  # it hung: say so, and still check and remove what is left
        problems.append(f"cleanup: {e}")
    if context.backend.engine_required() or context.engine_up:
        try:
            left = context.backend.leftovers(context.executor_id, context.state_dir)
        except Exception as e:  # noqa: BLE001 - an unreachable engine must fail the scenario, whatever it raises
            left = None
            problems.append(f"cannot check for leftovers of executor {context.executor_id}: {e}")
        if left:
            problems.append(f"cleanup left resources of executor {context.executor_id}: {left}")
            problems += context.backend.remove_leftovers(left)
    for kind, ident in reversed(context.bystanders):
        try:
            e = engine.remove(kind, ident)
        except Exception as ex:  # noqa: BLE001 - keep tearing down; the run fails on it anyway
            e = f"remove {kind} {ident}: {ex}"
        if e:
            problems.append(e)
    for server in context.servers:
        server.stop()
    shutil.rmtree(context.scenario_dir, ignore_errors=True)
    if problems:
        raise AssertionError("\n".join(problems))


def _write_report(context):
    if not context.report_path:
        return
    rows = []
    for feature in context._runner.features:  # noqa: SLF001 - behave 1.2.6 has no public list of run features
        for scenario in feature.walk_scenarios():
            loc = str(scenario.location)
            errors = [f"{step.keyword} {step.name}: {step.error_message}" for step in scenario.all_steps
                      if step.status.name in ("failed", "undefined") or step.error_message]
            if getattr(scenario, "error_message", None):
                errors.append(scenario.error_message)
            rows.append({"feature": feature.name, "scenario": scenario.name, "location": loc,
                         "status": scenario.status.name, "entered": loc in context.entered,
                         "unsupported": context.unsupported.get(loc), "errors": errors})
    with open(context.report_path, "w") as f:
        json.dump({"backend": context.backend_name, "run_id": context.run_id, "scenarios": rows}, f, indent=1)


def after_all(context):
    if not hasattr(context, "backend"):
        return
    problems = []
    if context.backend.engine_required() or context.engine_up:
        try:
            left = engine.managed_by_prefix(context.run_id + "-")
            if left:
                problems.append(f"io.dms.managed resources of run {context.run_id} left behind: {left}")
            late = dmsd.run_leftovers()
            if late:
                problems.append(f"images of this run's dmsd instances appeared after their teardown: {late}")
                problems += dmsd.remove_leftovers({"image": late})
            strays = engine.resources_with_label(f"{engine.BYSTANDER_LABEL}={context.run_id}")
            strays = {k: v for k, v in strays.items() if v}
            if strays:
                problems.append(f"resources the suite created outside dms are left: {strays}")
        except Exception as e:  # noqa: BLE001
            problems.append(f"cannot check the engine for leftovers: {e}")
    _write_report(context)
    shutil.rmtree(context.tmp_root, ignore_errors=True)
    if problems:
        _say("after_all: " + "\n".join(problems))
        raise AssertionError("\n".join(problems))
