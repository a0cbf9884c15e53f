"""Steps for dmsd's builds: the build log (read and followed live), build records, cancellation, releases and
rollback."""
import re
import time

from behave import given, step, then, when

from dmsfeat import dmsd as dmsdmod
from dmsfeat import engine
from dmsfeat.dmsdsteps import (builds, call, containers, droid, droid_id, events, expect_status, fetch_page, host,
                               releases, status, wait_for)
from dmsfeat.steputil import eventually

BUILDING_TIMEOUT_S = 30
FOLLOWER_SHOWS_TIMEOUT_S = 30
REBUILD_TIMEOUT_S = 60
GONE_TIMEOUT_S = 30
ENGINE_SETTLE_S = 3


# ---- the build log ----

def follower(context):
    f = getattr(context, "dmsd_build_follower", None)
    assert f is not None, "nobody follows a build log"
    return f


@when('{user:w} follows the build log of the droid "{name:Q}" once it is building')
def step_follow_build(context, user, name):
    wait_for(context, name, "building", BUILDING_TIMEOUT_S, user)
    path = f"/droids/{droid_id(context, name)}/logs?build.out&follow=1"

    def probe():
        # build.out appears with the build's first line; until then the route says there is none yet (404).
        s = host(context).stream(path, user)
        if s.status == 404:
            s.close()
            raise AssertionError("build.out does not exist yet")
        return s
    s = eventually(probe, BUILDING_TIMEOUT_S, f"the build log of droid {name} can be followed", interval_s=0.1)
    assert s.status == 200, f"following {path}: status {s.status}"
    context.dmsd_build_follower = s


@when('{user:w} follows the build log of the droid "{name:Q}" at once')
def step_follow_build_now(context, user, name):
    path = f"/droids/{droid_id(context, name)}/logs?build.out&follow=1"
    s = host(context).stream(path, user)
    assert s.status == 200, f"following {path} while its build is queued: status {s.status}"
    context.dmsd_build_follower = s


def arrival_of(f, text, whole_line=False):
    for at, line in f.arrivals():
        if (line.strip() == text) if whole_line else (text in line):
            return at
    return None


def wait_shown(f, text, timeout_s=FOLLOWER_SHOWS_TIMEOUT_S, whole_line=False):
    def probe():
        at = arrival_of(f, text, whole_line)
        if at is None and f.ended():
            raise AssertionError(f"the follower ended without it; it got {f.texts()[-15:]}")
        return at
    return eventually(probe, timeout_s, f"the build log follower shows {text!r}", interval_s=0.05)


@step('the build log follower shows "{text:Q}"')
def step_follower_shows(context, text):
    wait_shown(follower(context), text)


@then('the build log follower shows "{a:Q}" at least {seconds:g} seconds before "{b:Q}"')
def step_follower_live(context, a, seconds, b):
    f = follower(context)
    # Whole lines: the build's "Step N/M : RUN ..." line names both texts too.
    ta = wait_shown(f, a, whole_line=True)
    tb = wait_shown(f, b, whole_line=True)
    assert tb - ta >= seconds, (f"{a!r} arrived only {tb - ta:.2f} s before {b!r}: the log was not sent as it was "
                                f"written")


@then('the build log follower ends by itself within {seconds:d} seconds')
def step_follower_ends(context, seconds):
    f = follower(context)
    eventually(f.ended, seconds, "the build log follower ended", interval_s=0.1)
    assert f.error is None, f"the follow ended with an error: {f.error}"


@then('the build log follower showed "{text:Q}"')
def step_follower_showed(context, text):
    f = follower(context)
    assert arrival_of(f, text) is not None, f"the follower never showed {text!r}; it got {f.texts()[-20:]}"


@then('the build log of the droid "{name:Q}" has "{text:Q}"')
def step_build_log_has(context, name, text):
    got = ""
    for which in ("build.out", "build.err"):
        a = host(context).request("GET", f"/droids/{droid_id(context, name)}/logs?{which}", "alice")
        expect_status(a, 200)
        got += a.text
    assert text in got, f"the build log of droid {name} does not have {text!r}:\n{got[-2000:]}"


# ---- reasons and build records ----

@then('the reason of the droid "{name:Q}" mentions "{text:Q}"')
def step_reason_mentions(context, name, text):
    r = status(context, name).get("reason") or ""
    assert text in r, f"the reason of droid {name} is {r!r}; it does not mention {text!r}"


@then('the reason of the droid "{name:Q}" is "{text:Q}"')
def step_reason_is(context, name, text):
    r = status(context, name).get("reason")
    assert r == text, f"the reason of droid {name} is {r!r}, not {text!r}"


@then('the reason of the droid "{name:Q}" comes to mention "{a:Q}" and "{b:Q}" within {seconds:d} seconds')
def step_reason_comes(context, name, a, b, seconds):
    def probe():
        r = status(context, name).get("reason") or ""
        assert a in r and b in r, f"the reason is {r!r}"
        return True
    eventually(probe, seconds, f"the reason of droid {name} mentions {a!r} and {b!r}", interval_s=0.2)


def only_build(context, name, state):
    bs = builds(context, name)
    assert len(bs) == 1 and bs[0]["status"] == state, \
        f"expected exactly one build, {state}; droid {name} has: {[(b['id'], b['status']) for b in bs]}"


@then('the droid "{name:Q}" has exactly one build, "{state:Q}"')
def step_one_build(context, name, state):
    only_build(context, name, state)


@then('{seconds:d} seconds later the droid "{name:Q}" is still "{state:Q}" with exactly one build, "{bstate:Q}"')
def step_later_one_build(context, seconds, name, state, bstate):
    # A retryable failure would be retried after 2 s (attempt 2/5): waiting longer than that proves no retry.
    time.sleep(seconds)
    s = status(context, name)
    assert s["status"] == state, f"droid {name} is {s['status']} ({s.get('reason')}), not {state}"
    only_build(context, name, bstate)


@then('the latest build of the droid "{name:Q}" is "{state:Q}"')
def step_latest_build(context, name, state):
    bs = builds(context, name)
    assert bs, f"droid {name} has no builds"
    latest = max(bs, key=lambda b: b["id"])
    assert latest["status"] == state, f"the latest build of droid {name} is {latest}"


@when('{user:w} cancels the build of the droid "{name:Q}"')
def step_cancel_build(context, user, name):
    call(context, "POST", f"/droids/<droid {name}>/build/cancel", user)


@then('no container runs "{text:Q}" any more')
def step_no_container_runs(context, text):
    def probe():
        cmds = engine.docker("ps", "--no-trunc", "--format", "{{.ID}} {{.Command}}").splitlines()
        hits = [c for c in cmds if text in c]
        assert not hits, f"still running: {hits}"
        return True
    eventually(probe, GONE_TIMEOUT_S, f"no container runs {text!r}", interval_s=0.5)


@then('the engine holds no image of the droid "{name:Q}"')
def step_no_image(context, name):
    def probe():
        imgs = dmsdmod.images_of(host(context).executor_id, droid_id(context, name))
        assert not imgs, f"images left: {imgs}"
        return True
    eventually(probe, GONE_TIMEOUT_S, f"the engine holds no image of droid {name}", interval_s=0.5)
    time.sleep(ENGINE_SETTLE_S)  # a cancelled engine build may still commit its last step: look again
    probe()


# ---- releases and rollback ----

def runs_release(context, name, n, timeout_s):
    def extra(s):
        assert s.get("release") == n, f"it is at release {s.get('release')}"
        running = containers(context, name, running_only=True)
        assert len(running) == 1, f"it has {len(running)} running containers"
        rel = engine.labels("container", running[0]).get("dms.release")
        assert rel == str(n), f"its container runs release {rel}"
    wait_for(context, name, "running", timeout_s, extra=extra)


@then('the droid "{name:Q}" runs release {n:d} within {seconds:d} seconds')
def step_runs_release(context, name, n, seconds):
    runs_release(context, name, n, seconds)


@given('the droid "{name:Q}" was rebuilt from a commit setting PAGE to "{page:Q}" and runs release {n:d}')
def step_rebuilt(context, name, page, n):
    repo = host(context).repo_of[name]
    with open(context.dmsd_repos.work(repo) + "/Dockerfile") as f:
        dockerfile = f.read()
    new = re.sub(r"(?m)^ENV PAGE=\S+$", f"ENV PAGE={page}", dockerfile)
    assert new != dockerfile, f"the Dockerfile of {repo} sets no PAGE to change:\n{dockerfile}"
    context.dmsd_repos.commit(repo, {"Dockerfile": new})
    expect_status(call(context, "PATCH", f"/droids/<droid {name}>", "alice", body={"branch": "main"}), 200)
    runs_release(context, name, n, REBUILD_TIMEOUT_S)


@then('the releases of the droid "{name:Q}" are')
def step_releases(context, name):
    want = [(row["release"], row["current"], row["image_available"]) for row in context.table]

    # The builder prunes old images right after a build, while the runner starts the new release: on a busy
    # engine the removal can still be going on when the new release already runs, hence a poll.
    def probe():
        got = [(str(r["release"]), str(r["current"]).lower(), str(r["image_available"]).lower())
               for r in sorted(releases(context, name), key=lambda r: -r["release"])]
        assert got == want, \
            f"the releases of droid {name} (release, current, image_available) are {got}, not {want}"
        return True
    eventually(probe, GONE_TIMEOUT_S, f"the releases of droid {name} are {want}", interval_s=0.5)


@then('the engine no longer holds the image of release {n:d} of the droid "{name:Q}"')
def step_release_image_gone(context, n, name):
    rel = [r for r in releases(context, name) if r["release"] == n]
    assert rel, f"droid {name} has no release {n}"
    for ref in (rel[0]["image_id"], rel[0]["tag"]):
        assert not engine.exists("image", ref), f"the engine still holds {ref} (release {n})"


@when('{user:w} rolls the droid "{name:Q}" back to release {n:d}')
def step_rollback(context, user, name, n):
    call(context, "POST", f"/droids/<droid {name}>/rollback", user, body={"release": n})


@then('the droid "{name:Q}" has no events since the noted container')
def step_no_new_events(context, name):
    evs = events(context, name)
    before = context.dmsd_noted["events"]
    assert len(evs) == before, f"droid {name} has new events: {evs[before:]}"


@then('the old container of the droid "{name:Q}" serves "{text:Q}" without a miss until release {n:d} runs, '
      'within {seconds:d} seconds')
def step_no_downtime(context, name, text, n, seconds):
    old_url = droid(context, name)["url"]
    deadline = time.monotonic() + seconds
    samples, misses = 0, []
    while True:
        page = fetch_page(old_url)
        s = status(context, name)
        if s["status"] == "running" and s.get("release") == n:
            break  # the new release runs; the old container may be going away (a miss now is expected)
        assert s["status"] != "failed", f"droid {name} failed: {s.get('reason')}"
        samples += 1
        if page != text:
            misses.append((round(time.monotonic() - deadline + seconds, 2), s["status"], page))
        assert time.monotonic() < deadline, f"droid {name} did not run release {n} within {seconds} s"
        time.sleep(0.1)
    assert samples >= 3, f"only {samples} samples while it rebuilt: too fast to tell"
    assert not misses, f"the old container missed {len(misses)} of {samples} requests (t, status, page): {misses}"
    runs_release(context, name, n, seconds)


@then('the builds of the droid "{name:Q}" are "{states:Q}", the first one\'s reason mentioning "{text:Q}"')
def step_builds_are(context, name, states, text):
    bs = sorted(builds(context, name), key=lambda b: b["id"])
    got = ",".join(b["status"] for b in bs)
    assert got == states, f"expected builds {states}; droid {name} has {[(b['id'], b['status']) for b in bs]}"
    assert text in (bs[0].get("reason") or ""), f"the first build's reason does not mention {text!r}: {bs[0]}"
