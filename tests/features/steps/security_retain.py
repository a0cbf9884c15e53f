"""Steps of security_retain.feature: list routes walked page by page while rows arrive, dmsctl following the
cursor, and retention (what the sweeper prunes, and what it keeps), seen through the API and, for runs, dmsd's
store itself (read-only)."""
import json
import os
import sqlite3
import subprocess
import time

from behave import given, then, when

from dmsfeat import dmsd as dmsdmod
from dmsfeat.dmsdsteps import call, droid, droid_id, expect_status, host, releases, wait_for
from dmsfeat.util import eventually
import dmsfeat.steputil  # noqa: F401 - registers the Q type

BUILD_TIMEOUT_S = 60
DEPLOY_TIMEOUT_S = 60
JOB_TIMEOUT_S = 120
RESTART_TIMEOUT_S = 30
FULL_LIST = 1000  # the most rows a page gives: "the whole list" of a scenario fits in one
NS_PER_DAY = 86400 * 10**9
DMSCTL_TIMEOUT_S = 30
FINAL_JOB = ("succeeded", "failed", "cancelled")


def names(text):
    return [n.strip() for n in text.split(",") if n.strip()]


# ---- making rows ----

def builds_of(context, name, user="alice"):
    a = host(context).request("GET", f"/droids/{droid_id(context, name)}/builds?limit={FULL_LIST}", user)
    expect_status(a, 200)
    return a.json


def create_droid(context, user, name, repo):
    a = host(context).request("POST", "/droids", user, body={"name": name, "repo": context.dmsd_repos.path(repo)})
    expect_status(a, 201)
    context.dmsd_droids[name] = a.json["id"]
    host(context).add_droid(a.json["id"])


@given('{user:w} has the failed droids "{list_:Q}" from the repository "{repo:Q}"')
def step_failed_droids(context, user, list_, repo):
    for name in names(list_):
        create_droid(context, user, name, repo)
    for name in names(list_):
        wait_for(context, name, "failed", BUILD_TIMEOUT_S, user)


def rebuild_failing(context, name, user="alice"):
    """PATCH the droid's branch (a new build of its head) and wait until that build has failed."""
    n = len(builds_of(context, name, user))
    a = host(context).request("PATCH", f"/droids/{droid_id(context, name)}", user, body={"branch": "main"})
    expect_status(a, 200)

    def probe():
        b = builds_of(context, name, user)
        assert len(b) == n + 1 and b[0]["status"] == "failed", f"builds: {[x['status'] for x in b]}"
        return True
    eventually(probe, BUILD_TIMEOUT_S, f"a new build of {name} failed")
    wait_for(context, name, "failed", BUILD_TIMEOUT_S, user)


@given('the droid "{name:Q}" has been rebuilt {n:d} times, failing each time')
def step_rebuilt(context, name, n):
    for _ in range(n):
        rebuild_failing(context, name)


@given('the droid "{name:Q}" has been redeployed {n:d} times, to release {last:d}')
def step_redeployed(context, name, n, last):
    repo = host(context).repo_of[name]
    for i in range(n):
        release = last - n + i + 1
        context.dmsd_repos.commit(repo, {"Dockerfile": f"FROM dms-test/web:latest\nENV PAGE=v{release}\n"})
        a = host(context).request("PATCH", f"/droids/{droid_id(context, name)}", "alice", body={"branch": "main"})
        expect_status(a, 200)
        eventually(lambda: droid(context, name)["release"] == release and
                   droid(context, name)["status"] == "running", DEPLOY_TIMEOUT_S,
                   f"droid {name} runs release {release}")


@given('the droid "{name:Q}" has been restarted {n:d} times')
def step_restarted(context, name, n):
    executor = host(context).executor_id
    for _ in range(n):
        before = set(dmsdmod.containers_of(executor, droid_id(context, name), running_only=True))
        expect_status(host(context).request("POST", f"/droids/{droid_id(context, name)}/restart", "alice"), 202)

        def probe():
            now = set(dmsdmod.containers_of(executor, droid_id(context, name), running_only=True))
            assert now and not (now & before), f"running: {now}, before: {before}"
            assert droid(context, name)["status"] == "running"
            return True
        eventually(probe, RESTART_TIMEOUT_S, f"droid {name} runs in a new container")


# ---- jobs ----

def job_ids(context):
    if not hasattr(context, "retain_jobs"):
        context.retain_jobs = {}
    return context.retain_jobs


def run_job(context, user, name, repo):
    body = {"project_id": "site", "deployment_id": name, "project_branch": "main",
            "project_repo_url": context.dmsd_repos.path(repo), "project_build_command": "true",
            "project_package_manager": "none", "project_dist_directory": "."}
    a = host(context).request("POST", "/job/create", user, body=body)
    expect_status(a, 200)
    jid = a.json["id"]
    job_ids(context)[name] = (user, jid)

    def probe():
        j = host(context).request("GET", f"/job/{jid}", user).json["data"]
        assert j["status"] in FINAL_JOB, f"job {name} is {j['status']}"
        assert j["status"] == "succeeded", f"job {name} {j['status']}: {j.get('reason')}"
        return True
    eventually(probe, JOB_TIMEOUT_S, f"job {name} succeeded", interval_s=0.5)


@given('{user:w} has run the jobs "{list_:Q}" of the repository "{repo:Q}" to their end')
def step_run_jobs(context, user, list_, repo):
    for name in names(list_):
        run_job(context, user, name, repo)


def job_dir(context, name):
    return os.path.join(host(context).data_dir, "jobs", job_ids(context)[name][1])


def listed_jobs(context, user):
    a = host(context).request("GET", f"/jobs?limit={FULL_LIST}", user)
    expect_status(a, 200)
    return a.json["data"]


@then("within {secs:d} seconds {user:w}'s jobs are \"{list_:Q}\"")
def step_jobs_are(context, secs, user, list_):
    want = [job_ids(context)[n][1] for n in names(list_)]

    def probe():
        got = [j["id"] for j in listed_jobs(context, user)]
        assert got == want, f"{user}'s jobs are {got}, not {want}"
        return True
    eventually(probe, secs, f"{user}'s jobs are {list_}")


@then('the job "{name:Q}" is gone, with its log and its directory')
def step_job_gone(context, name):
    user, jid = job_ids(context)[name]
    for path in (f"/job/{jid}", f"/job/{jid}/log"):
        a = host(context).request("GET", path, user)
        assert a.status == 404, f"GET {path}: {a.describe()}"
    assert not os.path.exists(job_dir(context, name)), f"{job_dir(context, name)} is still there"


@then('the jobs "{list_:Q}" still have their directory, and bob\'s "{bobs:Q}" is kept')
def step_jobs_kept(context, list_, bobs):
    for name in names(list_):
        assert os.path.isdir(job_dir(context, name)), f"the directory of job {name} is gone"
        user, jid = job_ids(context)[name]
        expect_status(host(context).request("GET", f"/job/{jid}/artifact", user), 200)
    got = [j["id"] for j in listed_jobs(context, "bob")]
    assert got == [job_ids(context)[bobs][1]], f"bob's jobs are {got}"


@when('the job "{name:Q}" is made to have finished {days:d} days ago, in dmsd\'s store')
def step_age_job(context, name, days):
    assert not host(context).running(), "dmsd must be stopped to change its store"
    db = sqlite3.connect(os.path.join(host(context).data_dir, "dms.db"))
    try:
        cur = db.execute("UPDATE jobs SET finished_ns = finished_ns - ? WHERE id = ?",
                         (days * NS_PER_DAY, job_ids(context)[name][1]))
        assert cur.rowcount == 1, f"no job {name} in the store"
        db.commit()
    finally:
        db.close()


# ---- walking lists ----

def rows_and_cursor(a, rows_key):
    expect_status(a, 200)
    body = a.json
    return (body[rows_key] if rows_key else body), a.header("X-Next-Cursor")


def full(context, user, path, rows_key):
    sep = "&" if "?" in path else "?"
    rows, cursor = rows_and_cursor(host(context).request("GET", f"{path}{sep}limit={FULL_LIST}", user), rows_key)
    assert not cursor, f"{path} does not fit in one page of {FULL_LIST}"
    return rows


def walk(context, user, path, key, during=None, rows_key=None):
    """Reads path page by page from each page's cursor; during() runs after the first page. Keeps the whole list
    as it was before and after, and every page, for the Then steps."""
    before = full(context, user, path, rows_key)
    pages, cursor = [], None
    while True:
        a = host(context).request("GET", path + (f"?after={cursor}" if cursor else ""), user)
        rows, cursor = rows_and_cursor(a, rows_key)
        pages.append((a, rows, cursor))
        assert len(pages) <= len(before) + 5, f"the walk of {path} does not end"
        if during and len(pages) == 1:
            during()
        if not cursor:
            break
    context.retain_walk = {"path": path, "key": key, "before": [r[key] for r in before], "pages": pages,
                           "after": [r[key] for r in full(context, user, path, rows_key)]}


def walked(context):
    w = context.retain_walk
    return [r[w["key"]] for _, rows, _ in w["pages"] for r in rows]


@when('{user:w} walks "/droids" in pages while she creates the droid "{name:Q}" from the repository "{repo:Q}"')
def step_walk_droids(context, user, name, repo):
    walk(context, user, "/droids", "id", lambda: create_droid(context, user, name, repo))


@when('{user:w} walks the events of the droid "{name:Q}" in pages while the droid "{other:Q}" is rebuilt')
def step_walk_events(context, user, name, other):
    walk(context, user, f"/droids/{droid_id(context, name)}/events", "id",
         lambda: rebuild_failing(context, other, user))


@when('{user:w} walks the builds of the droid "{name:Q}" in pages while the droid "{other:Q}" is rebuilt')
def step_walk_builds(context, user, name, other):
    walk(context, user, f"/droids/{droid_id(context, name)}/builds", "id",
         lambda: rebuild_failing(context, other, user))


@when('{user:w} walks the releases of the droid "{name:Q}" in pages')
def step_walk_releases(context, user, name):
    walk(context, user, f"/droids/{droid_id(context, name)}/releases", "release")


@when('{user:w} walks her jobs in pages while she creates another job')
def step_walk_jobs(context, user):
    walk(context, user, "/jobs", "id", lambda: run_job(context, user, "during", "site"), rows_key="data")


@then('every page held at most {n:d} rows, and each but the last gave a cursor')
def step_pages_bounded(context, n):
    pages = context.retain_walk["pages"]
    assert len(pages) >= 2, f"one page held the whole list of {context.retain_walk['path']}: not bounded"
    for i, (a, rows, cursor) in enumerate(pages):
        last = i == len(pages) - 1
        assert len(rows) <= n, f"page {i + 1} held {len(rows)} rows"
        assert bool(cursor) != last, f"page {i + 1} of {len(pages)} {'gave' if cursor else 'gave no'} cursor"
        if not last:
            assert len(rows) == n, f"page {i + 1} held {len(rows)} rows, not a full page"


@then('the walk saw every {what:w} once, in the order of the whole list, {extra}')
def step_walk_ascending(context, what, extra):
    w = context.retain_walk
    got = walked(context)
    assert len(set(got)) == len(got), f"the walk saw some {what} twice: {got}"
    assert got == w["after"], f"the walk saw {got}, the whole list is {w['after']}"
    assert len(w["after"]) > len(w["before"]), f"no {what} arrived during the walk: {w['after']}"


@then('the walk saw every {what:w} that was there before it began once, newest first')
def step_walk_descending(context, what):
    w = context.retain_walk
    got = walked(context)
    assert got == w["before"], f"the walk saw {got}, the list before it was {w['before']}"
    assert got == sorted(got, reverse=True) or what == "job", f"not newest first: {got}"
    if what != "release":
        assert len(w["after"]) > len(w["before"]), f"no {what} arrived during the walk"
        assert w["after"][len(w["after"]) - len(w["before"]):] == w["before"], \
            f"the new {what} is not first: {w['after']}"


@then('each page of the jobs said where the next one starts in "next_cursor" too')
def step_jobs_next_cursor(context):
    for a, _, cursor in context.retain_walk["pages"]:
        assert a.json.get("next_cursor") == (cursor or None), \
            f"next_cursor {a.json.get('next_cursor')!r}, X-Next-Cursor {cursor!r}"


@then('a page of "{path}" asked with the limit {limit:d} or the cursor "{cursor}" is answered 400 naming its key')
def step_bad_page(context, path, limit, cursor):
    for query, key in ((f"limit={limit}", "limit"), (f"after={cursor}", "after")):
        a = call(context, "GET", f"{path}?{query}", "alice")
        assert a.status == 400 and a.json.get("field") == key, f"{path}?{query}: {a.describe()}"


def dmsctl(context, *args):
    env = {k: v for k, v in os.environ.items() if not k.startswith("DMS_")}
    env.update({"DMS_URL": f"http://127.0.0.1:{host(context).port}", "DMS_JWT_SECRET": host(context).secret,
                "DMS_USER": "alice"})
    p = subprocess.run([os.path.join(context.build_dir, "bin", "dmsctl"), "--json", *args],
                       stdin=subprocess.DEVNULL, capture_output=True, text=True, env=env, timeout=DMSCTL_TIMEOUT_S)
    assert p.returncode == 0, f"dmsctl {' '.join(args)}: {p.returncode}: {p.stderr}"
    return json.loads(p.stdout)


@then('dmsctl lists all {n:d} droids of alice and every event of the droid "{name:Q}"')
def step_dmsctl_follows(context, n, name):
    ls = dmsctl(context, "ls")
    assert len(ls) == n, f"dmsctl ls shows {len(ls)} droids: {[d['name'] for d in ls]}"
    evs = dmsctl(context, "events", name)
    want = full(context, "alice", f"/droids/{droid_id(context, name)}/events", None)
    assert [e["id"] for e in evs] == [e["id"] for e in want], f"dmsctl events: {len(evs)}, API: {len(want)}"


# ---- retention ----

def all_events(context, name):
    return full(context, "alice", f"/droids/{droid_id(context, name)}/events", None)


@then('within {secs:d} seconds the droid "{name:Q}" has only its {n:d} newest events')
def step_newest_events(context, secs, name, n):
    def probe():
        ids = [e["id"] for e in all_events(context, name)]
        assert len(ids) == n, f"{len(ids)} events: {ids}"
        # One droid in this dmsd: event ids are consecutive, and the kept ones the last.
        assert ids == list(range(ids[-1] - n + 1, ids[-1] + 1)), f"not the newest: {ids}"
        return True
    eventually(probe, secs, f"droid {name} has its {n} newest events")


@then('within {secs:d} seconds the builds of the droid "{name:Q}" are its {n:d} newest, the current one among '
      'them')
def step_newest_builds(context, secs, name, n):
    current = releases(context, name)[0]["build"]

    def probe():
        ids = [b["id"] for b in builds_of(context, name)]
        assert len(ids) == n, f"builds {ids}"
        assert current in ids, f"the current release's build {current} is not among {ids}"
        assert ids == sorted(ids, reverse=True) and ids[0] >= current, f"not the newest: {ids}"
        return True
    eventually(probe, secs, f"droid {name} has its {n} newest builds")


@then('within {secs:d} seconds the releases of the droid "{name:Q}" are {a:d} and {b:d}')
def step_releases_are(context, secs, name, a, b):
    def probe():
        got = [r["release"] for r in full(context, "alice", f"/droids/{droid_id(context, name)}/releases", None)]
        assert got == [a, b], f"releases {got}"
        return True
    eventually(probe, secs, f"droid {name} has the releases {a} and {b}")


def runs_in_store(context, name):
    """(runs, runs whose logs dmsd dropped) of the droid, read from its store (read-only, WAL: no lock)."""
    path = os.path.join(host(context).data_dir, "dms.db")
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
    try:
        return db.execute("SELECT COUNT(*), COALESCE(SUM(removed), 0) FROM runs WHERE droid_id = ?",
                          (droid_id(context, name),)).fetchone()
    finally:
        db.close()


@then('within {secs:d} seconds the store holds only the runs of the droid "{name:Q}" whose logs are kept')
def step_runs_pruned(context, secs, name):
    def probe():
        total, dropped = runs_in_store(context, name)
        assert total > 0 and dropped == 0, f"{total} runs, {dropped} of them without logs"
        return True
    eventually(probe, secs, f"the store keeps only the runs of {name} with logs")
    # 9 runs were made (1 + 2 redeploys + 6 restarts): the runner kept the logs of its newest few only.
    total, _ = runs_in_store(context, name)
    assert total < 9, f"{total} runs are still in the store"
