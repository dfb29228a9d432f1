"""The README's first command, shortened (3 rounds at most): scripts/demo with the binaries of
this build — a broker, manta_manager run and three nodes (runc containers with the task image
when runc works here, else the process runtime) train the FedAvg example."""
import os
import re
import subprocess

from conftest import SOURCE_DIR


def test_demo_short(node_bin):
    build = os.path.dirname(node_bin)
    assert os.path.exists(os.path.join(build, "manta_manager"))
    p = subprocess.run([str(SOURCE_DIR / "scripts" / "demo"), "--bin-dir", build, "--rounds", "3"],
                       capture_output=True, text=True, timeout=1500)
    out = p.stdout + p.stderr
    assert p.returncode == 0, out
    assert "the swarm ended normally" in out, out
    rows = re.findall(r"^\s+(\d+)\s+3\s+(0\.\d+)$", p.stdout, re.M)
    assert 1 <= len(rows) <= 3, out
    accs = [float(a) for _, a in rows]
    assert accs[-1] > accs[0] and accs[-1] >= 0.85, out
    assert "sanitizer" not in out.lower() and "runtime error:" not in out, out
