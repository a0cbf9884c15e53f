#!/usr/bin/python3
"""The floor a wake is compared with: the same app container brought up without dms, N times, interleaved.

    bench/wake_floor.py N LABEL_EXECUTOR

Rows (each: from the first call to the app's own answer, "awake", on its published port):
  api-start    the raw Engine API starts an existing stopped container (what a wake would cost if it could
               start the old container again; the executor never runs an execution twice, so dmsd creates one)
  api-create   the raw Engine API creates and starts a new container (what a wake does: a new execution)
  api-net      the same on a user-defined bridge network, as a droid's is on dmsd's droid network (the
               like-for-like row: the engine's embedded DNS makes such a start some 30-100 ms dearer here)
  cli-run      `docker run -d` (the docker CLI's create + start), then the same wait for the answer
Containers run as a droid's do (tini as init, PORT=8080 published on 127.0.0.1) and carry io.dms.managed and
io.dms.executor=LABEL_EXECUTOR, so a crashed run is found by the label filter. Prints one JSON object.
"""
import http.client
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request

IMAGE = "dms-test/web:latest"
ENGINE = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
ANSWER_TIMEOUT_S = 10
POLL_S = 0.002


class UnixHTTP(http.client.HTTPConnection):
    def __init__(self, path):
        super().__init__("localhost")
        self.path = path

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(self.path)


def api(method, path, body=None):
    c = UnixHTTP(ENGINE[len("unix://"):])
    c.request(method, "/v1.41" + path, body=json.dumps(body) if body is not None else None,
              headers={"Content-Type": "application/json"})
    r = c.getresponse()
    data = r.read()
    c.close()
    if r.status >= 300:
        raise RuntimeError(f"{method} {path}: {r.status} {data[:200]!r}")
    return json.loads(data) if data else None


def spec(label, network=None):
    s = {"Image": IMAGE, "Env": ["PAGE=awake", "PORT=8080"], "Labels": {"io.dms.managed": "true",
            "io.dms.executor": label}, "ExposedPorts": {"8080/tcp": {}},
            "HostConfig": {"Init": True, "PortBindings": {"8080/tcp": [{"HostIp": "127.0.0.1", "HostPort": ""}]}}}
    if network:
        s["HostConfig"]["NetworkMode"] = network
    return s


def port_of(cid):
    ports = api("GET", f"/containers/{cid}/json")["NetworkSettings"]["Ports"]["8080/tcp"]
    return int(ports[0]["HostPort"])


def wait_answer(port):
    deadline = time.monotonic() + ANSWER_TIMEOUT_S
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2) as r:
                if r.read().strip() == b"awake":
                    return
        except OSError:
            pass
        time.sleep(POLL_S)
    raise RuntimeError(f"port {port} did not answer within {ANSWER_TIMEOUT_S} s")


def remove(cid):
    api("DELETE", f"/containers/{cid}?force=1&v=1")


def api_start(label):
    cid = api("POST", "/containers/create", spec(label))["Id"]
    api("POST", f"/containers/{cid}/start")
    wait_answer(port_of(cid))
    api("POST", f"/containers/{cid}/stop?t=3")
    try:
        t0 = time.monotonic()
        api("POST", f"/containers/{cid}/start")
        wait_answer(port_of(cid))  # the published port changes on every start
        return time.monotonic() - t0
    finally:
        remove(cid)


def api_create(label, network=None):
    t0 = time.monotonic()
    cid = api("POST", "/containers/create", spec(label, network))["Id"]
    try:
        api("POST", f"/containers/{cid}/start")
        wait_answer(port_of(cid))
        return time.monotonic() - t0
    finally:
        remove(cid)


def cli_run(label):
    t0 = time.monotonic()
    cid = subprocess.run(["docker", "run", "-d", "--init", "-e", "PAGE=awake", "-e", "PORT=8080",
                          "-p", "127.0.0.1::8080", "--label", "io.dms.managed=true",
                          "--label", f"io.dms.executor={label}", IMAGE],
                         check=True, capture_output=True, text=True).stdout.strip()
    try:
        wait_answer(port_of(cid))
        return time.monotonic() - t0
    finally:
        remove(cid)


def stats(xs):
    xs = sorted(x * 1000 for x in xs)
    pick = lambda p: xs[min(len(xs) - 1, int((len(xs) - 1) * p / 100 + 0.5))]
    return {"n": len(xs), "p50": round(pick(50), 1), "p90": round(pick(90), 1), "max": round(xs[-1], 1),
            "unit": "ms"}


def main():
    n, label = int(sys.argv[1]), sys.argv[2]
    net = f"{label}-net"
    api("POST", "/networks/create", {"Name": net, "Driver": "bridge", "CheckDuplicate": True,
                                     "Labels": {"io.dms.managed": "true", "io.dms.executor": label}})
    try:
        rows = {"api-start": (api_start, []), "api-create": (api_create, []),
                "api-net": (lambda lb: api_create(lb, net), []), "cli-run": (cli_run, [])}
        order = list(rows)
        for i in range(n):
            for name in order[i % len(order):] + order[:i % len(order)]:  # rotated each round
                fn, xs = rows[name]
                xs.append(fn(label))
    finally:
        api("DELETE", f"/networks/{net}")
    print(json.dumps({name: stats(xs) for name, (_, xs) in rows.items()}))


if __name__ == "__main__":
    main()
