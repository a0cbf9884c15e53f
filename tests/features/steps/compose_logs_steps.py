"""Steps of dmsd_compose_logs.feature: a compose droid's logs without `service`, every service's merged and
tagged, on a routed dmsd (dmsfeat/routed.py). The repository, create and state steps are compose_steps.py's
and routing_steps.py's (behave shares steps across modules); the few helpers needed here are copied, not
imported, so that this module and compose_steps.py can change apart."""
import http.client
import json
import re

from behave import given, then, when

from dmsfeat import steputil  # noqa: F401 - registers the Q type
from dmsfeat.dmsd import Stream
from dmsfeat.routed import mint_token
from dmsfeat.util import eventually

TAGGED = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9})Z \[([a-z0-9_.-]+)\] (.*)$")
COUNTED = re.compile(r"^([a-z]+) (\d+)$")
MAX_PAGES = 500
STREAM_TIMEOUT_S = 60


def rt(context):
    if not getattr(context, "routed", None):
        raise AssertionError("no routed dmsd in this scenario (a Given step starts it)")
    return context.routed


def logs(context, name, query):
    d = rt(context)
    a = d.api("GET", f"/droids/{d.droids[name]}/logs?{query}")
    assert a.status == 200, a.describe()
    return a


def json_lines(a):
    return [json.loads(line) for line in a.text.splitlines() if line.strip()]


@given('the logs of "{name:Q}" hold at least {n:d} lines of each of "{one:Q}" and "{two:Q}" within {secs:d} s')
@then('the logs of "{name:Q}" hold at least {n:d} lines of each of "{one:Q}" and "{two:Q}" within {secs:d} s')
def step_hold(context, name, n, one, two, secs):
    def probe():
        text = logs(context, name, "limit=10000").text
        for svc in (one, two):
            got = text.count(f"[{svc}] {svc} ")
            assert got >= n, f"{got} lines of {svc} in the logs of {name}: {text[-800:]!r}"
        return True
    eventually(probe, secs, f"the logs of {name} hold {n} lines of {one} and {two}")


@then('every line of the logs of "{name:Q}" is tagged with its service, in time order, counting up per service')
def step_tagged(context, name):
    lines = logs(context, name, "timestamps=1&limit=10000").text.splitlines()
    assert lines, f"no logs for {name}"
    last_time, counts = "", {}
    for line in lines:
        m = TAGGED.match(line)
        assert m, f"an untagged line in the logs of {name}: {line!r}"
        when_, svc, text = m.groups()
        assert when_ >= last_time, f"{line!r} comes after a line at {last_time}"
        last_time = when_
        c = COUNTED.match(text)
        if svc in ("alpha", "beta"):
            assert c and c.group(1) == svc, f"a line of {svc} says {text!r}"
            num = int(c.group(2))
            assert num == counts.get(svc, num - 1) + 1, f"{svc} goes from {counts.get(svc)} to {num}"
            counts[svc] = num
    assert set(counts) == {"alpha", "beta"}, f"services seen: {counts}"


@then('pages of {limit:d} lines of the logs of "{name:Q}", each from the cursor of the one before, hold every '
      'line once')
def step_pages(context, limit, name):
    whole = logs(context, name, "format=json&limit=10000")
    end = int(whole.headers["x-last-log-nano"])
    want = json_lines(whole)
    assert want and end == max(o["ts"] for o in want), f"cursor {end} for {len(want)} lines"
    got, cursor = [], 0
    for _ in range(MAX_PAGES):
        page = logs(context, name, f"format=json&from={cursor}&limit={limit}")
        objs = json_lines(page)
        assert objs, f"an empty page from {cursor} before the cursor {end} of the whole history"
        assert all(o["ts"] > cursor for o in objs), f"a page from {cursor} holds {objs}"
        got += objs
        cursor = int(page.headers["x-last-log-nano"])
        if cursor >= end:
            break
    got = [o for o in got if o["ts"] <= end]
    keys = [(o["service"], o["ts"]) for o in got]
    assert len(keys) == len(set(keys)), "a line came twice"
    assert got == want, f"the pages hold {len(got)} lines, the whole history {len(want)}"


@then('every object of the JSON logs of "{name:Q}" has a service, and "{one:Q}" and "{two:Q}" are among them')
def step_json(context, name, one, two):
    objs = json_lines(logs(context, name, "format=json&tail=50"))
    assert objs, f"no logs for {name}"
    for o in objs:
        assert o.get("service") in ("web", one, two), f"an object without its service: {o}"
        if o["service"] != "web":
            assert o["line"].startswith(o["service"] + " "), f"a line of another service: {o}"
    assert {one, two} <= {o["service"] for o in objs}, f"services: {set(o['service'] for o in objs)}"


@when('I follow the logs of "{name:Q}" from now on')
def step_follow(context, name):
    d = rt(context)
    conn = http.client.HTTPConnection("127.0.0.1", d.port, timeout=STREAM_TIMEOUT_S)
    path = f"/droids/{d.droids[name]}/logs?follow=1&tail=0"
    conn.request("GET", path, headers={"Authorization": f"Bearer {d.token}"})
    s = Stream(conn, conn.getresponse(), path)
    context.add_cleanup(conn.close)
    assert s.status == 200, f"follow: status {s.status}"
    context.compose_log_stream = s


@then('the followed logs bring lines of both "{one:Q}" and "{two:Q}" within {secs:d} s')
def step_followed(context, one, two, secs):
    s = context.compose_log_stream

    def probe():
        texts = s.texts()
        assert s.ended_at is None, f"the follow ended after {texts} ({s.error})"
        return all(any(t.startswith(f"[{svc}] {svc} ") for t in texts) for svc in (one, two))
    eventually(probe, secs, f"the follow brings lines of {one} and {two}", interval_s=0.2)


@then('bob\'s request for the logs of "{name:Q}" is answered {code:d}')
def step_bob(context, name, code):
    d = rt(context)
    a = d.api("GET", f"/droids/{d.droids[name]}/logs", token=mint_token(d.secret, "bob"))
    assert a.status == code, a.describe()
    assert "alpha" not in a.text and "beta" not in a.text, a.describe()
