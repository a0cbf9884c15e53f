"""What differs between backends, in one place: how a job is spelled, what a backend cannot do (capability
tags, each with the reason printed when its scenarios are skipped), and how to look behind its back (the
engine's objects, host processes) to prove it leaked nothing.

Adding a backend: subclass Backend, fill UNSUPPORTED with "tag": "reason", register it in BACKENDS."""
import glob
import os
import signal

from . import engine

BUSYBOX = "dms-test/busybox:latest"
SIGTERM_IGNORER = "dms-test/sigterm-ignorer:latest"
# The command of dms-test/sigterm-ignorer (tests/images/sigterm-ignorer/Dockerfile), for backends without images.
SIGTERM_IGNORER_SCRIPT = ("trap 'echo sigterm-ignorer: SIGTERM ignored' TERM; echo sigterm-ignorer: ready; "
                          "while :; do sleep 1; done")
MARK_IN_DOCKER = "/mark"


class Backend:
    name = None
    UNSUPPORTED = {}

    def __init__(self, tmp_root):
        self.tmp_root = tmp_root

    def unsupported_reason(self, tags):
        """The reason this backend cannot run a scenario with these tags, or None."""
        for tag in sorted(tags):
            reason = self.UNSUPPORTED.get(tag)
            if reason:
                return f"@{tag}: {reason}"
        return None

    # -- spelling a job --

    def job_args(self, script, marker_dir=None, image=None, extra=()):
        raise NotImplementedError

    def sigterm_ignorer_args(self, extra=()):
        raise NotImplementedError

    # -- looking behind its back --

    def engine_required(self):
        """True if this backend needs the Docker engine (then an unreachable engine fails the run)."""
        return False

    def leftovers(self, executor_id, state_dir):
        """Everything still carrying this executor: {kind: [ids]} (empty kinds left out)."""
        raise NotImplementedError

    def remove_leftovers(self, found):
        """Removes what leftovers() found; returns the errors."""
        raise NotImplementedError

    def execution_objects(self, executor_id, execution_id, state_dir):
        """What exists for one execution besides dms's own state files: {kind: [ids]} (empty kinds left out)."""
        raise NotImplementedError

    def kill_from_outside(self, status, sig=signal.SIGKILL):
        raise NotImplementedError

    def running_workloads(self, executor_id, execution_id, state_dir):
        """The workloads of one execution that still run (container ids, pids); [] once it is dead."""
        raise NotImplementedError

    def workload_ended(self, status):
        """True once the workload behind a status (its handle) no longer runs."""
        raise NotImplementedError


class DockerBackend(Backend):
    name = "docker"
    UNSUPPORTED = {}

    def job_args(self, script, marker_dir=None, image=None, extra=()):
        a = ["--image", image or BUSYBOX, *extra]
        if marker_dir:
            a += ["--bind", f"{marker_dir}:{MARK_IN_DOCKER}", "--env", f"MARK={MARK_IN_DOCKER}"]
        return a + (["--", "sh", "-c", script] if script is not None else [])

    def sigterm_ignorer_args(self, extra=()):
        return ["--image", SIGTERM_IGNORER, *extra]

    def engine_required(self):
        return True

    def leftovers(self, executor_id, state_dir):
        found = engine.resources_with_label(f"io.dms.executor={executor_id}")
        return {k: v for k, v in found.items() if v}

    def remove_leftovers(self, found):
        errors = []
        for kind in ("container", "network", "volume"):
            for ident in found.get(kind, []):
                e = engine.remove(kind, ident)
                if e:
                    errors.append(e)
        return errors

    def execution_objects(self, executor_id, execution_id, state_dir):
        out = engine.docker("ps", "-a", "--no-trunc", "--filter", f"label=io.dms.executor={executor_id}",
                            "--filter", f"label=io.dms.execution={execution_id}", "--format", "{{.ID}}")
        ids = [line for line in out.splitlines() if line.strip()]
        return {"container": ids} if ids else {}

    def running_workloads(self, executor_id, execution_id, state_dir):
        ids = self.execution_objects(executor_id, execution_id, state_dir).get("container", [])
        return [i for i in ids if engine.exists("container", i) and engine.inspect("container", i)["State"]["Running"]]

    def kill_from_outside(self, status, sig=signal.SIGKILL):
        engine.docker("kill", "-s", signal.Signals(sig).name.replace("SIG", ""), status["handle"])

    def workload_ended(self, status):
        if not engine.exists("container", status["handle"]):
            return True
        return not engine.inspect("container", status["handle"])["State"]["Running"]


def _proc_pids():
    return [int(p) for p in os.listdir("/proc") if p.isdigit()]


def _proc_mentions(pid, path):
    """True if a host process runs from (cwd) or names (cmdline) something under path."""
    try:
        cwd = os.readlink(f"/proc/{pid}/cwd")
        if cwd == path or cwd.startswith(path + "/"):
            return True
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return path.encode() in f.read()
    except OSError:
        return False


class ProcessBackend(Backend):
    name = "process"
    UNSUPPORTED = {
        "needs-image": "the process backend runs host programs: there is no image to pull, miss or stall on",
        "needs-labels": "the process backend creates no engine objects that could carry labels",
        "needs-engine-socket": "the process backend talks to no engine socket",
        "needs-networks": "the process backend shares the host's network and creates no networks",
        "needs-volumes": "the process backend cannot mount and creates no volumes",
        "needs-healthcheck": "the process backend runs no health checks: it refuses one (NOT_SUPPORTED, healthcheck)",
    }

    def unsupported_reason(self, tags):
        reason = super().unsupported_reason(tags)
        if reason is None and "needs-privileges" in tags and os.geteuid() != 0:
            reason = ("@needs-privileges: the process backend drops capabilities and switches users only as root "
                      "(PR_CAPBSET_DROP needs CAP_SETPCAP); this suite runs as uid %d" % os.geteuid())
        if reason is None and "needs-oom-kill" in tags and not _memory_cgroup_writable():
            reason = ("@needs-oom-kill: no writable memory cgroup here (v1 memory hierarchy or v2 memory controller);"
                      " the process backend then limits memory with RLIMIT_AS, which fails allocations, not OOM-kills")
        return reason

    def job_args(self, script, marker_dir=None, image=None, extra=()):
        a = list(extra)
        if marker_dir:
            a += ["--env", f"MARK={marker_dir}"]
        return a + (["--", "sh", "-c", script] if script is not None else [])

    def sigterm_ignorer_args(self, extra=()):
        return [*extra, "--", "sh", "-c", SIGTERM_IGNORER_SCRIPT]

    def leftovers(self, executor_id, state_dir):
        found = {}
        procs = [str(pid) for pid in _proc_pids() if pid != os.getpid() and _proc_mentions(pid, state_dir)]
        if procs:
            found["process"] = procs
        cgroups = glob.glob(f"/sys/fs/cgroup/**/dms-proc@{executor_id}@*", recursive=True)
        if cgroups:
            found["cgroup"] = cgroups
        return found

    def remove_leftovers(self, found):
        errors = []
        for pid in found.get("process", []):
            try:
                os.kill(int(pid), signal.SIGKILL)
            except ProcessLookupError:
                pass
            except OSError as e:
                errors.append(f"kill {pid}: {e}")
        for cg in sorted(found.get("cgroup", []), key=len, reverse=True):
            try:
                os.rmdir(cg)
            except OSError as e:
                errors.append(f"rmdir {cg}: {e}")
        return errors

    def execution_objects(self, executor_id, execution_id, state_dir):
        found = {}
        cgroups = glob.glob(f"/sys/fs/cgroup/**/dms-proc@{executor_id}@{execution_id}", recursive=True)
        if cgroups:
            found["cgroup"] = cgroups
        exec_dirs = glob.glob(os.path.join(state_dir, "**", execution_id), recursive=True)
        procs = [str(pid) for pid in _proc_pids() for d in exec_dirs if _proc_mentions(pid, d)]
        if procs:
            found["process"] = procs
        return found

    def running_workloads(self, executor_id, execution_id, state_dir):
        # The workload runs in <exec dir>/work (its default working directory); the shim only names the dir.
        dirs = glob.glob(os.path.join(state_dir, "**", execution_id), recursive=True)
        alive = []
        for pid in _proc_pids():
            try:
                cwd = os.readlink(f"/proc/{pid}/cwd")
                with open(f"/proc/{pid}/stat") as f:
                    state = f.read().rsplit(")", 1)[1].split()[0]
            except OSError:
                continue
            if state != "Z" and any(cwd == d or cwd.startswith(d + "/") for d in dirs):
                alive.append(str(pid))
        return alive

    def kill_from_outside(self, status, sig=signal.SIGKILL):
        os.kill(_pid_of(status), sig)

    def workload_ended(self, status):
        pid = _pid_of(status)
        try:
            with open(f"/proc/{pid}/stat") as f:
                return f.read().rsplit(")", 1)[1].split()[0] == "Z"
        except OSError:
            return True


def _pid_of(status):
    handle = str(status.get("handle", ""))
    digits = "".join(ch for ch in handle.split(":")[-1] if ch.isdigit())
    if not digits:
        raise AssertionError(f"status handle {handle!r} names no process id")
    return int(digits)


BACKENDS = {"docker": DockerBackend, "process": ProcessBackend}


def make(name, tmp_root):
    cls = BACKENDS.get(name)
    if not cls:
        raise AssertionError(f"backend {name!r} has no capability table in tests/features/dmsfeat/backends.py "
                             f"(known: {', '.join(sorted(BACKENDS))}); add one before running the suite on it")
    return cls(tmp_root)


_MEMCG = None


def _memory_cgroup_writable():
    """Whether the process backend can put a job in a memory cgroup here (executor/process/cgroup.c decides the
    same way): a cgroup v1 memory hierarchy, or the v2 tree with the memory controller in this process's cgroup,
    writable by us."""
    global _MEMCG
    if _MEMCG is None:
        _MEMCG = False
        try:
            with open("/proc/self/mounts") as f:
                mounts = [line.split() for line in f]
            with open("/proc/self/cgroup") as f:
                mine = [line.rstrip("\n").split(":", 2) for line in f]
        except OSError:
            return False
        for m in mounts:
            if m[2] == "cgroup" and "memory" in m[3].split(","):
                path = next((c[2] for c in mine if "memory" in c[1].split(",")), "/")
                _MEMCG = os.access(m[1] + path, os.W_OK) or os.access(m[1], os.W_OK)
            elif m[2] == "cgroup2":
                path = next((c[2] for c in mine if c[0] == "0"), "/")
                try:
                    with open(os.path.join(m[1] + path, "cgroup.controllers")) as f:
                        has = "memory" in f.read().split()
                except OSError:
                    has = False
                _MEMCG = _MEMCG or (has and os.access(m[1] + path, os.W_OK))
    return _MEMCG
