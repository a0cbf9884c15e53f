"""Steps for fair build scheduling, build time limits and bounded build output
(security_builds_sched.feature): another user's droid, a droid's build time limit as its owner sees it, the size
and notes of build.out, the previous build's log kept on disk, and dmsd's peak memory."""
import os

from behave import then

from dmsfeat.dmsdsteps import (SERVE_TIMEOUT_S, STATUS_POLL_INTERVAL_S, droid, droid_id, expect_status, fetch_page,
                               host, wait_for)
from dmsfeat.util import eventually

BYTES_PER_MB = 1024 * 1024


@then('{user:w}\'s droid "{name:Q}" becomes "{state:Q}" within {seconds:d} seconds')
def step_users_droid_becomes(context, user, name, state, seconds):
    wait_for(context, name, state, seconds, user)


@then('{user:w}\'s droid "{name:Q}" serves "{text:Q}"')
def step_users_droid_serves(context, user, name, text):
    def probe():
        d = droid(context, name, user)
        page = fetch_page(d["url"]) if d.get("url") else None
        assert page == text, f"{d.get('url')} answered {page!r}"
        return True
    eventually(probe, SERVE_TIMEOUT_S, f"{user}'s droid {name} serves {text!r}", interval_s=STATUS_POLL_INTERVAL_S)


@then('the droid "{name:Q}" has a build time limit of {seconds:d} s')
def step_build_limit(context, name, seconds):
    d = droid(context, name)
    assert d.get("build_timeout_s") == seconds, f"droid {name} shows build_timeout_s {d.get('build_timeout_s')!r}"


@then('the droid "{name:Q}" has no build time limit of its own')
def step_no_build_limit(context, name):
    d = droid(context, name)
    assert "build_timeout_s" in d and d["build_timeout_s"] is None, \
        f"droid {name} shows build_timeout_s {d.get('build_timeout_s')!r}, not null"


@then('the build.out of the droid "{name:Q}" is at most {mb:d} MB and says "{text:Q}" once')
def step_build_out_capped(context, name, mb, text):
    a = host(context).request("GET", f"/droids/{droid_id(context, name)}/logs?build.out", "alice")
    expect_status(a, 200)
    assert len(a.body) <= mb * BYTES_PER_MB, f"build.out holds {len(a.body)} bytes, more than {mb} MB"
    assert len(a.body) >= (mb * BYTES_PER_MB) // 2, \
        f"build.out holds only {len(a.body)} bytes: the build's output did not reach the cap"
    hits = a.text.count(text)
    assert hits == 1, f"build.out says {text!r} {hits} times:\n{a.text[-2000:]}"


@then('the previous build log of the droid "{name:Q}" is kept beside it, and says "{text:Q}"')
def step_previous_log(context, name, text):
    # Not served by the API: the operator's copy on disk (<data dir>/droids/<id>/build.out.1).
    path = os.path.join(host(context).data_dir, "droids", droid_id(context, name), "build.out.1")
    assert os.path.exists(path), f"{path} does not exist"
    with open(path, "rb") as f:
        data = f.read()
    assert text.encode() in data, f"{path} does not say {text!r}: {data[-1000:]!r}"


def status_kb(pid, field):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise AssertionError(f"/proc/{pid}/status has no {field}")


@then('dmsd\'s memory never went above {mb:d} MB')
def step_peak_memory(context, mb):
    d = host(context)
    d.check_alive()
    # VmHWM: the peak resident set since dmsd started, so no sampling can miss a spike.
    peak_kb = status_kb(d.pid, "VmHWM")
    assert peak_kb <= mb * 1024, f"dmsd's resident memory peaked at {peak_kb // 1024} MB, above {mb} MB"
