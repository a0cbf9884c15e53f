"""Steps about an execution's output: history, follow, tail, streams, size on disk."""
import json
import os
import re
import threading
import time

from behave import given, then, when

from dmsfeat.steputil import assert_ok, eventually, exec_dirs, remember, wait_result

OUTPUT_APPEARS_TIMEOUT_S = 10
FOLLOW_TIMEOUT_S = 20
# dms's own logger writes "2026-01-01T00:00:00.000Z level=warn ..." lines on stderr; they are not the job's output.
LOGGER_LINE = re.compile(r"^\d{4}-\d\d-\d\dT[0-9:.]+Z level=\w+ ")


def job_stderr(text):
    return "".join(line for line in text.splitlines(keepends=True) if not LOGGER_LINE.match(line))


def read_logs(context, execution, extra=(), stream="stdout"):
    r = remember(context, context.dms.run(["logs", *extra, execution], as_json=False))
    context.logs_out = r.out if stream == "stdout" else job_stderr(r.err)
    return r


@given('the output of execution "{execution:Q}" says "{text:Q}"')
@then('the output of execution "{execution:Q}" says "{text:Q}"')
def step_output_says(context, execution, text):
    def probe():
        r = context.dms.run(["logs", execution], as_json=False)
        assert r.rc == 0, r.describe()
        return text in r.out
    eventually(probe, OUTPUT_APPEARS_TIMEOUT_S, f"the output of {execution} says {text!r}", interval_s=0.1)


@when('I read the logs of execution "{execution:Q}"')
def step_read(context, execution):
    read_logs(context, execution)


@when('I read the last {n:d} lines of the logs of execution "{execution:Q}"')
def step_tail(context, n, execution):
    read_logs(context, execution, ["--tail", str(n)])


@when('I read only the stdout of execution "{execution:Q}"')
def step_only_stdout(context, execution):
    r = read_logs(context, execution, ["--stdout"])
    assert job_stderr(r.err) == "", f"--stdout also printed stderr frames:\n{r.describe()}"


@when('I read only the stderr of execution "{execution:Q}"')
def step_only_stderr(context, execution):
    r = read_logs(context, execution, ["--stderr"], stream="stderr")
    assert r.out == "", f"--stderr also printed stdout frames:\n{r.describe()}"


@when('I read the logs of execution "{execution:Q}" as JSON frames')
def step_read_json(context, execution):
    r = remember(context, context.dms.run(["logs", execution]))
    context.frames = []
    for line in r.out.splitlines():
        if line.strip():
            context.frames.append(json.loads(line))


@then('the logs are')
def step_logs_are(context):
    want = context.text + "\n"
    assert_ok(context.last, "logs")
    assert context.logs_out == want, f"expected logs {want!r}, got {context.logs_out!r}"


@then('the log reader ended by itself')
def step_reader_ended(context):
    assert_ok(context.last, "logs")


@then('the frame "{text:Q}" came from {stream:w}')
def step_frame_stream(context, text, stream):
    frames = [f for f in context.frames if f.get("data") == text + "\n"]
    assert len(frames) == 1, f"expected one frame {text!r}, got {context.frames}"
    assert frames[0].get("stream") == stream, f"frame {text!r} came from {frames[0].get('stream')}, not {stream}"


# ---- follow ----

class Follower:
    """Reads a `dms-exec logs -f` line by line, noting when each line arrived."""

    def __init__(self, bg):
        self.bg = bg
        self.lines = []  # (monotonic arrival, text)
        self.ended_wall = None
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self):
        for line in self.bg.proc.stdout:
            self.lines.append((time.monotonic(), line.rstrip("\n")))
        self.bg.proc.wait()
        self.ended_wall = time.time()

    def arrival(self, text):
        for t, line in self.lines:
            if line == text:
                return t
        raise AssertionError(f"the follower never showed {text!r}: {[line for _, line in self.lines]}")


@when('I follow the logs of execution "{execution:Q}"')
def step_follow(context, execution):
    bg = context.dms.spawn(["logs", "-f", execution], as_json=False)
    context.follower = Follower(bg)
    context.follow_exec = execution
    context.follower.thread.join(FOLLOW_TIMEOUT_S)
    assert not context.follower.thread.is_alive(), \
        f"the follower did not end within {FOLLOW_TIMEOUT_S} s; it showed {context.follower.lines}"


@then('the follower shows "{a:Q}", "{b:Q}" and "{c:Q}" in that order')
def step_follow_order(context, a, b, c):
    got = [line for _, line in context.follower.lines]
    assert got == [a, b, c], f"the follower showed {got}, expected {[a, b, c]}"


@then('"{b:Q}" reached the follower at least {seconds:g} seconds after "{a:Q}"')
def step_follow_live(context, b, seconds, a):
    gap = context.follower.arrival(b) - context.follower.arrival(a)
    assert gap >= seconds, f"{b!r} arrived {gap:.2f} s after {a!r}: the lines were not streamed as they came"


@then('the follower ended by itself within {seconds:g} seconds of the job\'s end')
def step_follow_end(context, seconds):
    assert context.follower.bg.proc.returncode == 0, f"the follower exited {context.follower.bg.proc.returncode}"
    r = wait_result(context, context.follow_exec)
    assert r.json and r.json.get("finished_at_ns"), f"no result for {context.follow_exec}:\n{r.describe()}"
    lag = context.follower.ended_wall - r.json["finished_at_ns"] / 1e9
    assert lag < seconds, f"the follower ended {lag:.2f} s after the job"


# ---- big output ----

def log_lines(context):
    assert_ok(context.last, "logs")
    lines = context.logs_out.splitlines()
    assert lines, "the logs are empty"
    return lines


@then('the last line of the logs is "{text:Q}"')
def step_last_line(context, text):
    assert log_lines(context)[-1] == text, f"the last line is {log_lines(context)[-1]!r}"


@then('the first line of the logs is not "{text:Q}"')
def step_first_line_not(context, text):
    assert log_lines(context)[0] != text, "the first line is still there: the capture was not capped"


@then('the logs hold consecutive numbers up to {n:d}')
def step_consecutive(context, n):
    lines = log_lines(context)
    first = int(lines[0])
    want = [str(i) for i in range(first, n + 1)]
    assert lines == want, (f"the logs are not the consecutive numbers {first}..{n}: {len(lines)} lines, "
                           f"first mismatch near {next((i for i, (x, y) in enumerate(zip(lines, want)) if x != y), '-')}")


@then('the capture files of execution "{execution:Q}" take at most {kib:d} KiB on disk')
def step_capture_size(context, execution, kib):
    dirs = exec_dirs(context, execution)
    assert dirs, f"no state directory for {execution} under {context.state_dir}"
    files = {}
    for d in dirs:
        for name in os.listdir(d):
            if name == "log" or name.startswith("log."):
                files[os.path.join(d, name)] = os.path.getsize(os.path.join(d, name))
    assert files, f"no capture files (log, log.1) in {dirs}"
    total = sum(files.values())
    assert total <= kib * 1024, f"the capture takes {total} bytes (> {kib} KiB): {files}"
