"""A dmsd that routes droids through its own Caddy, for routing.feature and snooze.feature (@dmsd @caddy).

Each scenario starts its own dmsd (own data dir, executor id <scenario executor id>-rt, so after_all's check of
the run's prefix covers it, JWT secret, API port and proxy port picked by dmsd itself), talks to its API with
tokens minted here, reaches droids through the proxy with a Host header (<name>.localhost: Python does not
resolve *.localhost by itself, curl does), and looks behind dmsd's back: the engine through the docker CLI,
Caddy through its admin socket.

Teardown (a step at the end of every scenario, and again from a cleanup if a step failed first): delete every
droid through the API, stop dmsd by its pid (SIGTERM; its Caddy must be gone with it), `dms-exec cleanup` for
its executor, then anything still labelled with its executor id (containers, images, volumes, its droid network)
is a leak, reported and removed."""
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
import threading
import time

from . import engine
from .util import eventually

START_TIMEOUT_S = 15
STOP_TIMEOUT_S = 20
HTTP_TIMEOUT_S = 30
DELETE_TIMEOUT_S = 60
GIT_TIMEOUT_S = 30
CLEANUP_TIMEOUT_S = 60
TOKEN_TTL_S = 3600
LOG_TAIL_LINES = 60
USER = "alice"


def _b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def mint_token(secret, user):
    now = int(time.time())
    header = _b64url(json.dumps({"alg": "HS256", "typ": "JWT"}, separators=(",", ":")).encode())
    payload = _b64url(json.dumps({"user_id": user, "iat": now, "exp": now + TOKEN_TTL_S},
                                 separators=(",", ":")).encode())
    sig = _b64url(hmac.new(secret.encode(), f"{header}.{payload}".encode(), hashlib.sha256).digest())
    return f"{header}.{payload}.{sig}"


class Answer:
    def __init__(self, status, headers, body, seconds):
        self.status = status
        self.headers = headers
        self.body = body
        self.text = body.decode("utf-8", "replace")
        self.seconds = seconds
        try:
            self.json = json.loads(self.text) if self.text.strip() else None
        except ValueError:
            self.json = None

    def describe(self):
        return f"{self.status} after {self.seconds:.3f} s: {self.text[:2000]}"


def request(port, method, path, host=None, body=None, headers=None, timeout_s=HTTP_TIMEOUT_S):
    """One HTTP request on a new connection (as curl does); an Answer, or an exception for a failed exchange."""
    t0 = time.monotonic()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout_s)
    try:
        h = dict(headers or {})
        if host:
            h["Host"] = host
        data = body if body is None or isinstance(body, bytes) else body.encode()
        conn.request(method, path, body=data, headers=h)
        resp = conn.getresponse()
        raw = resp.read()
        return Answer(resp.status, {k.lower(): v for k, v in resp.getheaders()}, raw, time.monotonic() - t0)
    finally:
        conn.close()


class Repos:
    """Local git repositories (bare) whose Dockerfiles build FROM the local test images."""

    def __init__(self, root):
        self.root = root
        os.makedirs(root, exist_ok=True)

    def _git(self, *args, cwd=None):
        p = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, timeout=GIT_TIMEOUT_S,
                           env={**os.environ, "GIT_AUTHOR_NAME": "f", "GIT_AUTHOR_EMAIL": "f@dms",
                                "GIT_COMMITTER_NAME": "f", "GIT_COMMITTER_EMAIL": "f@dms"})
        if p.returncode != 0:
            raise AssertionError(f"git {' '.join(args)}: {p.stderr.strip()}")

    def create(self, name, dockerfile, files=None):
        work = os.path.join(self.root, "src-" + name)
        bare = os.path.join(self.root, name + ".git")
        self._git("init", "-q", "-b", "main", work)
        with open(os.path.join(work, "Dockerfile"), "w") as f:
            f.write(dockerfile)
        for path, text in (files or {}).items():
            with open(os.path.join(work, path), "w") as f:
                f.write(text)
        self._git("add", ".", cwd=work)
        self._git("commit", "-qm", "init", cwd=work)
        self._git("clone", "-q", "--bare", work, bare)
        return bare

    def push(self, name, dockerfile):
        work = os.path.join(self.root, "src-" + name)
        with open(os.path.join(work, "Dockerfile"), "w") as f:
            f.write(dockerfile)
        self._git("commit", "-qam", "next", cwd=work)
        self._git("push", "-q", os.path.join(self.root, name + ".git"), "main", cwd=work)


class RoutedDmsd:
    def __init__(self, build_dir, scenario_dir, executor_id):
        self.bin = os.path.join(build_dir, "bin", "dmsd")
        self.exec_bin = os.path.join(build_dir, "bin", "dms-exec")
        self.plugin_dir = os.path.join(build_dir, "plugins")
        self.dir = os.path.join(scenario_dir, "routed")
        self.data_dir = os.path.join(self.dir, "var")
        self.caddy_dir = os.path.join(self.data_dir, "caddy")
        self.port_file = os.path.join(self.dir, "port")
        self.log_path = os.path.join(self.dir, "dmsd.log")
        self.executor_id = executor_id
        self.secret = secrets.token_urlsafe(32)
        self.token = mint_token(self.secret, USER)
        self.repos = Repos(os.path.join(self.dir, "repos"))
        self.proc = None
        self.port = None
        self.proxy_port = None
        self.droids = {}  # name -> id
        self.torn_down = False
        os.makedirs(self.dir, exist_ok=True)

    # -- process --

    def start(self):
        env = {k: v for k, v in os.environ.items() if not k.startswith("DMS_") and k != "DOCKER_HOST"}
        env.update({"DMS_JWT_SECRET": self.secret, "DMS_DATA_DIR": self.data_dir, "DMS_LISTEN": "127.0.0.1:0",
                    "DMS_EXECUTOR_ID": self.executor_id, "DMS_BACKEND": "docker",
                    "DMS_PLUGIN_DIR": self.plugin_dir, "DMS_LOG_LEVEL": "info",
                    "DMS_PROXY_LISTEN": "127.0.0.1:0",
                    # its repositories are beneath its directory (and so is its data dir, never read from)
                    "DMS_LOCAL_REPO_ROOTS": self.dir,
                    # The scenarios' repositories start FROM the local test images (see dmsd.py).
                    "DMS_BUILD_ALLOWED_IMAGES": "dms-test/*"})
        try:
            os.unlink(self.port_file)
        except FileNotFoundError:
            pass
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen([self.bin, "--port-file", self.port_file], env=env, stdin=subprocess.DEVNULL,
                                     stdout=log, stderr=log)
        log.close()

        def up():
            if self.proc.poll() is not None:
                raise AssertionError(f"dmsd exited with {self.proc.returncode}:\n{self.log_tail()}")
            return os.path.exists(self.port_file) and open(self.port_file).read().strip()

        self.port = int(eventually(up, START_TIMEOUT_S, "dmsd writes its port file"))
        self.proxy_port = self._proxy_port()

    def _proxy_port(self):
        """The proxy's port, from the line dmsd prints at startup."""
        def line():
            for text in open(self.log_path, errors="replace").read().splitlines()[::-1]:
                if "droids at http://<name>.localhost:" in text:
                    return int(text.rsplit(":", 1)[1].strip("/ \n"))
            return None
        return eventually(line, START_TIMEOUT_S, "dmsd says where the droids are served")

    def stop(self):
        """SIGTERM by pid, then SIGKILL if it does not stop in time."""
        if not self.proc or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(STOP_TIMEOUT_S)
            raise AssertionError(f"dmsd did not stop within {STOP_TIMEOUT_S} s of SIGTERM")

    def restart(self):
        self.stop()
        self.start()

    def log_tail(self, n=LOG_TAIL_LINES):
        try:
            return "\n".join(open(self.log_path, errors="replace").read().splitlines()[-n:])
        except OSError:
            return "(no log)"

    # -- the API --

    def api(self, method, path, body=None, token=None, raw_body=None):
        data = raw_body if raw_body is not None else (json.dumps(body) if body is not None else None)
        return request(self.port, method, path, body=data,
                       headers={"Authorization": f"Bearer {token or self.token}",
                                "Content-Type": "application/json"})

    def api_ok(self, method, path, body=None, expect=(200, 201, 202)):
        a = self.api(method, path, body)
        if a.status not in expect:
            raise AssertionError(f"{method} {path}: {a.describe()}")
        return a.json

    def droid(self, name):
        return self.api_ok("GET", f"/droids/{self.droids[name]}")

    def status(self, name):
        return self.api_ok("GET", f"/droids/{self.droids[name]}/status")

    def wait_status(self, name, want, timeout_s):
        def probe():
            st = self.status(name)
            if st["status"] != want:
                raise AssertionError(f"droid {name} is {st['status']} ({st['reason']})")
            return st
        try:
            return eventually(probe, timeout_s, f"droid {name} becomes {want}", interval_s=0.1)
        except AssertionError as e:
            raise AssertionError(f"{e}\n--- dmsd log ---\n{self.log_tail()}") from None

    # -- the proxy --

    def via_proxy(self, name, path="/", timeout_s=HTTP_TIMEOUT_S):
        return request(self.proxy_port, "GET", path, host=f"{name}.localhost:{self.proxy_port}", timeout_s=timeout_s)

    def caddy_admin(self, method, path):
        """Caddy's admin API over its unix socket: (status, body)."""
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(HTTP_TIMEOUT_S)
        s.connect(os.path.join(self.caddy_dir, "admin.sock"))
        s.sendall(f"{method} {path} HTTP/1.0\r\nHost: dms-admin\r\n\r\n".encode())
        data = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
        s.close()
        head, _, body = data.partition(b"\r\n\r\n")
        return int(head.split()[1]), body.decode("utf-8", "replace")

    def caddy_pid(self):
        try:
            return int(open(os.path.join(self.caddy_dir, "caddy.pid")).read().strip())
        except (OSError, ValueError):
            return 0

    def containers(self, name):
        """Running containers of a droid (the engine's word)."""
        out = engine.docker("ps", "-q", "--filter", f"label=io.dms.executor={self.executor_id}",
                            "--filter", f"label=io.dms.job={self.droids[name]}")
        return [line for line in out.splitlines() if line.strip()]

    # -- teardown --

    def teardown(self):
        """Everything this dmsd made goes; returns the problems found (leaks, a dmsd that would not stop)."""
        if self.torn_down:
            return []
        self.torn_down = True
        problems = []
        if self.proc and self.proc.poll() is None:
            for name, ident in list(self.droids.items()):
                try:
                    a = self.api("DELETE", f"/droids/{ident}")
                    if a.status not in (200, 404):
                        problems.append(f"DELETE droid {name}: {a.describe()}")
                except (OSError, http.client.HTTPException) as e:
                    problems.append(f"DELETE droid {name}: {e}")
        caddy = self.caddy_pid()
        try:
            self.stop()
        except AssertionError as e:
            problems.append(str(e))
        if caddy and _alive(caddy):
            problems.append(f"dmsd stopped but its caddy (pid {caddy}) still runs")
            try:
                os.kill(caddy, signal.SIGKILL)
            except OSError:
                pass
        subprocess.run([self.exec_bin, "-i", self.executor_id, "--state-dir", os.path.join(self.data_dir, "exec"),
                        "--plugin-dir", self.plugin_dir, "cleanup"], capture_output=True, timeout=CLEANUP_TIMEOUT_S)
        label = f"label=io.dms.executor={self.executor_id}"
        left = {
            "container": engine.docker("ps", "-aq", "--filter", label).split(),
            "image": sorted(set(engine.docker("images", "-q", "--filter", label).split())),
            "volume": engine.docker("volume", "ls", "-q", "--filter", label).split(),
            "network": engine.docker("network", "ls", "-q", "--filter", label).split(),
        }
        left = {k: v for k, v in left.items() if v}
        if left:
            problems.append(f"dmsd {self.executor_id} left {left}")
            for c in left.get("container", []):
                engine.docker("rm", "-f", c, check=False)
            for i in left.get("image", []):
                engine.docker("rmi", "-f", i, check=False)
            for v in left.get("volume", []):
                engine.docker("volume", "rm", v, check=False)
            for n in left.get("network", []):
                engine.docker("network", "rm", n, check=False)
        return problems


def _alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie is gone for our purposes
        return open(f"/proc/{pid}/stat").read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


class Loop:
    """A client requesting a droid through the proxy in a loop on a thread, a new connection per request;
    every answer is kept: (status, body) or (None, error)."""

    def __init__(self, dmsd, name):
        self.dmsd = dmsd
        self.name = name
        self.answers = []
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)
        self._t.start()

    def _run(self):
        while not self._stop.is_set():
            try:
                a = self.dmsd.via_proxy(self.name, timeout_s=10)
                self.answers.append((a.status, a.text.strip()))
            except (OSError, http.client.HTTPException) as e:
                self.answers.append((None, repr(e)))

    def stop(self):
        self._stop.set()
        self._t.join(20)
        return self.answers
