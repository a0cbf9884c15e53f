"""Steps of routing.feature and snooze.feature: a dmsd with its own Caddy (dmsfeat/routed.py), droids reached
through the proxy by name, swaps under a request loop, Caddy and dmsd restarts, snooze schedules, sleep, wake."""
import datetime
import json
import os
import signal
import socket
import threading
import time
import zoneinfo

from behave import given, then, when

from dmsfeat import steputil  # noqa: F401 - registers the Q type
from dmsfeat.routed import RoutedDmsd
from dmsfeat.util import eventually

BUILD_RUN_TIMEOUT_S = 90
WEB_IMAGE = "dms-test/web:latest"
BUSYBOX_IMAGE = "dms-test/busybox:latest"
LOOP_SETTLE_S = 1.0     # the loop goes on this long after the last change it is meant to witness
MIB = 1024 * 1024


def page_dockerfile(page, big_mib=0):
    extra = ""
    if big_mib:
        # The legacy builder runs RUN steps in a container: fine for a test image built FROM busybox.
        extra = f"RUN dd if=/dev/zero of=/www/big bs=1048576 count={big_mib} 2>/dev/null\n"
    return f"FROM {WEB_IMAGE}\nENV PAGE={page}\n{extra}"


def rt(context):
    if not getattr(context, "routed", None):
        raise AssertionError("no routed dmsd in this scenario (a Given step starts it)")
    return context.routed


# ---- the dmsd ----

@given("a dmsd that routes droids through its own Caddy")
def step_routed_dmsd(context):
    d = RoutedDmsd(context.build_dir, context.scenario_dir, context.executor_id + "-rt")
    context.routed = d
    context.routed_loops = []
    # If a step fails before the teardown step, this still removes what the dmsd made (after_all's prefix check
    # then reports any leak, since a cleanup cannot fail a scenario in behave 1.2.6).
    context.add_cleanup(lambda: [print(p) for p in d.teardown()])
    d.start()


@when("the routed dmsd is restarted")
def step_restart(context):
    rt(context).restart()


@then("nothing of the routed dmsd is left once it stops")
def step_teardown(context):
    for loop in getattr(context, "routed_loops", []):
        loop.stop()
    problems = rt(context).teardown()
    if problems:
        raise AssertionError("\n".join(problems))


# ---- droids ----

def create_droid(context, name, dockerfile, files=None):
    d = rt(context)
    repo = d.repos.create(name, dockerfile, files)
    a = d.api("POST", "/droids", {"name": name, "repo": repo})
    if a.status != 201:
        raise AssertionError(f"create {name}: {a.describe()}")
    d.droids[name] = a.json["id"]
    d.wait_status(name, "running", BUILD_RUN_TIMEOUT_S)


@given('a routed droid "{name:Q}" serving the page "{page:Q}"')
def step_droid(context, name, page):
    create_droid(context, name, page_dockerfile(page))


@given('a routed droid "{name:Q}" serving the page "{page:Q}" and a {mib:d} MiB file "{file:Q}"')
def step_droid_big(context, name, page, mib, file):
    assert file == "big", "the image writes /www/big"
    create_droid(context, name, page_dockerfile(page, mib))


@when('the env of "{name:Q}" is changed to {key}={value}')
def step_env(context, name, key, value):
    d = rt(context)
    d.api_ok("PATCH", f"/droids/{d.droids[name]}", {"env": {key: value}})


@when('a new commit of "{name:Q}" serving the page "{page:Q}" is deployed')
def step_push(context, name, page):
    d = rt(context)
    d.repos.push(name, page_dockerfile(page))
    d.api_ok("PATCH", f"/droids/{d.droids[name]}", {"branch": "main"})


@when('a new commit of "{name:Q}" whose container exits at once is deployed')
def step_push_bad(context, name):
    d = rt(context)
    d.repos.push(name, f'FROM {BUSYBOX_IMAGE}\nCMD ["sh", "-c", "echo no server here; exit 3"]\n')
    d.api_ok("PATCH", f"/droids/{d.droids[name]}", {"branch": "main"})


@when('"{name:Q}" is rolled back to release {release:d}')
def step_rollback(context, name, release):
    d = rt(context)
    d.api_ok("POST", f"/droids/{d.droids[name]}/rollback", {"release": release})


@when('the routed droid "{name:Q}" is deleted through the API')
def step_delete(context, name):
    d = rt(context)
    d.api_ok("DELETE", f"/droids/{d.droids[name]}")


@then('the routed droid "{name:Q}" is "{state:Q}"')
def step_is(context, name, state):
    st = rt(context).status(name)
    assert st["status"] == state, f"droid {name} is {st['status']} ({st['reason']}), not {state}"


@then('the routed droid "{name:Q}" is "{state:Q}" within {secs:d} s')
def step_is_within(context, name, state, secs):
    rt(context).wait_status(name, state, secs)


@then('the events of "{name:Q}" show {frm} -> {to} because "{why:Q}"')
def step_event(context, name, frm, to, why):
    d = rt(context)
    events = d.api_ok("GET", f"/droids/{d.droids[name]}/events")
    hits = [e for e in events if e["from"] == frm and e["to"] == to and why in (e["reason"] or "")]
    assert hits, f"no event {frm} -> {to} ({why}) in {[(e['from'], e['to'], e['reason']) for e in events]}"


@then('the routed droid "{name:Q}" is "{state:Q}" because "{why:Q}" within {secs:d} s')
def step_is_because(context, name, state, why, secs):
    d = rt(context)

    def probe():
        st = d.status(name)
        if st["status"] != state or why not in (st["reason"] or ""):
            raise AssertionError(f"droid {name} is {st['status']} ({st['reason']})")
        return True
    eventually(probe, secs, f"droid {name} is {state} because {why}", interval_s=0.1)


# ---- the proxy ----

@then('"{name:Q}" answers 200 with "{page:Q}" through the proxy')
def step_answers(context, name, page):
    a = rt(context).via_proxy(name)
    assert a.status == 200 and a.text.strip() == page, f"{name}.localhost: {a.describe()}"


@when('"{name:Q}" answers 200 with "{page:Q}" through the proxy within {secs:d} s')
@then('"{name:Q}" answers 200 with "{page:Q}" through the proxy within {secs:d} s')
def step_answers_within(context, name, page, secs):
    d = rt(context)

    def probe():
        try:
            a = d.via_proxy(name, timeout_s=5)
        except OSError as e:
            raise AssertionError(repr(e)) from None
        if a.status != 200 or a.text.strip() != page:
            raise AssertionError(a.describe())
        return True
    eventually(probe, secs, f"{name}.localhost answers {page}", interval_s=0.1)


@then("a host no droid has answers 404 through the proxy")
def step_unknown_host(context):
    a = rt(context).via_proxy("nobody-has-this-name")
    assert a.status == 404, a.describe()


@then('a request for "{name:Q}" answers 404 through the proxy')
def step_404(context, name):
    a = rt(context).via_proxy(name)
    assert a.status == 404, a.describe()


@then('the routed droid "{name:Q}" shows the URL of its route')
def step_url(context, name):
    d = rt(context)
    want = f"http://{name}.localhost:{d.proxy_port}/"
    got = d.droid(name)["route_url"]
    assert got == want, f"GET /droids/:id route_url is {got}, not {want}"
    assert d.status(name)["route_url"] == want


@then('the route of "{name:Q}" dials its container on its droid network')
def step_dials(context, name):
    d = rt(context)
    ident = d.droids[name]
    status, body = d.caddy_admin("GET", f"/id/dms-{ident}")
    assert status == 200, f"caddy /id/dms-{ident}: {status} {body}"
    dial = json.loads(body)["handle"][0]["upstreams"][0]["dial"]
    containers = d.containers(name)
    assert len(containers) == 1, containers
    from dmsfeat import engine
    from dmsfeat.dmsd import user_network
    from dmsfeat.routed import USER
    # The droid's network is its user's: droid-net-<executor id>-u<hash of the user id> (confine/confine.c).
    net = user_network(d.executor_id, USER)
    ip = engine.docker("inspect", "--format", f'{{{{(index .NetworkSettings.Networks "{net}").IPAddress}}}}',
                       containers[0]).strip()
    assert dial == f"{ip}:8080", f"the route dials {dial}; the container is at {ip} on {net}"


@then('Caddy has no route for "{name:Q}"')
def step_no_route(context, name):
    d = rt(context)
    ident = d.droids[name]

    def gone():
        status, body = d.caddy_admin("GET", f"/id/dms-{ident}")
        if status != 404:
            raise AssertionError(f"{status} {body[:200]}")
        return True
    eventually(gone, 30, f"caddy forgets the route dms-{ident}")
    d.droids.pop(name)


@when("Caddy is killed")
def step_kill_caddy(context):
    d = rt(context)
    context.old_caddy = d.caddy_pid()
    assert context.old_caddy > 1, "no caddy pid file"
    os.kill(context.old_caddy, signal.SIGKILL)


@then("Caddy runs with a new pid")
def step_new_caddy(context):
    pid = rt(context).caddy_pid()
    assert pid > 1 and pid != context.old_caddy, f"caddy pid {pid} (killed: {context.old_caddy})"
    os.kill(pid, 0)


# ---- the request loop ----

@when('a client requests "{name:Q}" through the proxy in a loop')
def step_loop(context, name):
    from dmsfeat.routed import Loop
    context.loop = Loop(rt(context), name)
    context.routed_loops.append(context.loop)
    eventually(lambda: len(context.loop.answers) >= 5, 10, "the loop gets its first answers")


@then('every answer of the loop was a 200, with the pages "{pages:Q}" in that order')
def step_loop_all_ok(context, pages):
    time.sleep(LOOP_SETTLE_S)
    answers = context.loop.stop()
    bad = [a for a in answers if a[0] != 200]
    assert answers, "the loop got no answer"
    assert not bad, f"{len(bad)} of {len(answers)} answers were not 200, e.g. {bad[:5]}"
    seq = []
    for _, body in answers:
        if not seq or seq[-1] != body:
            seq.append(body)
    assert seq == pages.split(","), f"pages in order: {seq}, not {pages} ({len(answers)} answers)"
    print(f"loop: {len(answers)} answers, all 200; pages {seq}")


@then('only one container of "{name:Q}" runs')
def step_one_container(context, name):
    d = rt(context)
    eventually(lambda: len(d.containers(name)) == 1, 20, f"one container of {name}")


@then('no container of "{name:Q}" runs within {secs:d} s')
def step_no_container(context, name, secs):
    d = rt(context)
    eventually(lambda: len(d.containers(name)) == 0, secs, f"no container of {name} runs")


# ---- snooze ----

@then('each of these snooze schedules for "{name:Q}" is refused with 400 naming its field')
def step_bad_schedules(context, name):
    d = rt(context)
    problems = []
    for row in context.table:
        a = d.api("PUT", f"/droids/{d.droids[name]}/snooze", raw_body=row["body"])
        field = (a.json or {}).get("field") if isinstance(a.json, dict) else None
        if a.status != 400 or field != row["field"]:
            problems.append(f"{row['body']}: {a.describe()} (want 400 on {row['field']})")
    assert not problems, "\n".join(problems)


@when('the snooze schedule of "{name:Q}" is set to {body}')
def step_set_schedule(context, name, body):
    d = rt(context)
    a = d.api("PUT", f"/droids/{d.droids[name]}/snooze", raw_body=body)
    assert a.status == 200, a.describe()


@when('the snooze schedule of "{name:Q}" is deleted')
def step_delete_schedule(context, name):
    d = rt(context)
    d.api_ok("DELETE", f"/droids/{d.droids[name]}/snooze")


@when('the snooze schedule of "{name:Q}" is put with an empty body')
def step_empty_schedule(context, name):
    d = rt(context)
    a = d.api("PUT", f"/droids/{d.droids[name]}/snooze", raw_body="")
    assert a.status == 200, a.describe()


@then('the routed droid "{name:Q}" has no snooze schedule')
def step_no_schedule(context, name):
    d = rt(context)
    assert d.droid(name)["snooze"] is None, d.droid(name)["snooze"]
    a = d.api("GET", f"/droids/{d.droids[name]}/snooze")
    assert a.status == 200 and a.json is None, a.describe()


@then('GET /droids/:id/snooze of "{name:Q}" shows the windows {win} {tz} and idle_timeout_s {idle:d}')
def step_show_schedule(context, name, win, tz, idle):
    d = rt(context)
    s = d.api_ok("GET", f"/droids/{d.droids[name]}/snooze")
    frm, to = win.split("-")
    assert s["windows"] == [{"from": frm, "to": to, "tz": tz}], s
    assert s["idle_timeout_s"] == idle, s
    assert s["asleep"] is False, s


@then('the routed droid "{name:Q}" shows a next sleep time and no next wake time')
def step_next_times(context, name):
    s = rt(context).droid(name)["snooze"]
    assert s["next_sleep_at"] and s["next_wake_at"] is None, s
    st = rt(context).status(name)["snooze"]
    assert st["next_sleep_at"] and st["asleep"] is False, st


@when('"{name:Q}" gets a snooze window around now in "{tz:Q}"')
def step_window_now(context, name, tz):
    now = datetime.datetime.now(zoneinfo.ZoneInfo(tz))
    frm = (now - datetime.timedelta(hours=1)).strftime("%H:%M")
    to = (now + datetime.timedelta(hours=1)).strftime("%H:%M")
    d = rt(context)
    body = {"windows": [{"from": frm, "to": to, "tz": tz}], "idle_timeout_s": 600}
    d.api_ok("PUT", f"/droids/{d.droids[name]}/snooze", body)
    context.window_end = (now + datetime.timedelta(hours=1)).replace(second=0, microsecond=0)


@then('the status of "{name:Q}" shows it asleep until the window\'s end')
def step_asleep_until(context, name):
    st = rt(context).status(name)
    s = st["snooze"]
    assert s["asleep"] is True and s["in_window"] is True, st
    wake = datetime.datetime.fromisoformat(s["next_wake_at"].replace("Z", "+00:00"))
    assert abs((wake - context.window_end).total_seconds()) < 1, f"next wake {wake}, window ends {context.window_end}"


@then('the routed droid "{name:Q}" stays "{state:Q}" for {secs:d} s')
def step_stays(context, name, state, secs):
    d = rt(context)
    end = time.monotonic() + secs
    while time.monotonic() < end:
        st = d.status(name)
        assert st["status"] == state, f"droid {name} became {st['status']} ({st['reason']})"
        time.sleep(0.2)


@when('"{name:Q}" is requested through the proxy')
def step_request(context, name):
    context.answer = rt(context).via_proxy(name)
    print(f"wake: {name}.localhost answered {context.answer.status} in {context.answer.seconds * 1000:.0f} ms")


@then('the proxied answer is 200 with "{page:Q}"')
def step_answer(context, page):
    a = context.answer
    assert a.status == 200 and a.text.strip() == page, a.describe()


@when('a slow client downloads "{path:Q}" from "{name:Q}" through the proxy over about {secs:d} s while the env '
      'of "{other:Q}" is changed to {key}={value}')
def step_download_during_swap(context, path, name, secs, other, key, value):
    d = rt(context)
    before = d.containers(name)
    t = threading.Thread(target=_download, args=(context, d, name, path, secs), daemon=True)
    t.start()
    time.sleep(1)
    d.api_ok("PATCH", f"/droids/{d.droids[other]}", {"env": {key: value}})
    # the new container serves while the old one still sends the file
    eventually(lambda: d.via_proxy(name).text.strip() == value, 30, f"{name} serves {value}", interval_s=0.1)
    assert t.is_alive(), f"the download ended before the swap: {context.download}"
    assert set(before) & set(d.containers(name)), "the old container was stopped while the download ran"
    t.join(60)
    print(f"download across a swap: {context.download}")


def _download(context, d, name, path, secs):
    s = socket.create_connection(("127.0.0.1", d.proxy_port), timeout=30)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
    s.sendall(f"GET {path} HTTP/1.1\r\nHost: {name}.localhost\r\nConnection: close\r\n\r\n".encode())
    got = 0
    t0 = time.monotonic()
    rate = 24 * MIB / secs
    while True:
        chunk = s.recv(64 * 1024)
        if not chunk:
            break
        got += len(chunk)
        ahead = got / rate - (time.monotonic() - t0)
        if ahead > 0:
            time.sleep(ahead)
    s.close()
    context.download = {"bytes": got, "seconds": time.monotonic() - t0}


@when('a slow client downloads "{path:Q}" from "{name:Q}" through the proxy over about {secs:d} s')
def step_slow_download(context, name, path, secs):
    d = rt(context)
    states = []
    result = {}

    def download():
        s = socket.create_connection(("127.0.0.1", d.proxy_port), timeout=30)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
        s.sendall(f"GET {path} HTTP/1.1\r\nHost: {name}.localhost\r\nConnection: close\r\n\r\n".encode())
        got = 0
        t0 = time.monotonic()
        rate = 24 * MIB / secs
        while True:
            chunk = s.recv(64 * 1024)
            if not chunk:
                break
            got += len(chunk)
            ahead = got / rate - (time.monotonic() - t0)
            if ahead > 0:
                time.sleep(ahead)
        s.close()
        result["bytes"] = got
        result["seconds"] = time.monotonic() - t0

    t = threading.Thread(target=download, daemon=True)
    t.start()
    while t.is_alive():
        states.append(d.status(name)["status"])
        time.sleep(0.25)
    t.join()
    context.download = result
    context.download_states = states
    print(f"download: {result.get('bytes', 0)} bytes in {result.get('seconds', 0):.1f} s; states {set(states)}")


@then('the routed droid "{name:Q}" stayed "{state:Q}" while the download lasted')
def step_stayed(context, name, state):
    states = context.download_states
    assert context.download.get("seconds", 0) > 4, f"the download took {context.download} (too fast to tell)"
    assert states and all(s == state for s in states), f"states seen during the download: {states}"


@then("the download got all {mib:d} MiB")
def step_download_all(context, mib):
    got = context.download.get("bytes", 0)
    assert got > mib * MIB, f"got {got} bytes"  # the body plus the response head


@when('a client requests "{name:Q}" through the proxy once a second for {secs:d} s')
def step_sparse_requests(context, name, secs):
    """Short requests with idle gaps between them: each ends long before Caddy's in-flight count is polled, so
    only the access log shows them."""
    d = rt(context)
    states, answers = [], []
    end = time.monotonic() + secs
    while time.monotonic() < end:
        a = d.via_proxy(name)
        answers.append(a.status)
        for _ in range(4):
            states.append(d.status(name)["status"])
            time.sleep(0.25)
    context.sparse_states = states
    assert all(s == 200 for s in answers), answers


@then('the routed droid "{name:Q}" stayed "{state:Q}" while the client came back')
def step_stayed_sparse(context, name, state):
    states = context.sparse_states
    assert states and all(s == state for s in states), f"states seen between the requests: {states}"


# A WebSocket-like server from busybox: every connection gets "101 Switching Protocols" and then an echo.
WS_SCRIPT = """#!/bin/sh
while read -r line; do
    line=$(printf '%s' "$line" | tr -d '\\r')
    [ -z "$line" ] && break
done
printf 'HTTP/1.1 101 Switching Protocols\\r\\nUpgrade: websocket\\r\\nConnection: Upgrade\\r\\n\\r\\n'
exec cat
"""
WS_DOCKERFILE = f"""FROM {BUSYBOX_IMAGE}
COPY ws.sh /ws.sh
CMD ["sh", "-c", "chmod +x /ws.sh; exec nc -ll -p ${{PORT:-8080}} -e /ws.sh"]
"""


@given('a routed droid "{name:Q}" that upgrades every request to a WebSocket')
def step_ws_droid(context, name):
    create_droid(context, name, WS_DOCKERFILE, {"ws.sh": WS_SCRIPT})


@when('a WebSocket to "{name:Q}" is opened through the proxy and kept silent for {secs:d} s')
def step_ws_hold(context, name, secs):
    d = rt(context)
    s = socket.create_connection(("127.0.0.1", d.proxy_port), timeout=10)
    s.sendall(f"GET /chat HTTP/1.1\r\nHost: {name}.localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
              "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n".encode())
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = s.recv(4096)
        assert chunk, f"the connection closed before the upgrade: {head!r}"
        head += chunk
    assert head.startswith(b"HTTP/1.1 101"), head
    states = []
    end = time.monotonic() + secs
    while time.monotonic() < end:
        states.append(d.status(name)["status"])
        time.sleep(0.25)
    s.sendall(b"still here\n")  # the tunnel still works after the silence
    echoed = b""
    while b"still here" not in echoed:
        chunk = s.recv(4096)
        assert chunk, "the tunnel closed"
        echoed += chunk
    s.close()
    context.ws_states = states


@then('the routed droid "{name:Q}" stayed "{state:Q}" while the WebSocket was open')
def step_ws_stayed(context, name, state):
    states = context.ws_states
    assert states and all(s == state for s in states), f"states seen while the WebSocket was open: {states}"


@then('the routed droid "{name:Q}" has {n:d} releases within {secs:d} s')
def step_releases(context, name, n, secs):
    d = rt(context)
    eventually(lambda: len(d.api_ok("GET", f"/droids/{d.droids[name]}/releases")) == n, secs,
               f"droid {name} has {n} releases", interval_s=0.2)


@when('the routed droid "{name:Q}" is restarted through the API and its container replaced within {secs:d} s')
def step_restart_droid(context, name, secs):
    d = rt(context)
    before = set(d.containers(name))
    d.api_ok("POST", f"/droids/{d.droids[name]}/restart")

    def replaced():
        now = set(d.containers(name))
        return len(now) == 1 and not (now & before) and d.status(name)["status"] == "running"
    eventually(replaced, secs, f"{name} runs in a new container", interval_s=0.1)
