"""Fake servers a scenario needs: things that are not Docker on a unix socket, a registry that stalls.

Each runs in a daemon thread of the behave process and is stopped by the scenario's teardown."""
import os
import socket
import threading

ACCEPT_POLL_S = 0.1
GARBAGE = b"\x00\x01\x02 this is not HTTP \xff\xfe\r\n\r\nnor JSON {{{\n"


class _Server:
    def __init__(self, sock):
        self.sock = sock
        self.sock.settimeout(ACCEPT_POLL_S)
        self.conns = []
        self.accepted = 0
        self.accepted_event = threading.Event()
        self.stopping = threading.Event()
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
            self.accepted_event.set()
            self.handle(c)

    def handle(self, conn):
        # Accept and never answer: hold the connection open until stop().
        self.conns.append(conn)

    def stop(self):
        self.stopping.set()
        self.thread.join(timeout=2)
        for c in self.conns:
            try:
                c.close()
            except OSError:
                pass
        self.sock.close()


class SilentUnixServer(_Server):
    """A unix socket that accepts connections and never says a word."""

    def __init__(self, path):
        self.path = path
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.bind(path)
        s.listen(64)
        super().__init__(s)

    def stop(self):
        super().stop()
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass


class GarbageUnixServer(SilentUnixServer):
    """A unix socket that answers every connection with bytes that are neither HTTP nor JSON, then hangs up."""

    def handle(self, conn):
        try:
            conn.settimeout(1)
            conn.recv(4096)
            conn.sendall(GARBAGE)
        except OSError:
            pass
        finally:
            conn.close()


class StallingRegistry(_Server):
    """A TCP server on 127.0.0.1 that accepts and never answers: a registry whose pull hangs.

    dockerd treats 127.0.0.0/8 registries as insecure (plain HTTP), so a pull from 127.0.0.1:<port>/x connects here
    and waits for headers until its own client timeout or until the pull is cancelled."""

    def __init__(self):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.bind(("127.0.0.1", 0))
        s.listen(64)
        self.port = s.getsockname()[1]
        super().__init__(s)
