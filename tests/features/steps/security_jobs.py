"""Steps for the build jobs' security scenarios (security_jobs.feature): what a job's workload leaves where dmsd
takes its artifact from, and the fair queue. Jobs are created with the steps of dmsd_jobs.py; the scenario's
jobs are in context.dmsd_jobs (name -> (user, id)), as that module keeps them."""
import http.client
import io
import os
import tarfile
import time

from behave import step, then

from dmsfeat.dmsdsteps import expect_status, host
from dmsfeat.steputil import eventually

ARTIFACT_FETCH_TIMEOUT_S = 10          # a FIFO or a device node must not hold the answer longer
ARTIFACT_FETCH_MAX_BYTES = 8 * 1024 * 1024  # /dev/zero as the artifact would never end: stop reading here
RUNNING_TIMEOUT_S = 60
GO_FILE = "go"  # the file the waiting build command of the scenarios looks for in its workspace


def the_job(context, name):
    known = getattr(context, "dmsd_jobs", {})
    assert name in known, f"the scenario knows no job {name!r} (known: {', '.join(sorted(known)) or 'none'})"
    return known[name]  # (user, id)


def get_job(context, name):
    user, jid = the_job(context, name)
    a = host(context).request("GET", f"/job/{jid}", user)
    expect_status(a, 200)
    return a.json["data"]


def fetch_bounded(context, path, user):
    """GET path, reading at most ARTIFACT_FETCH_MAX_BYTES within ARTIFACT_FETCH_TIMEOUT_S: (status, headers,
    body, complete). A body that does not end in time or in size is returned as it is, complete=False."""
    d = host(context)
    conn = http.client.HTTPConnection("127.0.0.1", d.port, timeout=ARTIFACT_FETCH_TIMEOUT_S)
    deadline = time.monotonic() + ARTIFACT_FETCH_TIMEOUT_S
    try:
        conn.request("GET", path, headers={"Authorization": "Bearer " + d.token(user)})
        resp = conn.getresponse()
        body = bytearray()
        complete = False
        while time.monotonic() < deadline and len(body) < ARTIFACT_FETCH_MAX_BYTES:
            chunk = resp.read1(64 * 1024)
            if not chunk:
                complete = True
                break
            body += chunk
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, bytes(body), complete
    except TimeoutError:
        return None, {}, b"", False
    finally:
        conn.close()


def artifact_tar(context, name):
    user, jid = the_job(context, name)
    status, headers, body, complete = fetch_bounded(context, f"/job/{jid}/artifact", user)
    assert status == 200, f"GET /job/{jid}/artifact answered {status} (within {ARTIFACT_FETCH_TIMEOUT_S} s)"
    assert complete, (f"GET /job/{jid}/artifact did not end within {ARTIFACT_FETCH_TIMEOUT_S} s and "
                      f"{ARTIFACT_FETCH_MAX_BYTES} bytes (it had sent {len(body)})")
    assert headers.get("content-type") == "application/x-tar", f"content type {headers.get('content-type')}"
    try:
        return tarfile.open(fileobj=io.BytesIO(body)), body
    except tarfile.TarError as e:
        raise AssertionError(f"the artifact of job {name} is not a tar ({e}): {body[:300]!r}") from None


@then('the log of the job "{name:Q}" does not have "{text:Q}"')
def step_log_has_not(context, name, text):
    user, jid = the_job(context, name)
    a = host(context).request("GET", f"/job/{jid}/log", user)
    expect_status(a, 200)
    assert text not in a.json["data"], f"the log of job {name} has {text!r}:\n{a.json['data'][-3000:]}"


@then('the artifact of the job "{name:Q}" answers at once with a tar of {entries}')
def step_artifact_at_once(context, name, entries):
    t, _ = artifact_tar(context, name)
    want = sorted(e.strip().strip('"') for e in entries.split(","))
    got = sorted("./" if m.name in (".", "./") else m.name + ("/" if m.isdir() else "") for m in t)
    assert got == want, f"the artifact of job {name} holds {got}, not {want}"
    for m in t:
        assert m.isfile() or m.isdir(), f"{m.name} in the artifact of job {name} is of type {m.type!r}"


@then('the artifact of the job "{name:Q}" holds these symbolic links, as links')
def step_artifact_links(context, name):
    t, body = artifact_tar(context, name)
    links = {m.name: m.linkname for m in t if m.issym()}
    for row in context.table:
        assert links.get(row["name"]) == row["target"], \
            f"{row['name']} in the artifact of job {name} is not a link to {row['target']}: {links}"
    for m in t:
        if m.isfile():
            data = t.extractfile(m).read()
            assert len(data) < 4096, f"{m.name} holds {len(data)} bytes: {data[:200]!r}"


@then('nothing dmsd answers about the job "{name:Q}" holds its JWT secret or "{text:Q}"')
def step_no_secret(context, name, text):
    user, jid = the_job(context, name)
    secret = host(context).secret.encode()
    for path in (f"/job/{jid}", f"/job/{jid}/log", f"/job/{jid}/artifact", "/jobs"):
        status, _, body, _ = fetch_bounded(context, path, user)
        assert status is not None, f"GET {path} gave no answer within {ARTIFACT_FETCH_TIMEOUT_S} s"
        assert secret not in body, f"GET {path} answered dmsd's DMS_JWT_SECRET"
        assert b"DMS_JWT_SECRET" not in body, f"GET {path} answered something with DMS_JWT_SECRET in it"
        assert text.encode() not in body, f"GET {path} answered {text!r}"


@then('dmsd still answers')
def step_still_answers(context):
    a = host(context).request("GET", "/jobs", "alice", timeout_s=ARTIFACT_FETCH_TIMEOUT_S)
    expect_status(a, 200)


@then('the job "{name:Q}" kept nothing in the tree its containers wrote')
def step_no_tree(context, name):
    _, jid = the_job(context, name)
    base = os.path.join(host(context).data_dir, "jobs", jid)
    left = [d for d in ("src", "out") if os.path.lexists(os.path.join(base, d))]
    assert not left, f"job {name} left {left} in {base}"
    st = os.lstat(os.path.join(base, "artifact.tar"))
    assert st.st_mode & 0o777 == 0o600, f"the artifact is mode {oct(st.st_mode & 0o777)}"


# ---- the fair queue ----

@step('the job "{name:Q}" runs its build step')
def step_runs_build(context, name):
    eventually(lambda: get_job(context, name)["step"] == "build" and get_job(context, name)["status"] == "running",
               RUNNING_TIMEOUT_S, f"job {name} runs its build step")


@then('the jobs {names} are "{state:Q}"')
def step_jobs_are(context, names, state):
    for name in [n.strip().strip('"') for n in names.replace(" and ", ",").split(",")]:
        j = get_job(context, name)
        assert j["status"] == state, f"job {name} is {j['status']} (step {j['step']}), not {state}"


@step('the job "{name:Q}" is told to go')
def step_go(context, name):
    """The waiting build command looks for a file in its workspace: the job's clone on the host."""
    _, jid = the_job(context, name)
    src = os.path.join(host(context).data_dir, "jobs", jid, "src")
    assert os.path.isdir(src), f"job {name} has no workspace at {src}"
    with open(os.path.join(src, GO_FILE), "w") as f:
        f.write("go\n")
