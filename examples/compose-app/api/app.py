"""compose-app api: JSON under /api/ and the frontend's static files, with the standard library only.

  GET /api/hello   {"message": $GREETING, "visits": N, "host": <container>}   (N counts calls since start)
  GET /api/worker  the worker's last heartbeat from the volume (/data/heartbeat.json), or 503 before the first
  GET /healthz     {"ok": true}: the compose health check
  GET /<file>      the static files built from frontend/ into $STATIC_DIR (index.html for /)

Listens on $PORT (8080 when unset). Every request is logged to stderr. SIGTERM stops accepting, lets the
requests in flight finish and exits 0, so a redeploy that drains the old container loses nothing.
"""

import json
import mimetypes
import os
import signal
import socket
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

PORT = int(os.environ.get("PORT") or 8080)
STATIC_DIR = os.path.realpath(os.environ.get("STATIC_DIR", "/app/static"))
DATA_DIR = os.environ.get("DATA_DIR", "/data")
GREETING = os.environ.get("GREETING") or "hello from compose-app"
HEARTBEAT_MAX_BYTES = 64 * 1024  # the worker writes a few hundred bytes; never read more

visits = 0
visits_lock = threading.Lock()


class Handler(BaseHTTPRequestHandler):
    server_version = "compose-app"
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        path = self.path.split("?", 1)[0]
        if path == "/healthz":
            self.send_json(200, {"ok": True})
        elif path == "/api/hello":
            global visits
            with visits_lock:
                visits += 1
                n = visits
            self.send_json(200, {"message": GREETING, "visits": n, "host": socket.gethostname()})
        elif path == "/api/worker":
            self.send_heartbeat()
        elif path.startswith("/api/"):
            self.send_json(404, {"error": "no such endpoint: " + path})
        else:
            self.send_static(path)

    def do_HEAD(self):
        self.do_GET()

    def send_json(self, code, obj):
        self.send_body(code, "application/json", (json.dumps(obj) + "\n").encode())

    def send_body(self, code, ctype, body):
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-cache")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def send_heartbeat(self):
        try:
            with open(os.path.join(DATA_DIR, "heartbeat.json"), "rb") as f:
                beat = json.loads(f.read(HEARTBEAT_MAX_BYTES))
        except (OSError, ValueError):
            self.send_json(503, {"error": "no heartbeat from the worker yet"})
            return
        self.send_json(200, beat)

    def send_static(self, path):
        rel = "index.html" if path in ("", "/") else path.lstrip("/")
        # Resolved and checked to stay inside STATIC_DIR: "..", symlinks and encoded tricks serve nothing.
        full = os.path.realpath(os.path.join(STATIC_DIR, rel))
        if not full.startswith(STATIC_DIR + os.sep) or not os.path.isfile(full):
            self.send_json(404, {"error": "not found: " + path})
            return
        ctype = mimetypes.guess_type(full)[0] or "application/octet-stream"
        with open(full, "rb") as f:
            self.send_body(200, ctype, f.read())

    def log_request(self, code="-", size="-"):
        # The health check calls every 2 s: its successes would drown the log.
        if self.path == "/healthz" and code == 200:
            return
        super().log_request(code, size)

    def log_message(self, fmt, *args):
        sys.stderr.write("api: %s %s\n" % (self.address_string(), fmt % args))


def main():
    server = ThreadingHTTPServer(("", PORT), Handler)
    server.daemon_threads = False  # server_close() joins the requests in flight

    def stop(signum, frame):
        # shutdown() waits for serve_forever() to return, so it cannot run on the thread that serves.
        threading.Thread(target=server.shutdown).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    print("api: listening on port %d, static files from %s" % (PORT, STATIC_DIR), file=sys.stderr, flush=True)
    server.serve_forever()
    server.server_close()
    print("api: stopped", file=sys.stderr, flush=True)


if __name__ == "__main__":
    main()
