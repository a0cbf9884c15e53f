"""Steps for dmsd's open-file limit (issue 23): a dmsd started under a low RLIMIT_NOFILE, what its log says of
the limit, creates until one is refused, the descriptors it holds, and a log in which no line repeats within a
second."""
import collections
import os
import re
import time

from behave import given, then, when

from dmsfeat.dmsdsteps import call, expect_status, host, status
from dmsfeat.steputil import eventually  # noqa: F401 - also registers the Q type

LOG_SAYS_TIMEOUT_S = 10
POLL_S = 0.2
# The log's lines: "<RFC 3339 time with ms>Z level=<level> <message>"; the second and the message are compared.
LOG_LINE = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)\.\d{3}Z level=\w+ (.*)$")


def fd_count(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))


def log_lines(context):
    with open(host(context).log_path, errors="replace") as f:
        return f.read().splitlines()


@given('dmsd is running with an open-file limit of {soft:d} soft and {hard:d} hard')
def step_dmsd_nofile(context, soft, hard):
    context.dmsd_host.start(nofile=(soft, hard))
    context.fd_counts = {0: fd_count(host(context).pid)}


@then('dmsd\'s log says its open-file limit is {limit:d} and how many droids that allows')
def step_log_limit(context, limit):
    def said():
        for line in log_lines(context):
            m = re.search(r"op=fdlimit open_files_limit=(\d+) raised=(\w+) droids_allowed=(\d+)", line)
            if m:
                return m
        raise AssertionError("dmsd's log has no op=fdlimit line yet")
    m = eventually(said, LOG_SAYS_TIMEOUT_S, "dmsd logs its open-file limit")
    assert int(m.group(1)) == limit, f"dmsd says its limit is {m.group(1)}, not {limit}: {m.group(0)}"
    assert m.group(2) == "yes", f"dmsd did not raise its soft limit: {m.group(0)}"
    context.fd_droids_allowed = int(m.group(3))
    assert context.fd_droids_allowed > 0, m.group(0)


@when('{user:w} creates droids from the repository "{repo:Q}" until one is refused')
def step_create_until_refused(context, user, repo):
    allowed = context.fd_droids_allowed
    context.fd_created = []
    for i in range(allowed + 2):
        name = f"fd{i}"
        a = call(context, "POST", "/droids", user, body={"name": name, "repo": context.dmsd_repos.path(repo)})
        if a.status != 201:
            break
        context.dmsd_droids[name] = a.json["id"]
        host(context).add_droid(a.json["id"])
        context.fd_created.append(name)
    assert context.fd_created, f"no droid was created: {context.dmsd_answer.describe()}"
    assert len(context.fd_created) <= allowed, (
        f"{len(context.fd_created)} droids were created, more than the {allowed} dmsd said its limit allows")


@then('the last create was answered {code:d} naming the field "{field:Q}" and the limit {limit:d}')
def step_refused(context, code, field, limit):
    a = context.dmsd_answer
    expect_status(a, code)
    assert a.json.get("field") == field, a.describe()
    assert f"of the limit {limit} are in use (RLIMIT_NOFILE)" in a.json.get("error", ""), a.describe()
    assert "LimitNOFILE" in a.json["error"], a.describe()


@then('every droid {user:w} created becomes "{state:Q}" within {seconds:d} seconds')
def step_all_become(context, user, state, seconds):
    """Polls every droid until all are in state; on the way, dmsd's descriptors are counted each time the
    number of droids in that state changes (what one more running droid costs)."""
    deadline = time.monotonic() + seconds
    while True:
        host(context).check_alive()
        states = {name: status(context, name, user) for name in context.fd_created}
        failed = [f"{n}: {s.get('reason')}" for n, s in states.items() if s["status"] == "failed"]
        assert not failed, "droids failed: " + "; ".join(failed)
        there = sum(1 for s in states.values() if s["status"] == state)
        context.fd_counts.setdefault(there, fd_count(host(context).pid))
        if there == len(states):
            break
        assert time.monotonic() < deadline, f"not all {state} within {seconds} s: " + ", ".join(
            f"{n} {s['status']}" for n, s in states.items())
        time.sleep(POLL_S)
    print("dmsd's descriptors by droids " + state + ": " + ", ".join(
        f"{n}: {c}" for n, c in sorted(context.fd_counts.items())))


@then('with them all running dmsd holds at most {per:d} descriptors per droid beyond what it held with none')
def step_fd_per_droid(context, per):
    """The count once every droid runs and no build is left: the counts on the way include the builds'."""
    base = context.fd_counts[0]
    n = len(context.fd_created)
    now = fd_count(host(context).pid)
    print(f"dmsd's descriptors: {base} with no droid, {now} with {n} running ({(now - base) / n:.2f} per droid)")
    assert now <= base + per * n, f"{now} descriptors with {n} droids running (base {base}): {context.fd_counts}"


@then('no line of dmsd\'s log repeats within a second')
def step_log_no_repeat(context):
    seen = collections.Counter()
    for line in log_lines(context):
        m = LOG_LINE.match(line)
        if m:
            seen[(m.group(1), m.group(2))] += 1
    repeated = [(k, n) for k, n in seen.items() if n > 1]
    assert not repeated, "lines repeated within a second: " + "; ".join(
        f"{n}x at {k[0]}: {k[1][:200]}" for k, n in repeated[:5])
