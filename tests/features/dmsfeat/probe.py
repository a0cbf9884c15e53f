"""The privilege probe (probes/privprobe.c): compiled statically once per scenario that needs it, so the same
binary runs on the host and in any image."""
import os
import subprocess

PROBE_SOURCE = os.path.join(os.path.dirname(__file__), "..", "probes", "privprobe.c")
COMPILE_TIMEOUT_S = 60


def compile_probe(path):
    """Builds the probe at path (mode 0755); fails the step with the compiler's words if it cannot."""
    p = subprocess.run(["cc", "-static", "-Os", "-o", path, PROBE_SOURCE], capture_output=True, text=True,
                       timeout=COMPILE_TIMEOUT_S)
    assert p.returncode == 0, f"cc -static privprobe.c failed: {p.stderr}"
    os.chmod(path, 0o755)
    return path
