"""Small helpers: polling with a deadline instead of fixed sleeps."""
import time

POLL_INTERVAL_S = 0.05


def eventually(probe, timeout_s, what, interval_s=POLL_INTERVAL_S):
    """Calls probe() until it returns a truthy value and returns that value; fails after timeout_s.

    what describes the awaited condition for the failure message; probe may raise AssertionError to explain
    its last failed attempt, which is then included."""
    deadline = time.monotonic() + timeout_s
    last = None
    while True:
        try:
            value = probe()
            if value:
                return value
        except AssertionError as e:
            last = e
        if time.monotonic() >= deadline:
            detail = f": {last}" if last else ""
            raise AssertionError(f"{what}: not true within {timeout_s:g} s{detail}")
        time.sleep(interval_s)
