"""Steps for security_api.feature: another user walking dmsd's whole route table, tokens of every wrong shape,
and connections that never complete their request.

The walk reads the route table from dmsd itself (`dmsd --routes`), so a route added later is walked too: with
no entry in WALK_EXTRAS it is requested as is (no query, no body), and since ownership is checked before any
handler runs, that is enough for it to be answered 404."""
import json
import socket
import subprocess
import time

from behave import given, then, when

from dmsfeat import dmsd as dmsdmod
from dmsfeat.dmsdsteps import builds, call, containers, droid_id, events, expect_status, host, releases
from dmsfeat.steputil import eventually

ROUTES_TIMEOUT_S = 10
HOOK_CHECKED_TIMEOUT_S = 15
WALK_REQUEST_TIMEOUT_S = 30
ATTACK_CONNECT_TIMEOUT_S = 5
ATTACKER_ADDRESS = "127.0.0.2"
HALF_REQUEST = b"GET /droids HTTP/1.1\r\nHost: dmsd\r\nX-Slow: "  # the header block never ends
WRONG_HOOK_SECRET = "not-the-secret-of-this-hook-0123456789"

# Per route (method, pattern): the variants bob tries, each (query, body, headers); a route not listed is tried
# once as is. The bodies and queries are what the owner would send, so that a handler reached without its
# ownership check would act on them.
WALK_EXTRAS = {
    ("PATCH", "/droids/:id"): [("", {"name": "stolen", "env": {"GREETING": "bob"}, "port": 9999}, None),
                               ("", {"branch": "main"}, None), ("", {"follow": True}, None)],
    ("DELETE", "/droids/:id"): [("", None, None), ("?keep_volumes=1", None, None)],
    ("POST", "/droids/:id/restart"): [("", None, None), ("?force=1", None, None)],
    ("GET", "/droids/:id/logs"): [("", None, None), ("?follow=1", None, None), ("?build.out&follow=1", None, None),
                                  ("?build.err", None, None), ("?tail=10&timestamps=1&format=json", None, None)],
    ("GET", "/droids/:id/events"): [("?after=0&limit=10", None, None)],
    ("POST", "/droids/:id/rollback"): [("", {"release": 1}, None)],
    ("PUT", "/droids/:id/snooze"): [("", {"idle_timeout_s": 60}, None), ("", "", None)],
    ("GET", "/job/:id/log"): [("", None, None), ("?follow=1", None, None)],
}
HOOK_VARIANTS = [  # (headers, expected status): a hook proves the droid's secret, or gets nowhere
    ({"X-DMS-Hook-Secret": WRONG_HOOK_SECRET}, 403),
    ({"X-Gitlab-Token": WRONG_HOOK_SECRET}, 403),
    ({"X-Hub-Signature-256": "sha256=" + "0" * 64}, 403),
    ({}, 401),
]


def route_table(context):
    """dmsd's own route table: [{method, pattern, id, token}]."""
    p = subprocess.run([host(context).bin, "--routes"], capture_output=True, text=True, timeout=ROUTES_TIMEOUT_S,
                       stdin=subprocess.DEVNULL)
    assert p.returncode == 0, f"dmsd --routes exited {p.returncode}: {p.stderr}"
    table = json.loads(p.stdout)
    assert table and all({"method", "pattern", "id", "token"} <= set(r) for r in table), p.stdout
    return table


def ids_for(context, kind, droid, job, project):
    """The ids of alice's things bob names for a route whose :id is of that kind."""
    if kind in ("droid", "hook"):
        return [droid_id(context, droid)]
    if kind == "job":
        user, jid = context.dmsd_jobs[job]
        return [jid, context.dmsd_job_deployments[job]]  # a job is named by its id or its deployment id
    if kind == "project":
        return [project]
    raise AssertionError(f"dmsd --routes names an :id of kind {kind!r} that this walk does not know")


def walk_one(context, route, ident, walked):
    path = route["pattern"].replace(":id", ident)
    key = (route["method"], route["pattern"])
    if route["id"] == "hook":
        variants = [("", {"ref": "refs/heads/main"}, h, want) for h, want in HOOK_VARIANTS]
    else:
        variants = [(q, b, h, 404) for q, b, h in WALK_EXTRAS.get(key, [("", None, None)])]
    for query, body, headers, want in variants:
        user = "bob" if route["token"] else None
        a = host(context).request(route["method"], path + query, user, body=body, headers=headers,
                                  timeout_s=WALK_REQUEST_TIMEOUT_S)
        walked.append((route, a, want))


@when('bob walks every route of dmsd\'s route table against alice\'s droid "{droid}", her job "{job}" and her '
      'project "{project}"')
def step_walk(context, droid, job, project):
    walked = []
    table = route_table(context)
    for route in table:
        if route["id"] == "none":
            continue  # no :id: nothing of alice's is named (the lists are checked below)
        for ident in ids_for(context, route["id"], droid, job, project):
            walk_one(context, route, ident, walked)
    context.sec_walk = walked
    context.sec_table = table


@then('every route with an :id was walked, and every answer bob got was 404, or 403 and 401 for the push hook')
def step_walk_answers(context):
    walked = context.sec_walk
    with_id = {(r["method"], r["pattern"]) for r in context.sec_table if r["id"] != "none"}
    seen = {(r["method"], r["pattern"]) for r, _, _ in walked}
    assert with_id == seen, f"routes not walked: {sorted(with_id - seen)}"
    wrong = [f"{a.describe()} (expected {want})" for _, a, want in walked if a.status != want]
    assert not wrong, "answered otherwise:\n" + "\n".join(wrong)
    # A refusal is an error that names what it is about, never the thing itself.
    for route, a, _ in walked:
        assert isinstance(a.json, dict) and a.json.get("error"), f"no JSON error: {a.describe()}"
        if a.status == 404:
            assert a.json.get("field") == "id", f"the 404 does not name the id: {a.describe()}"
    print(f"bob made {len(walked)} requests over {len(seen)} routes")


@then('bob lists no droid and no job of alice\'s')
def step_bob_lists_nothing(context):
    a = host(context).request("GET", "/droids", "bob")
    expect_status(a, 200)
    assert a.json == [], a.describe()
    a = host(context).request("GET", "/jobs", "bob")
    expect_status(a, 200)
    assert a.json.get("data") == [], a.describe()


# ---- what alice has, before and after ----

DROID_FIELDS = ("name", "status", "reason", "env", "port", "branch", "commit", "commit_sha", "release", "follow",
                "snooze", "hook")
JOB_FIELDS = ("status", "reason", "step", "attempt", "cancel_requested", "deployment_id", "project_id")


def snapshot(context, droid, job):
    h = host(context)
    d = h.request("GET", f"/droids/{droid_id(context, droid)}", "alice")
    expect_status(d, 200)
    user, jid = context.dmsd_jobs[job]
    j = h.request("GET", f"/job/{jid}", user)
    expect_status(j, 200)
    snooze = h.request("GET", f"/droids/{droid_id(context, droid)}/snooze", "alice")
    expect_status(snooze, 200)
    return {"droid": {k: d.json.get(k) for k in DROID_FIELDS},
            "events": events(context, droid),
            "builds": [{k: b.get(k) for k in ("id", "status", "branch", "commit", "reason")}
                       for b in builds(context, droid)],
            "releases": releases(context, droid),
            "containers": containers(context, droid),
            "snooze": snooze.json,
            "job": {k: j.json["data"].get(k) for k in JOB_FIELDS},
            "volumes": sorted(dmsdmod.leftovers(h.executor_id).get("volume", []))}


@given('I note what alice\'s droid "{droid}" and her job "{job}" are')
def step_note(context, droid, job):
    context.sec_noted = snapshot(context, droid, job)


@then('alice\'s droid "{droid}" and her job "{job}" are as noted')
def step_as_noted(context, droid, job):
    before, after = context.sec_noted, snapshot(context, droid, job)
    diff = {k: {"before": before[k], "after": after[k]} for k in before if before[k] != after[k]}
    assert not diff, "bob's walk changed alice's things:\n" + json.dumps(diff, indent=1)


@then('since it was noted, alice\'s droid "{droid}" only finished its build')
def step_only_finished(context, droid):
    """What bob did may act later (a cancel lands once the builder sees it): once the build is over, every event
    since the note is one of a build that finished, and nothing else of the droid changed."""
    before = context.sec_noted
    evs = events(context, droid)
    assert evs[:len(before["events"])] == before["events"], "the noted events changed:\n" + json.dumps(evs, indent=1)
    later = evs[len(before["events"]):]
    odd = [e for e in later if (e.get("from"), e.get("to")) not in (("building", "starting"), ("starting", "running"))]
    assert not odd and later, "since the note, the droid had other events:\n" + json.dumps(later, indent=1)
    bs = builds(context, droid)
    assert [b["id"] for b in bs] == [b["id"] for b in before["builds"]], f"the builds are now {bs}"
    assert all(b["status"] == "succeeded" for b in bs), f"the builds are now {bs}"
    assert len(releases(context, droid)) == 1, f"the releases are {releases(context, droid)}"
    d = host(context).request("GET", f"/droids/{droid_id(context, droid)}", "alice").json
    for k in ("name", "env", "port", "branch", "commit", "follow"):
        assert d.get(k) == before["droid"][k], f"its {k} is {d.get(k)!r}, not {before['droid'][k]!r}"
    assert len(containers(context, droid)) == 1, f"it has the containers {containers(context, droid)}"


@given('a git push hook secret "{secret}" is set on alice\'s droid "{droid}"')
def step_hook_secret(context, secret, droid):
    path = f"/droids/{droid_id(context, droid)}"
    a = host(context).request("PATCH", path, "alice", body={"hook_secret": secret})
    expect_status(a, 200)
    context.sec_hook_secret = secret

    # Setting a secret makes the follower look at the branch head once (recording it, and the branch it
    # resolved): wait for that, so that the droid does not change under the snapshot for a reason of its own.
    def probe():
        d = host(context).request("GET", path, "alice")
        expect_status(d, 200)
        hook = d.json.get("hook") or {}
        assert hook.get("checked_at") and hook.get("queued_sha"), f"the hook is {hook}"
        return True
    eventually(probe, HOOK_CHECKED_TIMEOUT_S, "the follower looked at the branch of the hook", interval_s=0.2)


@when('alice calls the push hook of her droid "{droid}" with its secret')
def step_alice_hook(context, droid):
    call(context, "POST", f"/droids/{droid_id(context, droid)}/hooks/push", None, body={"ref": "refs/heads/main"},
         headers={"X-DMS-Hook-Secret": context.sec_hook_secret})


@given('the deployment of the job "{job}" is "{deployment}"')
def step_job_deployment(context, job, deployment):
    if not hasattr(context, "dmsd_job_deployments"):
        context.dmsd_job_deployments = {}
    context.dmsd_job_deployments[job] = deployment


# ---- tokens ----

def claims_of(text):
    """A token payload from step text: "<exp>" is an hour ahead, "<past>" a minute ago."""
    now = int(time.time())
    return json.loads(text.replace("<exp>", str(now + 3600)).replace("<past>", str(now - 60)))


@when('a client lists the droids with a token whose payload is {payload}')
def step_list_with_payload(context, payload):
    tok = dmsdmod.mint_token(host(context).secret, claims_of(payload))
    call(context, "GET", "/droids", None, headers={"Authorization": "Bearer " + tok})


@when('a client lists the droids with a token minted by dmsctl for "{user}" with the settings of this dmsd')
def step_list_with_dmsctl(context, user):
    h = host(context)
    env = {"PATH": "/usr/bin:/bin", "DMS_JWT_SECRET": h.secret}
    env.update({k: v for k, v in h.extra_env.items() if k.startswith("DMS_JWT_") and v is not None})
    p = subprocess.run([h.bin.replace("/dmsd", "/dmsctl"), "token", user], capture_output=True, text=True,
                       env=env, timeout=ROUTES_TIMEOUT_S, stdin=subprocess.DEVNULL)
    assert p.returncode == 0, f"dmsctl token exited {p.returncode}: {p.stderr}"
    call(context, "GET", "/droids", None, headers={"Authorization": "Bearer " + p.stdout.strip()})


# ---- connections ----

def open_half_request():
    """One connection from the attacker's address with a request that never ends; None if it was refused."""
    try:
        s = socket.create_connection(("127.0.0.1", ATTACK_PORT[0]), timeout=ATTACK_CONNECT_TIMEOUT_S,
                                     source_address=(ATTACKER_ADDRESS, 0))
    except OSError:
        return None
    try:
        s.sendall(HALF_REQUEST)
    except OSError:
        pass  # closed at once by dmsd: it still counts, as a connection that must end
    return s


ATTACK_PORT = [0]


@when('an attacker on another address holds {n:d} half-sent requests without a token')
def step_attack(context, n):
    ATTACK_PORT[0] = host(context).port
    socks = [open_half_request() for _ in range(n)]
    context.sec_attack = [s for s in socks if s is not None]
    print(f"the attacker connected {len(context.sec_attack)} of {n} times from {ATTACKER_ADDRESS}")


def closed(s):
    """Whether the peer has closed this connection (EOF or reset); never blocks."""
    s.setblocking(False)
    try:
        return s.recv(1) == b""
    except BlockingIOError:
        return False
    except OSError:
        return True


@then('alice, from 127.0.0.1, lists her droids within {seconds:d} seconds')
def step_alice_answered(context, seconds):
    a = host(context).request("GET", "/droids", "alice", timeout_s=seconds)
    expect_status(a, 200)
    print(f"alice was answered after {a.seconds:.3f} s")


@then('every connection of the attacker is closed by dmsd within {seconds:d} seconds')
def step_attack_closed(context, seconds):
    socks = context.sec_attack
    assert socks, "the attacker never connected"

    def probe():
        still = sum(1 for s in socks if not closed(s))
        assert still == 0, f"{still} of the attacker's {len(socks)} connections are still open"
        return True
    try:
        eventually(probe, seconds, "dmsd closed every connection of the attacker", interval_s=0.5)
    finally:
        for s in socks:
            s.close()


@then('the job log follower is still open')
def step_follower_open(context):
    f = context.dmsd_job_follower
    assert not f.ended(), f"the follow ended (error {f.error}) after {f.texts()[-5:]}"
