"""Steps of security_data.feature: the modes of what dmsd keeps, Caddy's environment, the data dir of an older
dmsd (retention and paging: security_retain.py)."""
import http.client
import os
import secrets
import stat
import subprocess
import tempfile
import urllib.parse

from behave import given, step, then, when

from dmsfeat.dmsdsteps import droid, droid_id, expect_status, host, run_logs, wait_for
from dmsfeat.util import eventually
import dmsfeat.steputil  # noqa: F401 - registers the Q type

FIRST_BUILD_TIMEOUT_S = 60
LOG_TIMEOUT_S = 15
PROXY_TIMEOUT_S = 15
REFUSE_TIMEOUT_S = 10
READ_CAP_BYTES = 64 * 1024 * 1024  # a file bigger than this is read in part (none is, in a scenario)
TOP_DIRS = ("droids", "exec", "caddy")
CHECKOUT = "src"  # droids/<id>/src: the repository's checkout, the build context


def secret(context):
    s = getattr(context, "data_secret", None)
    assert s, "no droid with a secret in this scenario"
    return s


@given('{user:w} has a running droid "{name:Q}" from the repository "{repo:Q}" with a secret {var:w} in its env')
def step_droid_with_secret(context, user, name, repo, var):
    context.data_secret = "tok-" + secrets.token_hex(16)
    body = {"name": name, "repo": context.dmsd_repos.path(repo), "env": {var: context.data_secret}}
    a = host(context).request("POST", "/droids", user, body=body)
    expect_status(a, 201)
    context.dmsd_droids[name] = a.json["id"]
    host(context).add_droid(a.json["id"])
    wait_for(context, name, "running", FIRST_BUILD_TIMEOUT_S, user)


@when('the logs of the droid "{name:Q}" show its secret')
def step_logs_show_secret(context, name):
    eventually(lambda: secret(context) in run_logs(context, name).text, LOG_TIMEOUT_S,
               f"the logs of {name} hold the secret")


def walk(root):
    """(path, lstat) of everything under root, root included; never follows a symlink."""
    out = [(root, os.lstat(root))]
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        for n in dirnames + filenames:
            p = os.path.join(dirpath, n)
            out.append((p, os.lstat(p)))
    return out


def holds(path, needle):
    with open(path, "rb") as f:
        return needle in f.read(READ_CAP_BYTES)


def in_checkout(data_dir, path):
    """True for droids/<id>/src and everything in it."""
    parts = os.path.relpath(path, data_dir).split(os.sep)
    return len(parts) > 2 and parts[0] == "droids" and parts[2] == CHECKOUT


@then("every file under dmsd's data dir is 0600, but for the droid's checkout, and at least {n:d} hold the secret")
def step_files_private(context, n):
    needle = secret(context).encode()
    data_dir = host(context).data_dir
    found, loose = [], []
    for p, st in walk(data_dir):
        rel, mode = os.path.relpath(p, data_dir), stat.S_IMODE(st.st_mode)
        if stat.S_ISREG(st.st_mode) and holds(p, needle):
            found.append(rel)
        if in_checkout(data_dir, p) or stat.S_ISDIR(st.st_mode):
            continue
        if stat.S_ISSOCK(st.st_mode):
            # Caddy's admin socket: connecting needs write permission, and its directory is 0700 anyway.
            if mode & 0o022:
                loose.append(f"{rel} (socket {mode:o})")
        elif not stat.S_ISREG(st.st_mode) or mode != 0o600:
            loose.append(f"{rel} ({stat.filemode(st.st_mode)})")
    assert not loose, f"files that are not 0600: {', '.join(loose)}"
    assert len(found) >= n, f"only {found} hold the secret: the walk looked in the wrong place"


@then("every directory under dmsd's data dir is 0700, but for the droid's checkout that keeps git's modes")
def step_dirs_private(context):
    data_dir = host(context).data_dir
    loose, checked = [], 0
    for p, st in walk(data_dir):
        # A checkout (droids/<id>/src) keeps the repository's modes (they become the image's files); the droid's
        # directory that holds it is checked like every other.
        if not stat.S_ISDIR(st.st_mode) or in_checkout(data_dir, p):
            continue
        checked += 1
        if stat.S_IMODE(st.st_mode) != 0o700:
            loose.append(f"{os.path.relpath(p, data_dir)} ({stat.S_IMODE(st.st_mode):o})")
    assert not loose, f"directories that are not 0700: {', '.join(loose)}"
    assert checked >= 5, f"only {checked} directories were checked: the walk looked in the wrong place"


@then("dmsd's log holds neither the droid's secret nor the JWT secret")
def step_log_clean(context):
    with open(host(context).log_path, "rb") as f:
        log = f.read()
    assert b"op=start" in log, "dmsd's log is not the one of this scenario (info level expected)"
    for what, value in (("the droid's secret", secret(context)), ("DMS_JWT_SECRET", host(context).secret)):
        assert value.encode() not in log, f"dmsd's log holds {what}"


def proxy_get(context, name):
    url = droid(context, name).get("route_url")
    assert url, f"droid {name} has no route_url"
    u = urllib.parse.urlsplit(url)
    conn = http.client.HTTPConnection("127.0.0.1", u.port, timeout=5)
    try:
        conn.request("GET", "/", headers={"Host": u.netloc})
        r = conn.getresponse()
        return r.status, r.read()
    finally:
        conn.close()


@step('the droid "{name:Q}" answers through the proxy')
def step_answers_proxy(context, name):
    def probe():
        status, body = proxy_get(context, name)
        assert status == 200, f"the proxy answered {status}: {body[:200]!r}"
        return True
    eventually(probe, PROXY_TIMEOUT_S, f"droid {name} answers 200 through Caddy")


def caddy_pid(context):
    with open(os.path.join(host(context).data_dir, "caddy", "caddy.pid")) as f:
        pid = int(f.read().strip())
    exe = os.path.basename(os.readlink(f"/proc/{pid}/exe"))
    assert exe.startswith("caddy"), f"pid {pid} from caddy.pid runs {exe}, not caddy"
    return pid


@then("Caddy's environment holds neither dmsd's JWT secret nor any DMS_ setting")
def step_caddy_env(context):
    pid = caddy_pid(context)
    with open(f"/proc/{pid}/environ", "rb") as f:
        raw = f.read()
    names = [kv.split(b"=", 1)[0].decode() for kv in raw.split(b"\0") if kv]
    assert host(context).secret.encode() not in raw, "Caddy's environment holds DMS_JWT_SECRET's value"
    dms = [n for n in names if n.startswith("DMS_")]
    assert not dms, f"Caddy's environment holds {dms}"
    assert "PATH" in names and "HOME" in names, f"Caddy's environment: {names}"
    # dmsd's own environment does hold them: the check above looks at the right thing.
    with open(f"/proc/{host(context).pid}/environ", "rb") as f:
        assert host(context).secret.encode() in f.read()


@then("Caddy holds no file of dmsd's open")
def step_caddy_fds(context):
    pid = caddy_pid(context)
    data_dir = host(context).data_dir
    ours = {os.path.join(data_dir, n) for n in ("dms.db", "dms.db-wal", "dms.db-shm", "dmsd.lock")}
    fd_dir = f"/proc/{pid}/fd"
    held = set()
    for fd in os.listdir(fd_dir):
        try:
            held.add(os.readlink(os.path.join(fd_dir, fd)))
        except OSError:
            pass
    leaked = sorted(held & ours)
    assert not leaked, f"Caddy holds dmsd's {leaked} open"
    dmsd_fds = {os.readlink(os.path.join(f"/proc/{host(context).pid}/fd", fd))
                for fd in os.listdir(f"/proc/{host(context).pid}/fd")}
    assert os.path.join(data_dir, "dmsd.lock") in dmsd_fds, "dmsd itself should hold its lock (the check's premise)"


@when("dmsd is stopped")
def step_dmsd_stopped(context):
    problem = host(context).stop()
    assert not problem, problem


def top_dirs(context):
    d = host(context).data_dir
    return [d] + [os.path.join(d, n) for n in TOP_DIRS if os.path.isdir(os.path.join(d, n))]


@when("dmsd's data dir and its top directories are made 0755, as an older dmsd left them")
def step_make_open(context):
    dirs = top_dirs(context)
    assert len(dirs) == 1 + len(TOP_DIRS), f"expected the data dir and {TOP_DIRS}: {dirs}"
    for p in dirs:
        os.chmod(p, 0o755)
    context.data_log_mark = os.path.getsize(host(context).log_path)


@then("dmsd's data dir and its top directories are 0700")
def step_top_private(context):
    loose = [f"{p} ({stat.S_IMODE(os.lstat(p).st_mode):o})" for p in top_dirs(context)
             if stat.S_IMODE(os.lstat(p).st_mode) != 0o700]
    assert not loose, f"still open: {loose}"


@then("dmsd's log says it made its data dir private")
def step_log_says(context):
    with open(host(context).log_path, errors="replace") as f:
        f.seek(context.data_log_mark)
        text = f.read()
    want = f"op=data-dir path={host(context).data_dir} was=0755 now=0700"
    assert want in text, f"dmsd's log does not say {want!r}:\n{text[-3000:]}"


@when("dmsd is started on a data dir of mode 1777, like /tmp")
def step_start_shared(context):
    d = tempfile.mkdtemp(prefix="shared-", dir=host(context).dir)
    os.chmod(d, 0o1777)
    context.data_shared = d
    env = {k: v for k, v in os.environ.items() if not k.startswith("DMS_")}
    env.update({"DMS_JWT_SECRET": host(context).secret, "DMS_DATA_DIR": d, "DMS_LISTEN": "127.0.0.1:0",
                "DMS_PROXY_LISTEN": "off", "DMS_EXECUTOR_ID": host(context).executor_id + "-x",
                "DMS_PLUGIN_DIR": host(context).plugin_dir})
    context.data_refused = subprocess.run([host(context).bin], stdin=subprocess.DEVNULL, capture_output=True,
                                          text=True, env=env, timeout=REFUSE_TIMEOUT_S)


@then("it exits at once saying the data dir is shared, naming DMS_DATA_DIR")
def step_refused(context):
    p = context.data_refused
    assert p.returncode != 0, f"dmsd started on a shared data dir: {p.stderr}"
    assert "is shared (mode 1777)" in p.stderr and context.data_shared in p.stderr, p.stderr


@then("that data dir is still 1777 and empty")
def step_shared_untouched(context):
    st = os.lstat(context.data_shared)
    assert stat.S_IMODE(st.st_mode) == 0o1777, f"mode {stat.S_IMODE(st.st_mode):o}"
    assert os.listdir(context.data_shared) == [], os.listdir(context.data_shared)
