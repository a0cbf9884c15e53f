"""compose-app worker: every $WORKER_INTERVAL_S seconds (5), asks the api for a greeting by its service name
($API_URL, http://api:8080) and writes a heartbeat into the volume mounted at /data:

  /data/heartbeat.json  the last beat, replaced atomically: {"beats", "at", "message", "visits", "worker"}
  /data/beats.log       one line per beat, started afresh past BEATS_LOG_MAX_BYTES

compose starts it once the api is healthy (depends_on: condition: service_healthy). A failed call is logged and
retried at the next beat. SIGTERM ends it with exit 0 after the beat in progress.
"""

import json
import os
import signal
import socket
import sys
import threading
import time
import urllib.request

API_URL = os.environ.get("API_URL", "http://api:8080").rstrip("/")
DATA_DIR = os.environ.get("DATA_DIR", "/data")
INTERVAL_S = max(1, min(3600, int(os.environ.get("WORKER_INTERVAL_S") or 5)))
REQUEST_TIMEOUT_S = 5
RESPONSE_MAX_BYTES = 64 * 1024
BEATS_LOG_MAX_BYTES = 1024 * 1024

stopping = threading.Event()


def write_atomic(path, text):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def append_log(line):
    path = os.path.join(DATA_DIR, "beats.log")
    try:
        if os.path.getsize(path) > BEATS_LOG_MAX_BYTES:
            os.replace(path, path + ".1")
    except OSError:
        pass
    with open(path, "a") as f:
        f.write(line + "\n")


def beat(n):
    with urllib.request.urlopen(API_URL + "/api/hello", timeout=REQUEST_TIMEOUT_S) as res:
        hello = json.loads(res.read(RESPONSE_MAX_BYTES))
    at = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    record = {"beats": n, "at": at, "message": hello.get("message"), "visits": hello.get("visits"),
              "worker": socket.gethostname()}
    write_atomic(os.path.join(DATA_DIR, "heartbeat.json"), json.dumps(record) + "\n")
    append_log(json.dumps(record))
    print("worker: beat %d: %s (visit %s)" % (n, record["message"], record["visits"]), flush=True)


def main():
    signal.signal(signal.SIGTERM, lambda s, f: stopping.set())
    signal.signal(signal.SIGINT, lambda s, f: stopping.set())
    os.makedirs(DATA_DIR, exist_ok=True)
    print("worker: calling %s every %d s, writing %s" % (API_URL, INTERVAL_S, DATA_DIR), flush=True)
    n = 0
    while not stopping.is_set():
        try:
            beat(n + 1)
            n += 1
        except (OSError, ValueError) as e:
            print("worker: %s/api/hello: %s" % (API_URL, e), file=sys.stderr, flush=True)
        stopping.wait(INTERVAL_S)
    print("worker: stopped after %d beats" % n, flush=True)


if __name__ == "__main__":
    main()
