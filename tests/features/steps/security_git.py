"""Steps of security_git.feature: local repositories (DMS_LOCAL_REPO_ROOTS) and git's network egress
(DMS_GIT_ALLOW_NETS, DMS_GIT_TIMEOUT_S).

Servers of these scenarios run in the behave process on 127.0.0.1 and are stopped by the scenario's teardown
(context.servers): a listener that only counts the connections it is offered, a smart-HTTP git server (git
http-backend behind a small CGI host) and a git server that answers its first bytes and then stalls. Git URLs in
step text may name their ports: <listener port>, <closed port>, <git server port>, <stalling port>."""
import http.server
import json
import os
import socket
import subprocess
import threading
import urllib.parse

from behave import given, then, when

from dmsfeat import dmsd as dmsdmod
from dmsfeat.dmsdsteps import answer, call, expand, expect_status, host

ACCEPT_POLL_S = 0.1
CGI_TIMEOUT_S = 30
STALL_HOLD_S = 120  # a stalling server holds each connection this long at most (far beyond DMS_GIT_TIMEOUT_S)
READ_BYTES = 65536
JOB_PAYLOAD = {"project_id": "sec", "deployment_id": "d1", "project_branch": "main",
               "project_build_command": "true", "project_package_manager": "none",
               "project_dist_directory": "."}


# ---- servers ----

class CountingListener:
    """A TCP listener on 127.0.0.1 that never accepts by itself: a connect() still completes through the
    kernel's backlog, so the connections it was offered are counted by accepting them at count() and stop()."""

    def __init__(self):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.sock.setblocking(False)
        self.port = self.sock.getsockname()[1]
        self.seen = 0

    def count(self):
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:  # BlockingIOError: nothing waiting
                return self.seen
            self.seen += 1
            c.close()

    def stop(self):
        self.count()
        self.sock.close()


class _ThreadedServer:
    """Accepts on a daemon thread and hands every connection to handle() on a thread of its own."""

    def __init__(self):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.sock.settimeout(ACCEPT_POLL_S)
        self.port = self.sock.getsockname()[1]
        self.stopping = threading.Event()
        self.conns = []
        self.accepted = 0
        self.thread = threading.Thread(target=self._loop, daemon=True)
        self.thread.start()

    def _loop(self):
        while not self.stopping.is_set():
            try:
                c, _ = self.sock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            self.accepted += 1
            self.conns.append(c)
            threading.Thread(target=self.handle, args=(c,), daemon=True).start()

    def handle(self, conn):
        raise NotImplementedError

    def stop(self):
        self.stopping.set()
        self.thread.join(timeout=2)
        for c in self.conns:
            try:
                c.close()
            except OSError:
                pass
        self.sock.close()


class StallingGitServer(_ThreadedServer):
    """Answers a smart-HTTP ref advertisement with its status line, headers and first packet, then nothing."""

    HEAD = (b"HTTP/1.1 200 OK\r\nContent-Type: application/x-git-upload-pack-advertisement\r\n"
            b"Content-Length: 4096\r\nCache-Control: no-cache\r\n\r\n001e# service=git-upload-pack\n")

    def handle(self, conn):
        try:
            conn.settimeout(CGI_TIMEOUT_S)
            conn.recv(READ_BYTES)
            conn.sendall(self.HEAD)
            self.stopping.wait(STALL_HOLD_S)
        except OSError:
            pass


class _CgiHandler(http.server.BaseHTTPRequestHandler):
    """git http-backend as a CGI program (what a git host's web server does), one process per request."""

    protocol_version = "HTTP/1.1"

    def _run(self):
        url = urllib.parse.urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "GIT_PROJECT_ROOT": self.server.git_root,
               "GIT_HTTP_EXPORT_ALL": "1", "REQUEST_METHOD": self.command, "PATH_INFO": url.path,
               "QUERY_STRING": url.query, "CONTENT_TYPE": self.headers.get("Content-Type", ""),
               "CONTENT_LENGTH": str(len(body)), "REMOTE_ADDR": "127.0.0.1", "GIT_CONFIG_NOSYSTEM": "1"}
        if self.headers.get("Content-Encoding"):
            env["HTTP_CONTENT_ENCODING"] = self.headers["Content-Encoding"]
        p = subprocess.run(["git", "http-backend"], input=body, capture_output=True, env=env,
                           timeout=CGI_TIMEOUT_S)
        head, sep, payload = p.stdout.partition(b"\r\n\r\n")
        if not sep:
            head, sep, payload = p.stdout.partition(b"\n\n")
        status, headers = 200, []
        for line in head.decode("latin-1").splitlines():
            name, _, value = line.partition(":")
            if name.lower() == "status":
                status = int(value.split()[0])
            elif name:
                headers.append((name, value.strip()))
        self.send_response(status)
        for name, value in headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    do_GET = _run
    do_POST = _run

    def log_message(self, fmt, *args):
        pass


class SmartHttpGitServer:
    """Serves the bare repositories under root over smart HTTP at http://127.0.0.1:<port>/<name>.git."""

    def __init__(self, root):
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _CgiHandler)
        self.httpd.daemon_threads = True
        self.httpd.git_root = root
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.1},
                                       daemon=True)
        self.thread.start()

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def servers(context):
    if not hasattr(context, "egress"):
        context.egress = {}
    return context.egress


def start(context, name, server):
    servers(context)[name] = server
    context.servers.append(server)
    return server


def closed_port():
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def url_of(context, text):
    """Step text with its port placeholders (and <repo NAME>) replaced."""
    ports = {"listener": "<listener port>", "git": "<git server port>", "stall": "<stalling port>"}
    for key, placeholder in ports.items():
        if placeholder in text:
            assert key in servers(context), f"{placeholder}: the scenario started no such server"
            text = text.replace(placeholder, str(servers(context)[key].port))
    if "<closed port>" in text:
        text = text.replace("<closed port>", str(closed_port()))
    return expand(context, text)


# ---- dmsd and its repositories ----

def outside_repos(context):
    if not hasattr(context, "outside_repos"):
        context.outside_repos = dmsdmod.Repos(os.path.join(context.scenario_dir, "outside"))
    return context.outside_repos


@given('dmsd is running with local repositories beneath the scenario\'s repositories only')
def step_dmsd_roots(context):
    context.dmsd_host.start(extra_env={"DMS_LOCAL_REPO_ROOTS": context.dmsd_repos.root})


@given('a git repository "{repo:Q}" outside the repositories whose Dockerfile is')
def step_outside_repo(context, repo):
    outside_repos(context).create(repo, {"Dockerfile": context.text})


@given('the repositories hold "{name:Q}", a symlink to the repository "{repo:Q}" outside them')
def step_symlink_out(context, name, repo):
    os.symlink(outside_repos(context).path(repo), context.dmsd_repos.path(name))


@given('a TCP listener on 127.0.0.1 that counts the connections it is offered')
def step_listener(context):
    start(context, "listener", CountingListener())


@given('the repository "{repo:Q}" is served over smart HTTP on 127.0.0.1')
def step_git_server(context, repo):
    assert os.path.isdir(context.dmsd_repos.path(repo)), f"no repository {repo}"
    start(context, "git", SmartHttpGitServer(context.dmsd_repos.root))


@given('a git server on 127.0.0.1 that answers its first bytes and then stalls')
def step_stalling(context):
    start(context, "stall", StallingGitServer())


# ---- requests ----

@when('{user:w} checks the git URL "{url:Q}"')
def step_check_url(context, user, url):
    url = url_of(context, url)  # once: <closed port> is a new port each time
    a = call(context, "GET", "/git/check?" + urllib.parse.urlencode({"repo": url}), user,
             timeout_s=dmsdmod.HTTP_TIMEOUT_S)
    context.egress_checks = getattr(context, "egress_checks", []) + [(url, a)]


@when('{user:w} creates the droid "{name:Q}" from the git URL "{url:Q}"')
def step_create_url(context, user, name, url):
    a = call(context, "POST", "/droids", user, body={"name": name, "repo": url_of(context, url)})
    if a.status == 201:
        context.dmsd_droids[name] = a.json["id"]
        host(context).add_droid(a.json["id"])


@when('{user:w} posts a build job of the repository "{repo:Q}"')
def step_post_job(context, user, repo):
    body = dict(JOB_PAYLOAD, project_repo_url=url_of(context, repo))
    call(context, "POST", "/job/create", user, body=body)


# ---- what came of them ----

@then('the answer is 403 naming the field "{field:Q}" and the setting {setting:w}')
def step_forbidden(context, field, setting):
    a = answer(context)
    expect_status(a, 403)
    assert a.json.get("field") == field, f"expected the field {field!r}: {a.describe()}"
    assert setting in (a.json.get("error") or ""), f"the error does not name {setting}: {a.describe()}"


@then('the answer says the repository is refused, naming {setting:w}')
def step_refused(context, setting):
    a = answer(context)
    expect_status(a, 200)
    j = a.json
    assert j.get("reachable") is False and j.get("retryable") is False, a.describe()
    assert setting in (j.get("error") or ""), f"the error does not name {setting}: {a.describe()}"


@then('the answers to the last {n:d} checks are the same but for the URL')
def step_same_answers(context, n):
    checks = getattr(context, "egress_checks", [])[-n:]
    assert len(checks) == n, f"only {len(checks)} checks were made"
    bodies = []
    for url, a in checks:
        j = dict(a.json or {})
        j["repo"] = None
        bodies.append((a.status, json.dumps(j, sort_keys=True).replace(url, "<url>")))
    assert all(b == bodies[0] for b in bodies), "the answers differ:\n" + "\n".join(f"{s} {b}" for s, b in bodies)


@then('the answer says the repository is reachable with the branch "{branch:Q}"')
def step_reachable_branch(context, branch):
    a = answer(context)
    expect_status(a, 200)
    assert a.json.get("reachable") is True and branch in (a.json.get("branches") or []), a.describe()


@then('the answer says the remote stalled, naming {setting:w}')
def step_stalled(context, setting):
    """The server holds on for STALL_HOLD_S, beyond the request's own timeout: only dmsd's gives this answer."""
    a = answer(context)
    expect_status(a, 200)
    j = a.json
    assert j.get("reachable") is False and j.get("retryable") is True, a.describe()
    assert setting in (j.get("error") or ""), f"the error does not name {setting}: {a.describe()}"


@then('the listener was offered no connection')
def step_no_connection(context):
    n = servers(context)["listener"].count()
    assert n == 0, f"the listener was offered {n} connection(s)"


@then('dmsd cloned nothing and {user:w} has no jobs')
def step_nothing_cloned(context, user):
    droids_dir = os.path.join(host(context).data_dir, "droids")
    found = []
    for base, _, files in os.walk(droids_dir):
        found += [os.path.join(base, f) for f in files]
    assert not found, f"dmsd wrote these from a refused repository: {found[:10]}"
    a = host(context).request("GET", "/jobs", user)
    expect_status(a, 200)
    assert a.json.get("data") == [], f"jobs were made: {a.describe()}"
