"""Driving dms-exec: one executor (backend + id + state dir) per scenario, every call bounded in time."""
import json
import os
import signal
import subprocess
import time

# No single dms-exec call of the suite should take longer; a hang fails the step instead of the whole run.
DEFAULT_CALL_TIMEOUT_S = 60


class Outcome:
    """What one dms-exec call did: exit code, output, wall time, and its first JSON line when there is one."""

    def __init__(self, argv, rc, out, err, seconds):
        self.argv = argv
        self.rc = rc
        self.out = out
        self.err = err
        self.seconds = seconds
        self.json = None
        for line in out.splitlines():
            line = line.strip()
            if line.startswith("{"):
                try:
                    self.json = json.loads(line)
                except ValueError:
                    pass
                break

    @property
    def error_code(self):
        return self.json.get("error") if isinstance(self.json, dict) else None

    def describe(self):
        return (f"`{' '.join(self.argv)}` exited {self.rc} after {self.seconds:.2f} s\n"
                f"--- stdout ---\n{self.out[-3000:]}\n--- stderr ---\n{self.err[-3000:]}")


class Background:
    """A dms-exec process the scenario started and did not wait for yet."""

    def __init__(self, argv, proc, started):
        self.argv = argv
        self.proc = proc
        self.started = started

    @property
    def pid(self):
        return self.proc.pid

    def running(self):
        return self.proc.poll() is None

    def finish(self, timeout_s=DEFAULT_CALL_TIMEOUT_S):
        """Waits for the process and returns its Outcome; kills it (by pid) if it outlives timeout_s."""
        try:
            out, err = self.proc.communicate(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.kill()
            out, err = self.proc.communicate()
            raise AssertionError(f"`{' '.join(self.argv)}` still running after {timeout_s:g} s; killed it\n"
                                 f"--- stdout ---\n{out[-2000:]}\n--- stderr ---\n{err[-2000:]}")
        return Outcome(self.argv, self.proc.returncode, out, err, time.monotonic() - self.started)

    def kill(self):
        if self.proc.poll() is None:
            try:
                os.kill(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


class DmsExec:
    """dms-exec bound to one backend, executor id and state directory."""

    def __init__(self, binary, plugin_dir, backend, executor_id, state_dir):
        self.binary = binary
        self.plugin_dir = plugin_dir
        self.backend = backend
        self.executor_id = executor_id
        self.state_dir = state_dir
        self.background = []
        # The environment must not choose for us: flags say everything.
        self.env = {k: v for k, v in os.environ.items()
                    if k not in ("DMS_EXECUTOR", "DMS_EXECUTOR_ID", "DMS_STATE_DIR", "DMS_PLUGIN_DIR", "DOCKER_HOST")}

    def argv(self, args, options=(), as_json=True, executor_id=None):
        a = [self.binary, "-x", self.backend, "-i", executor_id or self.executor_id, "--state-dir", self.state_dir,
             "--plugin-dir", self.plugin_dir]
        for o in options:
            a += ["-o", o]
        if as_json:
            a.append("--json")
        return a + list(args)

    def run(self, args, options=(), as_json=True, timeout_s=DEFAULT_CALL_TIMEOUT_S, stdin=None):
        argv = self.argv(args, options, as_json)
        bg = self.spawn_argv(argv, stdin=stdin)
        return bg.finish(timeout_s)

    def spawn(self, args, options=(), as_json=True):
        return self.spawn_argv(self.argv(args, options, as_json))

    def spawn_argv(self, argv, stdin=None):
        started = time.monotonic()
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL if stdin is None else stdin, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, env=self.env)
        bg = Background(argv, proc, started)
        self.background.append(bg)
        return bg

    def kill_all(self):
        """Kills (by pid) every dms-exec this scenario started that is still running; returns how many."""
        n = 0
        for bg in self.background:
            if bg.running():
                bg.kill()
                n += 1
            try:
                bg.proc.communicate(timeout=10)
            except (subprocess.TimeoutExpired, ValueError):
                pass
        return n
