"""Helpers the dmsd step modules share (kept out of steps/, like steputil.py: behave would register a step
module imported by another twice).

Step text may name things by placeholder, replaced here: <droid NAME> is the id of the droid the scenario knows
as NAME, <repo NAME> the path of the scenario's git repository NAME."""
import json
import re
import time
import urllib.error
import urllib.request

from dmsfeat import dmsd as dmsdmod
from dmsfeat.util import eventually

STATUS_POLL_INTERVAL_S = 0.2
SERVE_TIMEOUT_S = 10
PAGE_FETCH_TIMEOUT_S = 2
PLACEHOLDER = re.compile(r"<(droid|repo) ([a-z0-9-]+)>")


def host(context):
    """The scenario's dmsd (started by a step); fails clearly in a scenario without the @dmsd tag."""
    d = getattr(context, "dmsd_host", None)
    assert d is not None, "this step needs the @dmsd tag on its feature or scenario"
    assert d.port, "dmsd has not been started: begin with 'Given dmsd is running'"
    return d


def droid_id(context, name):
    ids = context.dmsd_droids
    assert name in ids, f"the scenario knows no droid {name!r} (known: {', '.join(sorted(ids)) or 'none'})"
    return ids[name]


def expand(context, text):
    def one(m):
        kind, name = m.group(1), m.group(2)
        if kind == "droid":
            return droid_id(context, name)
        return context.dmsd_repos.path(name)
    return PLACEHOLDER.sub(one, text)


def call(context, method, path, user, body=None, **kw):
    """A request whose answer becomes the scenario's last answer."""
    a = host(context).request(method, expand(context, path), user, body=body, **kw)
    context.dmsd_answer = a
    return a


def answer(context):
    a = getattr(context, "dmsd_answer", None)
    assert a is not None, "no request was made yet"
    return a


def expect_status(a, status):
    assert a.status == status, f"expected {status}, got: {a.describe()}"


def droid(context, name, user="alice"):
    """The droid as GET /droids/:id shows it to its owner."""
    a = host(context).request("GET", f"/droids/{droid_id(context, name)}", user)
    expect_status(a, 200)
    return a.json


def status(context, name, user="alice"):
    a = host(context).request("GET", f"/droids/{droid_id(context, name)}/status", user)
    expect_status(a, 200)
    return a.json


def wait_for(context, name, want, timeout_s, user="alice", extra=None):
    """Polls the status route until the droid is in state want (and extra(status) holds); returns the status.

    A droid that lands in failed while something else is awaited fails at once, with its reason."""
    last = {}

    def probe():
        host(context).check_alive()
        s = status(context, name, user)
        last["s"] = s
        if s["status"] == "failed" and want != "failed":
            raise _Abort(f"droid {name} failed: {s.get('reason')}")
        if s["status"] != want:
            raise AssertionError(f"it is {s['status']} ({s.get('reason')})")
        if extra is not None:
            extra(s)
        return s
    try:
        return eventually(probe, timeout_s, f"droid {name} is {want}", interval_s=STATUS_POLL_INTERVAL_S)
    except _Abort as e:
        raise AssertionError(str(e)) from None


class _Abort(Exception):
    """Stops a poll at once (eventually() retries only AssertionError)."""


def events(context, name, user="alice", query=""):
    a = host(context).request("GET", f"/droids/{droid_id(context, name)}/events{query}", user)
    expect_status(a, 200)
    return a.json


def builds(context, name, user="alice"):
    a = host(context).request("GET", f"/droids/{droid_id(context, name)}/builds", user)
    expect_status(a, 200)
    return a.json


def releases(context, name, user="alice"):
    a = host(context).request("GET", f"/droids/{droid_id(context, name)}/releases", user)
    expect_status(a, 200)
    return a.json


def fetch_page(url):
    """The droid's page, fetched straight from its published port (None when nothing answers)."""
    try:
        with urllib.request.urlopen(url, timeout=PAGE_FETCH_TIMEOUT_S) as r:
            return r.read().decode("utf-8", "replace").strip()
    except (OSError, urllib.error.URLError):
        return None


def serves(context, name, text, timeout_s=SERVE_TIMEOUT_S):
    def probe():
        d = droid(context, name)
        assert d.get("url"), f"droid {name} has no url: {d}"
        page = fetch_page(d["url"])
        assert page == text, f"{d['url']} answered {page!r}"
        return True
    eventually(probe, timeout_s, f"droid {name} serves {text!r}", interval_s=STATUS_POLL_INTERVAL_S)


def containers(context, name, running_only=False):
    return dmsdmod.containers_of(host(context).executor_id, droid_id(context, name), running_only)


def run_logs(context, name, query="", user="alice"):
    a = host(context).request("GET", f"/droids/{droid_id(context, name)}/logs{query}", user)
    expect_status(a, 200)
    return a


def parse_body(context, text):
    """A request body from step text: JSON after placeholders are replaced (or the raw text if it is not)."""
    text = expand(context, text.strip())
    try:
        return json.loads(text)
    except ValueError:
        return text


def now():
    return time.monotonic()
