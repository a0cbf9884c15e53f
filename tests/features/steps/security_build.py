"""Steps for security_build.feature: what a repository's build may reach. Texts may name what the scenario knows:
<unique> (a token of the scenario), <droid NAME> (a droid's id), <image of NAME> and <tag of NAME> (the tag of the
image a droid runs: dms-droid/<id>:<tag>), <image id prefix of NAME> (12 hex digits of its image id, as the engine
prints it), <host file> (a file of the host outside every repository), <port of the web server>."""
import http.server
import os
import re
import threading

from behave import given, then

from dmsfeat import dmsd as dmsdmod
from dmsfeat import engine
from dmsfeat.dmsdsteps import droid_id, expand, expect_status, fetch_page, host, wait_for
from dmsfeat.steputil import eventually

BUILD_LOGS = ("build.out", "build.err")
SERVE_TIMEOUT_S = 10
# dms_write_file_atomic's temp names are <path>.tmp.<pid>.<n> (<path>.tmp.<pid> before): links at the first ones
# of dmsd's pid cover every write a build could make into the checkout.
TEMP_NAMES_PER_PID = 64
IMAGE_ID_PREFIX_HEX = 12

PLACEHOLDER = re.compile(r"<(image id prefix of|image of|tag of) ([a-z0-9-]+)>")


# ---- what the scenario knows, by name ----

def droid_image(context, name):
    """(repository:tag, id) of the image the droid's build made, from the engine (its dms.droid label)."""
    out = engine.docker("images", "--no-trunc", "--filter", f"label=dms.droid={droid_id(context, name)}",
                        "--format", "{{.Repository}}:{{.Tag}} {{.ID}}")
    rows = [line.split() for line in out.splitlines() if line.strip() and "<none>" not in line]
    assert len(rows) == 1, f"droid {name} has not exactly one tagged image: {rows}"
    return rows[0][0], rows[0][1]


def fill(context, text):
    def one(m):
        ref, image_id = droid_image(context, m.group(2))
        if m.group(1) == "image of":
            return ref
        if m.group(1) == "tag of":
            return ref.rsplit(":", 1)[1]
        return image_id.split(":", 1)[1][:IMAGE_ID_PREFIX_HEX]
    text = text.replace("<unique>", host(context).executor_id)
    if "<host file>" in text:
        text = text.replace("<host file>", host_file(context))
    if "<port of the web server>" in text:
        text = text.replace("<port of the web server>", str(web_server(context).server_address[1]))
    return PLACEHOLDER.sub(one, expand(context, text))


def host_file(context):
    return os.path.join(host(context).dir, "host-file")


# ---- repositories ----

@given('a git repository "{repo:Q}" whose Dockerfile, with the names filled in, is')
def step_repo_filled(context, repo):
    context.dmsd_repos.create(repo, {"Dockerfile": fill(context, context.text)})


@given('a git repository "{repo:Q}" holding')
def step_repo_holding(context, repo):
    """A table of | path | content |: "\\n" in a content is a line break, "-> TARGET" makes a symlink."""
    files = {}
    for row in context.table:
        content = fill(context, row["content"])
        if content.startswith("-> "):
            files[row["path"]] = dmsdmod.Symlink(content[3:])
        else:
            files[row["path"]] = content.replace("\\n", "\n")
    context.dmsd_repos.create(repo, files)


@given('the repository "{repo:Q}" has links to the file of the host at the names of dmsd\'s temporary files')
def step_repo_temp_links(context, repo):
    pid = host(context).pid
    assert pid, "dmsd is not running"
    names = [f"Dockerfile.tmp.{pid}"] + [f"Dockerfile.tmp.{pid}.{n}" for n in range(TEMP_NAMES_PER_PID)]
    context.dmsd_repos.commit(repo, {n: dmsdmod.Symlink(host_file(context)) for n in names})


@given('a file of the host holding "{text:Q}"')
def step_host_file(context, text):
    with open(host_file(context), "w") as f:
        f.write(fill(context, text) + "\n")


@given('a file of the host holding a Dockerfile that prints "{text:Q}"')
def step_host_dockerfile(context, text):
    with open(host_file(context), "w") as f:
        f.write(f"FROM dms-test/busybox:latest\nRUN echo {fill(context, text)}\n")


@then('the file of the host still holds "{text:Q}"')
def step_host_file_holds(context, text):
    with open(host_file(context)) as f:
        got = f.read()
    assert got == fill(context, text) + "\n", f"the file of the host was written: it holds {got[:500]!r}"


# ---- a web server that only counts ----

class _Recorder(http.server.BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 - http.server's name
        self.server.requests.append(self.path)
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"a secret of the host's network\n")

    do_HEAD = do_GET

    def log_message(self, *args):
        pass


def web_server(context):
    s = getattr(context, "sec_web_server", None)
    assert s is not None, "no web server was started"
    return s


@given("a web server on the host's loopback that records every request")
def step_web_server(context):
    s = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    s.requests = []
    threading.Thread(target=s.serve_forever, daemon=True).start()
    context.sec_web_server = s

    def stop():
        s.shutdown()
        s.server_close()
    context.add_cleanup(stop)


@then('the web server got no request')
def step_no_request(context):
    got = web_server(context).requests
    assert not got, f"the web server was asked for {got}"


# ---- one user's droids ----

def request(context, user, path):
    a = host(context).request("GET", f"/droids/{path}", user)
    expect_status(a, 200)
    return a


def build_log(context, user, name):
    return "".join(request(context, user, f"{droid_id(context, name)}/logs?{w}").text for w in BUILD_LOGS)


@then('{user:w}\'s droid "{name:Q}" becomes "{state:Q}" within {seconds:d} seconds')
def step_user_becomes(context, user, name, state, seconds):
    wait_for(context, name, state, seconds, user)


@then('{user:w}\'s droid "{name:Q}" is "{state:Q}"')
def step_user_is(context, user, name, state):
    s = request(context, user, f"{droid_id(context, name)}/status").json
    assert s["status"] == state, f"droid {name} is {s['status']} ({s.get('reason')}), not {state}"


def failed_reason(context, user, name, seconds):
    return wait_for(context, name, "failed", seconds, user).get("reason") or ""


@then('{user:w}\'s droid "{name:Q}" fails within {seconds:d} seconds, the reason naming line {n:d} and "{text:Q}"')
def step_fails_naming_line(context, user, name, seconds, n, text):
    reason = failed_reason(context, user, name, seconds)
    want = fill(context, text)
    assert f"Dockerfile line {n}: " in reason and want in reason, \
        f"the reason of droid {name} does not name line {n} and {want!r}: {reason!r}"


@then('{user:w}\'s droid "{name:Q}" fails within {seconds:d} seconds, the reason saying "{text:Q}"')
def step_fails_saying(context, user, name, seconds, text):
    reason = failed_reason(context, user, name, seconds)
    assert fill(context, text) in reason, f"the reason of droid {name} does not say {text!r}: {reason!r}"


@then('{user:w}\'s droid "{name:Q}" serves "{text:Q}"')
def step_user_serves(context, user, name, text):
    want = fill(context, text)

    def probe():
        d = request(context, user, droid_id(context, name)).json
        page = fetch_page(d["url"]) if d.get("url") else None
        assert page == want, f"{d.get('url')} answered {page!r}"
        return True
    eventually(probe, SERVE_TIMEOUT_S, f"droid {name} serves {want!r}", interval_s=0.2)


@then('the build log of {user:w}\'s droid "{name:Q}" has "{text:Q}"')
def step_log_has(context, user, name, text):
    log = build_log(context, user, name)
    assert fill(context, text) in log, f"the build log of droid {name} does not have {text!r}:\n{log[-3000:]}"


@then('the build log of {user:w}\'s droid "{name:Q}" does not have "{text:Q}"')
def step_log_lacks(context, user, name, text):
    log = build_log(context, user, name)
    assert fill(context, text) not in log, f"the build log of droid {name} has {text!r}:\n{log[-3000:]}"


@then('none of {user:w}\'s droids "{names:Q}" has a release, a container or "{text:Q}" in its build log')
def step_none_got_anything(context, user, names, text):
    secret = fill(context, text)
    for name in [n.strip() for n in names.split(",")]:
        rels = request(context, user, f"{droid_id(context, name)}/releases").json
        assert rels == [], f"droid {name} has releases: {rels}"
        assert not dmsdmod.containers_of(host(context).executor_id, droid_id(context, name)), \
            f"droid {name} has containers"
        assert secret not in build_log(context, user, name), f"the build log of droid {name} has {secret!r}"


# ---- labels ----

@then('the image and the container of the droid "{name:Q}" carry this dmsd\'s labels')
def step_labels_ours(context, name):
    ex, did = host(context).executor_id, droid_id(context, name)
    ref, _ = droid_image(context, name)
    image = engine.inspect("image", ref).get("Config", {}).get("Labels") or {}
    for key, want in (("io.dms.executor", ex), ("io.dms.managed", "true"), ("io.dms.job", did)):
        assert image.get(key) == want, f"image {ref}: {key}={image.get(key)!r}, not {want!r} ({image})"
    running = dmsdmod.containers_of(ex, did, running_only=True)
    assert len(running) == 1, f"droid {name} runs in {len(running)} containers (by this dmsd's labels)"
    labels = engine.labels("container", running[0])
    for key, want in (("io.dms.executor", ex), ("io.dms.managed", "true"), ("io.dms.job", did),
                      ("io.dms.role", "job"), ("io.dms.backend", "docker")):
        assert labels.get(key) == want, f"container: {key}={labels.get(key)!r}, not {want!r} ({labels})"


@then('{user:w} rebuilds the droid "{name:Q}" within {seconds:d} seconds')
def step_user_rebuilds(context, user, name, seconds):
    """Names the droid's branch again (a redeploy of its head) and waits for that second build to succeed."""
    did = droid_id(context, name)
    d = request(context, user, did).json
    a = host(context).request("PATCH", f"/droids/{did}", user, body={"branch": d.get("branch") or "main"})
    expect_status(a, 200)

    def rebuilt():
        bs = request(context, user, f"{did}/builds").json
        done = [b for b in bs if b["status"] == "succeeded"]
        assert len(done) >= 2, f"droid {name} has builds {bs}"
        return True
    eventually(rebuilt, seconds, f"droid {name} rebuilt", interval_s=0.3)
