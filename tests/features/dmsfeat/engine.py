"""The Docker engine as the suite sees it, through the docker CLI (the independent witness of what dms did)."""
import json
import subprocess

DOCKER_CALL_TIMEOUT_S = 30
# Resources the suite creates on purpose WITHOUT dms labels (cleanup must leave them alone) carry this label
# instead, so that the suite can still find and remove every one of them.
BYSTANDER_LABEL = "dms.features.bystander"

KINDS = ("container", "network", "volume")


def docker(*args, check=True, timeout_s=DOCKER_CALL_TIMEOUT_S):
    """Runs the docker CLI; returns stdout. Fails (AssertionError) on a non-zero exit when check is set."""
    p = subprocess.run(["docker", *args], stdin=subprocess.DEVNULL, capture_output=True, text=True,
                       timeout=timeout_s)
    if check and p.returncode != 0:
        raise AssertionError(f"docker {' '.join(args)} failed ({p.returncode}): {p.stderr.strip()}")
    return p.stdout


def reachable():
    """True if the engine answers (the docker CLI's own idea of the socket)."""
    try:
        p = subprocess.run(["docker", "version", "--format", "{{.Server.APIVersion}}"], stdin=subprocess.DEVNULL,
                           capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return p.returncode == 0 and p.stdout.strip() != ""


def _ls(kind, label_filter, fmt):
    if kind == "container":
        out = docker("ps", "-a", "--no-trunc", "--filter", f"label={label_filter}", "--format", fmt)
    else:
        out = docker(kind, "ls", "--filter", f"label={label_filter}", "--format", fmt)
    return [line for line in out.splitlines() if line.strip()]


def ids_with_label(kind, label_filter):
    """Ids (names for volumes) of the resources of one kind matching a label filter ("k=v" or "k")."""
    return _ls(kind, label_filter, "{{.Name}}" if kind == "volume" else "{{.ID}}")


def resources_with_label(label_filter):
    """{kind: [ids]} for containers, networks and volumes matching a label filter."""
    return {kind: ids_with_label(kind, label_filter) for kind in KINDS}


def managed_by_prefix(executor_prefix):
    """Every io.dms.managed resource whose io.dms.executor starts with executor_prefix: {kind: ["id executor"]}."""
    found = {}
    for kind in KINDS:
        key = "{{.Name}}" if kind == "volume" else "{{.ID}}"
        rows = _ls(kind, "io.dms.managed", key + ' {{.Label "io.dms.executor"}}')
        mine = [r for r in rows if len(r.split()) > 1 and r.split()[1].startswith(executor_prefix)]
        if mine:
            found[kind] = mine
    return found


def remove(kind, ident):
    """Removes one resource; returns an error string or None. Only called for resources the suite owns."""
    if kind == "container":
        args = ["rm", "-f", "-v", ident]
    else:
        args = [kind, "rm", ident]
    p = subprocess.run(["docker", *args], stdin=subprocess.DEVNULL, capture_output=True, text=True,
                       timeout=DOCKER_CALL_TIMEOUT_S)
    if p.returncode != 0 and "No such" not in p.stderr and "not found" not in p.stderr:
        return f"docker {' '.join(args)}: {p.stderr.strip()}"
    return None


def exists(kind, ident):
    args = ["inspect", "--type", kind, ident] if kind == "container" else [kind, "inspect", ident]
    p = subprocess.run(["docker", *args], stdin=subprocess.DEVNULL, capture_output=True, text=True,
                       timeout=DOCKER_CALL_TIMEOUT_S)
    return p.returncode == 0


def inspect(kind, ident):
    args = ["inspect", "--type", kind, ident] if kind == "container" else [kind, "inspect", ident]
    data = json.loads(docker(*args))
    return data[0]


def labels(kind, ident):
    d = inspect(kind, ident)
    if kind == "container":
        return d.get("Config", {}).get("Labels") or {}
    return d.get("Labels") or {}


def create(kind, name, label_pairs, image=None):
    """Creates a container (never started), network or volume with exactly the given labels; returns its id."""
    label_args = []
    for k, v in label_pairs.items():
        label_args += ["--label", f"{k}={v}"]
    if kind == "container":
        return docker("create", "--name", name, "--network", "none", *label_args, image, "true").strip()
    if kind == "network":
        return docker("network", "create", *label_args, name).strip()
    return docker("volume", "create", *label_args, name).strip()
