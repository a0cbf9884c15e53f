"""dmsd for the feature suite: one daemon per @dmsd scenario, with its own data dir, executor id
(<scenario's executor id>-dmsd, so after_all's check of the run's prefix covers it too), JWT secret and port;
an HTTP client; bearer tokens minted here (independently of dmsd's own JWT code); local git repositories; and
the teardown that proves nothing of that dmsd is left in the engine.

Teardown, in order: delete every droid still there (through the API, as each user the scenario used), stop
dmsd by its pid (SIGTERM, SIGKILL after DMSD_STOP_TIMEOUT_S), `dms-exec -i <its id> cleanup` against its
executor state, then every container, image, network and volume still labelled io.dms.executor=<its id> is a
problem (the scenario fails) and is removed so that it does not outlive the run."""
import base64
import hashlib
import hmac
import http.client
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time

from . import engine
from .util import eventually

DMSD_START_TIMEOUT_S = 10
DMSD_STOP_TIMEOUT_S = 20
HTTP_TIMEOUT_S = 30
DELETE_TIMEOUT_S = 60
# After the last DELETE: dmsd's image collector retries a removal the engine refused after 5 s, then backs off.
DELETED_GONE_TIMEOUT_S = 20
CLEANUP_TIMEOUT_S = 60
GIT_TIMEOUT_S = 30
TOKEN_TTL_S = 3600
LOG_TAIL_LINES = 40
FOLLOW_JOIN_TIMEOUT_S = 5
STREAM_READ_BYTES = 65536

TAG = "dmsd"
UNSUPPORTED = {
    "process": "dmsd builds every droid into an image through the executor's build operation, which the "
               "process backend does not have; dmsd's API scenarios run on the docker backend",
}


def unsupported_reason(backend, tags):
    """Why a @dmsd scenario cannot run on this backend, or None (also None for scenarios without the tag)."""
    if TAG not in tags or backend == "docker":
        return None
    return f"@{TAG}: " + UNSUPPORTED.get(backend, f"dmsd's API scenarios run on the docker backend, not {backend}")


# ---- tokens ----

def _b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


HMAC_DIGESTS = {"HS256": hashlib.sha256, "HS512": hashlib.sha512}


def mint_token(secret, claims, alg="HS256"):
    """A JWT over claims, HMAC-signed with secret (HS256, or HS512 to test that only HS256 is accepted)."""
    header = _b64url(json.dumps({"alg": alg, "typ": "JWT"}, separators=(",", ":")).encode())
    payload = _b64url(json.dumps(claims, separators=(",", ":")).encode())
    signing_input = f"{header}.{payload}".encode()
    sig = _b64url(hmac.new(secret.encode(), signing_input, HMAC_DIGESTS[alg]).digest())
    return f"{header}.{payload}.{sig}"


def user_claims(user, ttl_s=TOKEN_TTL_S):
    now = int(time.time())
    return {"user_id": user, "iat": now, "exp": now + ttl_s}


# ---- HTTP ----

class Answer:
    """One HTTP answer: status, headers (lower-case names), body, and the body as JSON when it is JSON."""

    def __init__(self, method, path, status, headers, body, seconds):
        self.method = method
        self.path = path
        self.status = status
        self.headers = headers
        self.body = body
        self.seconds = seconds
        self.text = body.decode("utf-8", "replace")
        try:
            self.json = json.loads(self.text) if self.text.strip() else None
        except ValueError:
            self.json = None

    def header(self, name):
        return self.headers.get(name.lower())

    def describe(self):
        return f"{self.method} {self.path} -> {self.status} after {self.seconds:.2f} s: {self.text[:3000]}"


class Stream:
    """A streamed answer read line by line on a thread of its own; each line is kept with its arrival time
    (time.monotonic()), so a step can tell a live stream from one sent in a single piece."""

    def __init__(self, conn, resp, path):
        self.conn = conn
        self.resp = resp
        self.path = path
        self.status = resp.status
        self.headers = {k.lower(): v for k, v in resp.getheaders()}
        self.lines = []  # (arrival, text without the newline)
        self.ended_at = None
        self.error = None
        self.opened_at = time.monotonic()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self):
        # read1, not readline: HTTPResponse.readline waits for a buffer's worth of bytes, so a live stream would
        # look as if it came in one piece.
        partial = b""
        try:
            while True:
                data = self.resp.read1(STREAM_READ_BYTES)
                if not data:
                    break
                now = time.monotonic()
                *whole, partial = (partial + data).split(b"\n")
                with self._lock:
                    self.lines += [(now, line.decode("utf-8", "replace")) for line in whole]
        except (OSError, http.client.HTTPException, ValueError) as e:
            self.error = e
        if partial:
            with self._lock:
                self.lines.append((time.monotonic(), partial.decode("utf-8", "replace")))
        self.ended_at = time.monotonic()

    def texts(self):
        with self._lock:
            return [t for _, t in self.lines]

    def arrivals(self):
        with self._lock:
            return list(self.lines)

    def ended(self):
        return self.ended_at is not None

    def close(self):
        """Ends the stream from our side (a client that goes away)."""
        try:
            if self.conn.sock:
                self.conn.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self._thread.join(FOLLOW_JOIN_TIMEOUT_S)
        self.conn.close()


# ---- the daemon ----

class Dmsd:
    """One dmsd of a scenario. Not started until start() (a step says how it should run)."""

    def __init__(self, build_dir, scenario_dir, executor_id):
        self.bin = os.path.join(build_dir, "bin", "dmsd")
        self.exec_bin = os.path.join(build_dir, "bin", "dms-exec")
        self.plugin_dir = os.path.join(build_dir, "plugins")
        self.dir = os.path.join(scenario_dir, "dmsd")
        self.data_dir = os.path.join(self.dir, "var")
        self.port_file = os.path.join(self.dir, "port")
        self.log_path = os.path.join(self.dir, "dmsd.log")
        self.executor_id = executor_id
        # Local repositories are refused unless beneath DMS_LOCAL_REPO_ROOTS: the scenario's own directory
        # holds its repositories (its dmsd's data dir lies beneath it too, which dmsd never reads from).
        self.repo_roots = scenario_dir
        RUN_EXECUTOR_IDS.add(executor_id)
        self.secret = secrets.token_urlsafe(32)
        self.proc = None
        self.port = None
        self.keep_releases = None
        self.docker_host = None  # a DOCKER_HOST of the scenario's own (an engine socket that is not there yet)
        # Settings of this scenario's dmsd (name -> value; None removes a default the harness sets).
        self.extra_env = {}
        self.users = set()
        self.repo_of = {}  # droid name -> the scenario's repository it was created from
        self.droid_ids = set()  # every droid this dmsd created for the scenario (their images are checked too)
        self.streams = []
        self.unexpected_exits = []  # what a dmsd that died on its own said (a crash fails the scenario)
        os.makedirs(self.dir, exist_ok=True)

    # -- process --

    def start(self, keep_releases=None, extra_env=None, nofile=None):
        """nofile: (soft, hard) RLIMIT_NOFILE to start dmsd with, through util-linux's prlimit (which execs
        dmsd: the pid stays dmsd's); None keeps the harness's own limit."""
        if not os.path.exists(self.bin):
            raise AssertionError(f"{self.bin} is missing: build dmsd first (make BUILD=... build-all)")
        if keep_releases is not None:
            self.keep_releases = keep_releases
        env = {k: v for k, v in os.environ.items() if not k.startswith("DMS_") and k != "DOCKER_HOST"}
        env.update({"DMS_JWT_SECRET": self.secret, "DMS_DATA_DIR": self.data_dir, "DMS_LISTEN": "127.0.0.1:0",
                    "DMS_EXECUTOR_ID": self.executor_id, "DMS_BACKEND": "docker", "DMS_PLUGIN_DIR": self.plugin_dir,
                    "DMS_LOG_LEVEL": "info", "DMS_LOCAL_REPO_ROOTS": self.repo_roots,
                    # Any free port for its Caddy: scenarios (and parallel runs) must not compete for 8000.
                    "DMS_PROXY_LISTEN": "127.0.0.1:0",
                    # The scenarios' repositories start FROM the local test images; dmsd's default allows only
                    # dms-stack/* and the user's own droids' images (security_build.feature covers that).
                    "DMS_BUILD_ALLOWED_IMAGES": "dms-test/*"})
        if self.keep_releases is not None:
            env["DMS_KEEP_RELEASES"] = str(self.keep_releases)
        if extra_env:
            self.extra_env.update(extra_env)
        for name, value in self.extra_env.items():
            if value is None:
                env.pop(name, None)
            else:
                env[name] = value
        if self.docker_host:
            env["DOCKER_HOST"] = self.docker_host
        try:
            os.unlink(self.port_file)
        except FileNotFoundError:
            pass
        with open(self.log_path, "ab") as log:
            log.write(f"---- dmsd starting at {time.strftime('%H:%M:%S')} ----\n".encode())
            log.flush()
            argv = [self.bin, "--port-file", self.port_file]
            if nofile is not None:
                argv = ["prlimit", f"--nofile={nofile[0]}:{nofile[1]}", "--"] + argv
            self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL,
                                         stdout=log, stderr=log, env=env)
        deadline = time.monotonic() + DMSD_START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"dmsd exited {self.proc.returncode} at startup:\n{self.log_tail()}")
            try:
                with open(self.port_file) as f:
                    text = f.read().strip()
                if text:
                    self.port = int(text)
                    return
            except FileNotFoundError:
                pass
            time.sleep(0.05)
        raise AssertionError(f"dmsd wrote no port file within {DMSD_START_TIMEOUT_S} s:\n{self.log_tail()}")

    @property
    def pid(self):
        return self.proc.pid if self.proc else None

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def kill9(self):
        """kill -9, by pid: no shutdown code runs."""
        assert self.running(), f"dmsd is not running:\n{self.log_tail()}"
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(DMSD_STOP_TIMEOUT_S)
        self.proc = None

    def stop(self):
        """SIGTERM by pid; returns a problem string when it would not stop or did not exit cleanly."""
        if self.proc is None:
            return None
        if self.proc.poll() is not None:
            problem = f"dmsd (pid {self.proc.pid}) had exited on its own with {self.proc.returncode}"
            self.proc = None
            return problem
        os.kill(self.proc.pid, signal.SIGTERM)
        problem = None
        try:
            rc = self.proc.wait(DMSD_STOP_TIMEOUT_S)
            if rc != 0:
                problem = f"dmsd exited {rc} after SIGTERM (expected 0)"
        except subprocess.TimeoutExpired:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(DMSD_STOP_TIMEOUT_S)
            problem = f"dmsd did not exit within {DMSD_STOP_TIMEOUT_S} s of SIGTERM; killed it"
        self.proc = None
        return problem

    def check_alive(self):
        """Fails when dmsd died by itself (it must never crash under the scenarios)."""
        if self.proc is not None and self.proc.poll() is not None:
            rc = self.proc.returncode
            self.proc = None
            self.unexpected_exits.append(rc)
            raise AssertionError(f"dmsd died on its own (exit {rc}):\n{self.log_tail()}")

    def log_tail(self, n=LOG_TAIL_LINES):
        try:
            with open(self.log_path, errors="replace") as f:
                lines = f.readlines()
        except OSError:
            return "(no dmsd log)"
        return "--- dmsd log (last lines) ---\n" + "".join(lines[-n:])

    # -- tokens and requests --

    def add_droid(self, droid_id):
        """Records a droid this dmsd created: teardown and after_all look for its images too."""
        self.droid_ids.add(droid_id)
        RUN_DROID_IDS.add(droid_id)

    def token(self, user):
        """A token for user that this dmsd accepts: an exp always, and the aud / iss its settings ask for."""
        self.users.add(user)
        claims = user_claims(user)
        for setting, claim in (("DMS_JWT_AUDIENCE", "aud"), ("DMS_JWT_ISSUER", "iss")):
            if self.extra_env.get(setting):
                claims[claim] = self.extra_env[setting]
        return mint_token(self.secret, claims)

    def _connect(self, timeout_s):
        assert self.port, "dmsd has not been started"
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout_s)

    def request(self, method, path, user=None, body=None, headers=None, timeout_s=HTTP_TIMEOUT_S):
        """One request; user mints a bearer token (None: no Authorization unless headers has one)."""
        h = dict(headers or {})
        if user is not None:
            h["Authorization"] = "Bearer " + self.token(user)
        data = None
        if body is not None:
            data = body if isinstance(body, (bytes, str)) else json.dumps(body)
            if isinstance(data, str):
                data = data.encode()
            h.setdefault("Content-Type", "application/json")
        t0 = time.monotonic()
        conn = self._connect(timeout_s)
        try:
            conn.request(method, path, body=data, headers=h)
            resp = conn.getresponse()
            payload = resp.read()
            hdrs = {k.lower(): v for k, v in resp.getheaders()}
            return Answer(method, path, resp.status, hdrs, payload, time.monotonic() - t0)
        except (OSError, http.client.HTTPException) as e:
            self.check_alive()
            raise AssertionError(f"{method} {path}: no answer from dmsd ({e}):\n{self.log_tail()}") from e
        finally:
            conn.close()

    def stream(self, path, user, timeout_s=HTTP_TIMEOUT_S):
        """Opens a streamed GET (a follow); the caller checks its status and closes it (teardown does too)."""
        conn = self._connect(timeout_s)
        conn.request("GET", path, headers={"Authorization": "Bearer " + self.token(user)})
        resp = conn.getresponse()
        s = Stream(conn, resp, path)
        self.streams.append(s)
        return s

    # -- teardown --

    def teardown(self, scenario_failed=False):
        """Deletes what is left, stops dmsd, cleans up its executor, and returns every problem found."""
        problems = []
        for s in self.streams:
            s.close()
        if self.proc is not None and self.proc.poll() is not None:
            problems.append(f"dmsd died on its own during the scenario (exit {self.proc.returncode})")
        elif self.unexpected_exits:
            problems.append(f"dmsd died on its own during the scenario (exit {self.unexpected_exits[0]})")
        if self.running():
            deleted = True
            for user in sorted(self.users):
                p = self._delete_all(user)
                deleted = deleted and not p
                problems += p
            if deleted:
                problems += self._nothing_left_by_deletes()
        stop_problem = self.stop()
        if stop_problem:
            problems.append(stop_problem)
        if os.path.isdir(self.data_dir):
            argv = [self.exec_bin, "-x", "docker", "-i", self.executor_id, "--state-dir",
                    os.path.join(self.data_dir, "exec"), "--plugin-dir", self.plugin_dir, "--json", "cleanup"]
            try:
                p = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                                   timeout=CLEANUP_TIMEOUT_S)
                if p.returncode != 0:
                    problems.append(f"`{' '.join(argv)}` exited {p.returncode}: {p.stdout.strip()} "
                                    f"{p.stderr.strip()}")
            except subprocess.TimeoutExpired:
                problems.append(f"`{' '.join(argv)}` hung for {CLEANUP_TIMEOUT_S} s")
        left = leftovers(self.executor_id, self.droid_ids)
        if left:
            problems.append(f"resources labelled io.dms.executor={self.executor_id} are left after dmsd's "
                            f"teardown and cleanup: {describe_leftovers(left)}")
            problems += remove_leftovers(left)
        if problems or scenario_failed:
            # The daemon's own account helps whoever reads the failure.
            sys.stderr.write(self.log_tail() + "\n")
        return problems

    def _nothing_left_by_deletes(self):
        """Once every droid is deleted, dmsd itself must have removed their containers, images and volumes
        (networks may stay until cleanup: a user's network goes with their last droid, but a job step keeps
        one, and a network in use at that moment stays). Image removals a busy engine refused are retried by
        dmsd's collector, hence the wait."""
        def probe():
            left = {k: v for k, v in leftovers(self.executor_id, self.droid_ids).items() if k != "network"}
            if left:
                raise AssertionError(describe_leftovers(left))
            return True
        try:
            eventually(probe, DELETED_GONE_TIMEOUT_S, "every container, image and volume of the deleted droids "
                       "is gone")
            return []
        except AssertionError as e:
            return [f"dmsd left resources behind after every droid was deleted through the API: {e}"]

    def list_all(self, path, user, rows_of=lambda body: body):
        """Every row of a list route, page after page from the cursor each page gives (X-Next-Cursor); the
        answers of the pages in order. rows_of picks the rows out of a body (koalaCI's /jobs: its "data")."""
        rows, answers, cursor = [], [], None
        while True:
            sep = "&" if "?" in path else "?"
            a = self.request("GET", path + (f"{sep}after={cursor}" if cursor else ""), user)
            answers.append(a)
            if a.status != 200:
                return rows, answers
            rows += rows_of(a.json) or []
            cursor = a.header("X-Next-Cursor")
            if not cursor:
                return rows, answers

    def _delete_all(self, user):
        problems = []
        try:
            droids, answers = self.list_all("/droids", user)
            ids = [d["id"] for d in droids]
            if answers[-1].status != 200:
                problems.append(f"teardown: listing {user}'s droids: {answers[-1].describe()}")
            for droid_id in ids:
                d = self.request("DELETE", f"/droids/{droid_id}", user, timeout_s=DELETE_TIMEOUT_S)
                if d.status != 200:
                    problems.append(f"teardown: deleting droid {droid_id} of {user}: {d.describe()}")
        except (AssertionError, OSError) as e:
            problems.append(f"teardown: deleting {user}'s droids: {e}")
        return problems


# ---- the engine, for one dmsd ----

# Every dmsd executor id and droid id of this run: an engine build that a delete or a kill interrupted may commit
# its image after the scenario's teardown looked, so after_all looks once more (run_leftovers).
RUN_EXECUTOR_IDS = set()
RUN_DROID_IDS = set()


def user_network(executor_id, user):
    """The network of a user's droids and job steps (dms/confine/confine.c: confine_user_network), derived here
    on its own so that a scenario checks dmsd's derivation instead of repeating it."""
    user_hash = hashlib.sha256(user.encode()).hexdigest()[:16]
    base = "droid-net" if executor_id == "dmsd" else f"droid-net-{executor_id}"
    if len(base) + 2 + 16 > 64:
        base = "droid-net-" + hashlib.sha256(executor_id.encode()).hexdigest()[:16]
    return f"{base}-u{user_hash}"


def run_leftovers():
    """Images of this run's dmsd instances still in the engine (after every scenario's teardown)."""
    images = set()
    for executor_id in RUN_EXECUTOR_IDS:
        images.update(leftovers(executor_id).get("image", []))
    for droid_id in RUN_DROID_IDS:
        images.update(images_of(None, droid_id))
    return sorted(images)


LEFTOVER_KINDS = ("container", "image", "volume", "network")


def leftovers(executor_id, droid_ids=()):
    """{kind: [ids]} of everything labelled io.dms.executor=executor_id, and the images of the given droids
    (see images_of: a build stopped half-way leaves an image without the executor's label; empty kinds left
    out)."""
    found = engine.resources_with_label(f"io.dms.executor={executor_id}")
    out = engine.docker("images", "-q", "--no-trunc", "--filter", f"label=io.dms.executor={executor_id}")
    images = set(line for line in out.splitlines() if line.strip())
    for droid_id in droid_ids:
        images.update(images_of(executor_id, droid_id))
    found["image"] = sorted(images)
    return {k: v for k, v in found.items() if v}


def describe_leftovers(found):
    parts = []
    for kind in LEFTOVER_KINDS:
        for ident in found.get(kind, []):
            text = f"{kind} {ident[:19]}"
            if kind == "network":
                # A network dmsd created and another engine user attached to cannot be removed: say who.
                try:
                    info = engine.inspect("network", ident)
                    users = [c.get("Name") for c in (info.get("Containers") or {}).values()]
                    text += f" (name {info.get('Name')}; attached: {', '.join(users) if users else 'nothing'})"
                except AssertionError:
                    pass
            parts.append(text)
    return "; ".join(parts)


def remove_leftovers(found):
    errors = []
    for kind in ("container", "image", "volume", "network"):
        for ident in found.get(kind, []):
            if kind == "image":
                p = subprocess.run(["docker", "rmi", "-f", ident], stdin=subprocess.DEVNULL, capture_output=True,
                                   text=True, timeout=engine.DOCKER_CALL_TIMEOUT_S)
                e = None if p.returncode == 0 or "No such image" in p.stderr else f"docker rmi {ident}: {p.stderr}"
            else:
                e = engine.remove(kind, ident)
            if e:
                errors.append(e)
    return errors


def containers_of(executor_id, droid_id, running_only=False):
    """Ids of the containers of one droid (label io.dms.job=<droid id>) under this dmsd's executor."""
    args = ["ps", "--no-trunc", "--filter", f"label=io.dms.executor={executor_id}",
            "--filter", f"label=io.dms.job={droid_id}", "--filter", "label=io.dms.role=job", "--format", "{{.ID}}"]
    if not running_only:
        args.insert(1, "-a")
    return [line for line in engine.docker(*args).splitlines() if line.strip()]


def images_of(executor_id, droid_id):
    """Ids of the images of one droid: labelled io.dms.job=<droid id> by the executor, or dms.droid=<droid id>
    by dmsd (the legacy builder applies labels one step at a time, so an image a build left half-way through
    may carry only the first of them; droid ids are random, so dms.droid alone is unambiguous)."""
    ids = set()
    filters = [[f"label=dms.droid={droid_id}"]]
    if executor_id:
        filters.append([f"label=io.dms.executor={executor_id}", f"label=io.dms.job={droid_id}"])
    for f in filters:
        args = ["images", "-q", "--no-trunc"]  # not -a: a release's parent layers carry the labels too
        for one in f:
            args += ["--filter", one]
        ids.update(line for line in engine.docker(*args).splitlines() if line.strip())
    return sorted(ids)


def volumes_named(prefix):
    out = engine.docker("volume", "ls", "-q", "--filter", f"name={prefix}")
    return [v for v in out.splitlines() if v.startswith(prefix)]


# ---- git repositories ----

class Symlink:
    """A file of a repository that is a symbolic link to target (git keeps it as a link, and so does a clone)."""

    def __init__(self, target):
        self.target = target


class Repos:
    """Local git repositories: a work tree per name, pushed to a bare repository <dir>/<name>.git."""

    def __init__(self, root):
        self.root = root
        os.makedirs(root, exist_ok=True)

    def _git(self, *args, cwd=None):
        env = dict(os.environ, GIT_AUTHOR_NAME="features", GIT_AUTHOR_EMAIL="features@dms",
                   GIT_COMMITTER_NAME="features", GIT_COMMITTER_EMAIL="features@dms", GIT_CONFIG_NOSYSTEM="1",
                   HOME=self.root)
        p = subprocess.run(["git", *args], cwd=cwd, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                           env=env, timeout=GIT_TIMEOUT_S)
        if p.returncode != 0:
            raise AssertionError(f"git {' '.join(args)} failed ({p.returncode}): {p.stderr.strip()}")
        return p.stdout

    def path(self, name):
        return os.path.join(self.root, name + ".git")

    def work(self, name):
        return os.path.join(self.root, "work-" + name)

    def create(self, name, files):
        """A bare repository whose default branch main holds files ({path: text}) in one commit."""
        w = self.work(name)
        self._git("init", "-q", "-b", "main", w)
        self._write(w, files)
        self._git("add", "-A", cwd=w)
        self._git("commit", "-qm", "first", cwd=w)
        self._git("clone", "-q", "--bare", w, self.path(name))
        self._git("remote", "add", "origin", self.path(name), cwd=w)
        return self.path(name)

    def commit(self, name, files, branch="main", message="next"):
        """A new commit on branch (created from main if new) with files written over, pushed to the bare repo;
        returns its sha."""
        w = self.work(name)
        branches = self._git("branch", "--list", branch, cwd=w).strip()
        self._git("checkout", "-q", *([] if branches else ["-b"]), branch, cwd=w)
        self._write(w, files)
        self._git("add", "-A", cwd=w)
        self._git("commit", "-qm", message, cwd=w)
        self._git("push", "-q", "origin", branch, cwd=w)
        sha = self._git("rev-parse", "HEAD", cwd=w).strip()
        self._git("checkout", "-q", "main", cwd=w)
        return sha

    @staticmethod
    def _write(w, files):
        """Text gets a final newline; bytes (a program) are written as they are, executable."""
        for rel, text in files.items():
            p = os.path.join(w, rel)
            os.makedirs(os.path.dirname(p), exist_ok=True)
            if isinstance(text, Symlink):
                if os.path.lexists(p):
                    os.unlink(p)
                os.symlink(text.target, p)
                continue
            if isinstance(text, bytes):
                with open(p, "wb") as f:
                    f.write(text)
                os.chmod(p, 0o755)
                continue
            with open(p, "w") as f:
                f.write(text if text.endswith("\n") else text + "\n")
