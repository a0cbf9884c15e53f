"""Steps of security_confine.feature: what the engine says of a droid's or a job's container (limits,
privileges, network), what a container can reach, and the privilege probe inside a droid's image."""
import os
import tempfile

from behave import given, then, when

from dmsfeat import engine
from dmsfeat.dmsd import user_network
from dmsfeat.dmsdsteps import call, containers, droid, droid_id, expect_status, host
from dmsfeat.probe import compile_probe
from dmsfeat.util import eventually

MB = 1024 * 1024
NANO_CPUS_PER_MILLI = 1000000
REACH_TIMEOUT_S = 3      # a connect to another user's container is dropped: wget gives up after this
REACH_SETTLE_S = 20      # a connect that must work, tried until then (the target may be starting)
NETWORK_GONE_TIMEOUT_S = 30


def the_container(context, name):
    running = containers(context, name, running_only=True)
    assert len(running) == 1, f"droid {name} has {len(running)} running containers: {running}"
    return engine.inspect("container", running[0])


def limits_of(row):
    return {k: int(row[k]) for k in ("memory_mb", "cpu_millis", "pids")}


@given('a git repository "{repo:Q}" holding the privilege probe, whose Dockerfile is')
def step_repo_probe(context, repo):
    with tempfile.TemporaryDirectory() as d:
        with open(compile_probe(os.path.join(d, "privprobe")), "rb") as f:
            probe = f.read()
    context.dmsd_repos.create(repo, {"Dockerfile": context.text, "privprobe": probe})


@then('the container of the droid "{name:Q}" has the limits')
def step_container_limits(context, name):
    want = limits_of(context.table[0])
    hc = the_container(context, name)["HostConfig"]
    got = {"memory_mb": hc["Memory"] // MB, "cpu_millis": hc["NanoCpus"] // NANO_CPUS_PER_MILLI,
           "pids": hc["PidsLimit"]}
    assert got == want, f"the engine has {got} for droid {name}'s container, not {want}"
    assert hc["MemorySwap"] == hc["Memory"], f"swap beyond the memory limit: {hc['MemorySwap']}"


@then('the droid "{name:Q}" shows the resources')
def step_shows_resources(context, name):
    want = limits_of(context.table[0])
    got = droid(context, name)["resources"]
    assert got == want, f"GET /droids/:id shows resources {got}, not {want}"


@then('inside the container of the droid "{name:Q}" the pids limit is {n:d}')
def step_pids_inside(context, name, n):
    cid = the_container(context, name)["Id"]
    out = engine.docker("exec", cid, "sh", "-c",
                        "cat /sys/fs/cgroup/pids/pids.max 2>/dev/null || cat /sys/fs/cgroup/pids.max").strip()
    assert out == str(n), f"the container's pids.max is {out!r}, not {n}"


@then('the container of the droid "{name:Q}" runs with no new privileges and only the capabilities "{caps:Q}"')
def step_container_privileges(context, name, caps):
    hc = the_container(context, name)["HostConfig"]
    assert "no-new-privileges" in (hc.get("SecurityOpt") or []), f"SecurityOpt is {hc.get('SecurityOpt')}"
    assert hc.get("CapDrop") == ["ALL"], f"CapDrop is {hc.get('CapDrop')}"
    want = sorted(caps.split(","))
    assert sorted(hc.get("CapAdd") or []) == want, f"CapAdd is {hc.get('CapAdd')}, not {want}"
    assert not hc.get("Privileged"), "the container is privileged"


@then('the container of the droid "{name:Q}" is on the network of {user:w} only')
def step_on_network(context, name, user):
    nets = sorted((the_container(context, name)["NetworkSettings"].get("Networks") or {}).keys())
    want = user_network(host(context).executor_id, user)
    assert nets == [want], f"droid {name}'s container is on {nets}, not [{want}]"
    labels = engine.inspect("network", want).get("Labels") or {}
    assert labels.get("io.dms.executor") == host(context).executor_id, f"network {want} has labels {labels}"


def address(context, name):
    nets = the_container(context, name)["NetworkSettings"]["Networks"]
    assert len(nets) == 1, f"droid {name} is on {sorted(nets)}"
    return next(iter(nets.values()))["IPAddress"]


def fetch_from(context, src, dst):
    """GET http://<dst's address>:8080/ from inside src's container (the engine's exec: a witness of our own)."""
    cid = the_container(context, src)["Id"]
    # timeout(1), not wget -T: this busybox's wget dies of SIGSEGV with -T (measured), which would look like
    # "unreachable" whatever the network does.
    return engine.docker("exec", cid, "timeout", str(REACH_TIMEOUT_S), "wget", "-q", "-O", "-",
                         f"http://{address(context, dst)}:8080/", check=False,
                         timeout_s=REACH_TIMEOUT_S + 10).strip()


@then('from the container of the droid "{src:Q}", the droid "{dst:Q}" answers "{text:Q}"')
def step_reaches(context, src, dst, text):
    def probe():
        got = fetch_from(context, src, dst)
        assert got == text, f"it answered {got!r}"
        return True
    eventually(probe, REACH_SETTLE_S, f"droid {dst} answers {text!r} from droid {src}'s container")


@then('from the container of the droid "{src:Q}", the droid "{dst:Q}" cannot be reached')
def step_unreachable(context, src, dst):
    got = fetch_from(context, src, dst)
    assert got == "", f"droid {src}'s container reached droid {dst}: {got!r}"


@then('the network of {user:w} is gone')
def step_network_gone(context, user):
    net = user_network(host(context).executor_id, user)
    def gone():
        assert not engine.exists("network", net), f"network {net} is still there"
        return True
    eventually(gone, NETWORK_GONE_TIMEOUT_S, f"network {net} of {user} is removed")


@then('the network of {user:w} is there')
def step_network_there(context, user):
    net = user_network(host(context).executor_id, user)
    assert engine.exists("network", net), f"network {net} of {user} is gone"


@when('{user:w} runs the job "{name:Q}" of the repository "{repo:Q}" that reports its confinement and tries the '
      'droid "{target:Q}"')
def step_confinement_job(context, user, name, repo, target):
    ip = address(context, target)
    command = ("grep -E '^(CapEff|NoNewPrivs)' /proc/self/status | tr -d '\\t '; "
               "echo memory limit $(cat /sys/fs/cgroup/memory/memory.limit_in_bytes 2>/dev/null "
               "|| cat /sys/fs/cgroup/memory.max); "
               "echo pids limit $(cat /sys/fs/cgroup/pids/pids.max 2>/dev/null || cat /sys/fs/cgroup/pids.max); "
               f"if timeout {REACH_TIMEOUT_S} bash -c 'echo > /dev/tcp/{ip}/8080' 2>/dev/null; "
               f"then echo droid {target} reached; else echo droid {target} unreachable; fi; "
               "mkdir -p dist && echo ok > dist/ok")
    body = {"project_id": f"p-{name}", "deployment_id": f"d-{name}", "project_branch": "main",
            "project_repo_url": context.dmsd_repos.path(repo), "project_build_command": command,
            "project_package_manager": "none", "project_dist_directory": "dist"}
    a = call(context, "POST", "/job/create", user, body=body)
    expect_status(a, 200)
    if not hasattr(context, "dmsd_jobs"):
        context.dmsd_jobs = {}
    context.dmsd_jobs[name] = (user, a.json["id"])
