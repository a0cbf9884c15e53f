"""Steps for a droid's runtime logs (tail, pages and their cursor, follow) and its events."""
import json
import re

from behave import then, when

from dmsfeat.dmsdsteps import answer, call, droid_id, events, expect_status, host, run_logs
from dmsfeat.steputil import eventually

TICK = re.compile(r"^tick (\d+)$")
CURSOR_HEADER = "X-Last-Log-Nano"


def ticks(lines):
    """The numbers of "tick N" lines; fails on any other line."""
    out = []
    for line in lines:
        m = TICK.match(line)
        assert m, f"not a tick line: {line!r} (in {lines[:20]})"
        out.append(int(m.group(1)))
    return out


def counting_up(nums):
    return all(b == a + 1 for a, b in zip(nums, nums[1:]))


# ---- tail and pages ----

@when('{user:w} reads the logs of the droid "{name:Q}" with "{query:Q}"')
def step_read_logs(context, user, name, query):
    call(context, "GET", f"/droids/<droid {name}>/logs{query}", user)


@then('the answer has {n:d} lines "tick N" counting up by one, the last at least "tick {low:d}"')
def step_answer_ticks(context, n, low):
    a = answer(context)
    expect_status(a, 200)
    nums = ticks(a.text.splitlines())
    assert len(nums) == n and counting_up(nums) and nums[-1] >= low, \
        f"expected the last {n} ticks, up to at least {low}; got {nums}"


def read_pages(context, user, name, pages, n, as_json):
    context.dmsd_pages = []  # (lines, cursor, [ts per line] or None)
    cursor = None
    for _ in range(pages):
        q = f"?limit={n}" + (f"&from={cursor}" if cursor is not None else "") + ("&format=json" if as_json else "")
        a = run_logs(context, name, q, user)
        raw = a.text.splitlines()
        if as_json:
            objs = [json.loads(line) for line in raw]
            lines, stamps = [o["line"] for o in objs], [o["ts"] for o in objs]
        else:
            lines, stamps = raw, None
        got = a.header(CURSOR_HEADER)
        assert got and got.isdigit(), f"page {len(context.dmsd_pages) + 1} has no usable {CURSOR_HEADER}: {got!r}"
        cursor = int(got)
        context.dmsd_pages.append((lines, cursor, stamps))


@when('{user:w} reads the logs of the droid "{name:Q}" in {pages:d} pages of {n:d} lines, each from the cursor '
      'of the last')
def step_pages(context, user, name, pages, n):
    read_pages(context, user, name, pages, n, as_json=False)


@when('{user:w} reads the logs of the droid "{name:Q}" in {pages:d} pages of {n:d} JSON lines, each from the '
      'cursor of the last')
def step_pages_json(context, user, name, pages, n):
    read_pages(context, user, name, pages, n, as_json=True)


@then('the pages hold "tick {first:d}" to "tick {last:d}" in order, each line once')
def step_pages_hold(context, first, last):
    nums = [t for lines, _, _ in context.dmsd_pages for t in ticks(lines)]
    want = list(range(first, last + 1))
    assert nums == want, f"the pages hold {[ticks(p[0]) for p in context.dmsd_pages]}, expected {want}"


@then('each page\'s cursor is later than the one before')
def step_cursors_grow(context):
    cursors = [c for _, c, _ in context.dmsd_pages]
    assert all(b > a for a, b in zip(cursors, cursors[1:])), f"cursors do not grow: {cursors}"


@then('each page\'s cursor is the timestamp of its last line, and every line is later than the cursor before it')
def step_cursor_is_last_ts(context):
    before = 0
    for i, (_, cursor, stamps) in enumerate(context.dmsd_pages, 1):
        assert stamps, f"page {i} is empty"
        assert cursor == stamps[-1], f"page {i}: cursor {cursor}, last line's ts {stamps[-1]}"
        assert all(ts > before for ts in stamps), f"page {i} has a line at or before the cursor {before}: {stamps}"
        assert stamps == sorted(stamps), f"page {i}: timestamps out of order: {stamps}"
        before = cursor


# ---- follow ----

def log_stream(context):
    s = getattr(context, "dmsd_log_stream", None)
    assert s is not None, "nobody follows the logs"
    return s


@when('{user:w} follows the logs of the droid "{name:Q}" from now on')
def step_follow(context, user, name):
    s = host(context).stream(f"/droids/{droid_id(context, name)}/logs?follow=1&tail=0", user)
    assert s.status == 200, f"follow: status {s.status}"
    context.dmsd_log_stream = s


@then('the log stream is chunked')
def step_chunked(context):
    te = log_stream(context).headers.get("transfer-encoding", "")
    assert te.lower() == "chunked", f"Transfer-Encoding is {te!r}, not chunked"


@then('within {seconds:d} seconds the log stream has brought at least {n:d} lines "tick N" counting up by one')
def step_stream_ticks(context, seconds, n):
    s = log_stream(context)

    def probe():
        texts = s.texts()
        assert not s.ended(), f"the stream ended after {texts}"
        return len(texts) >= n
    eventually(probe, seconds, f"the log stream brought {n} lines", interval_s=0.1)
    nums = ticks(s.texts()[:n])
    assert counting_up(nums), f"the streamed ticks do not count up by one: {nums}"


@then('those lines arrived over at least {seconds:g} second, not in one piece')
def step_stream_spread(context, seconds):
    arrivals = [at for at, _ in log_stream(context).arrivals()]
    span = arrivals[-1] - arrivals[0]
    assert span >= seconds, f"the lines arrived within {span:.2f} s of each other: not streamed live"


@then('the log stream ends by itself within {seconds:d} seconds')
def step_stream_ends(context, seconds):
    s = log_stream(context)
    eventually(s.ended, seconds, "the log stream ended", interval_s=0.1)
    assert s.error is None, f"the log stream ended with an error: {s.error}"


# ---- events ----

@then('the events of the droid "{name:Q}" are, in order')
def step_events_are(context, name):
    evs = events(context, name)
    got = [(e.get("from") or "", e.get("to"), e.get("reason") or "") for e in evs]
    want = [(row["from"], row["to"], row["reason begins with"]) for row in context.table]
    ok = len(got) == len(want) and all(g[0] == w[0] and g[1] == w[1] and g[2].startswith(w[2])
                                       for g, w in zip(got, want))
    assert ok, "the events are\n" + "\n".join(f"  {g}" for g in got) + "\nexpected\n" + \
        "\n".join(f"  {w}" for w in want)


@then('each event starts where the one before ended, and no event is older than the one before')
def step_events_chain(context):
    name = next(iter(context.dmsd_droids))
    evs = events(context, name)
    for a, b in zip(evs, evs[1:]):
        assert b["from"] == a["to"], f"event {b['id']} starts at {b['from']}, the one before ended at {a['to']}"
        assert b["ts_ns"] >= a["ts_ns"], f"event {b['id']} is older than event {a['id']}"
        assert b["id"] > a["id"], f"event ids do not grow: {a['id']}, {b['id']}"
    for e in evs:
        assert e.get("time") and e.get("reason"), f"event without time or reason: {e}"


@then('the last event of the droid "{name:Q}" mentions "{text:Q}"')
def step_last_event(context, name, text):
    last = events(context, name)[-1]
    assert text in (last.get("reason") or ""), f"the last event is {last}"


@when('{user:w} reads the events of the droid "{name:Q}" with "{query:Q}"')
def step_read_events(context, user, name, query):
    call(context, "GET", f"/droids/<droid {name}>/events{query}", user)


@then('the answer holds the events {a:d} and {b:d} of the droid "{name:Q}"')
def step_events_page(context, a, b, name):
    r = answer(context)
    expect_status(r, 200)
    all_evs = events(context, name)
    want = [e for e in all_evs if e["id"] in (a, b)]
    assert r.json == want and len(want) == 2, f"got {r.json}, expected {want}"


@then('the answer holds the events {a:d} and on of the droid "{name:Q}"')
def step_events_rest(context, a, name):
    r = answer(context)
    expect_status(r, 200)
    want = [e for e in events(context, name) if e["id"] >= a]
    assert want and r.json == want, f"got {r.json}, expected {want}"
