"""The README's first command, shortened (3 rounds at most): scripts/demo with the binaries of
this build — a broker, manta_manager run and three nodes (runc containers with the task image
when runc works here, else the process runtime) train the FedAvg example on Fashion-MNIST; the
table, the centralized baseline and the picture; with --keep, the dashboard it printed stays up
(signed in, the swarm is there) until Ctrl-C; and scripts/plot-results on the same store."""
import json
import os
import re
import shutil
import signal
import subprocess
import threading
import time
import urllib.request

from conftest import SOURCE_DIR


def _dashboard_look(out_lines, keep_line):
    """What a user does with --keep: sign in to the printed dashboard, see the swarm."""
    m = re.search(r"dashboard: (http://127\.0\.0\.1:\d+/) \(sign in as demo, password (\S+)\)",
                  keep_line)
    assert m, keep_line
    base, password = m.group(1), m.group(2)
    assert any(base in line and "sign in as demo" in line for line in out_lines[:-1]), out_lines
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor())
    req = urllib.request.Request(base + "api/login", json.dumps(
        {"user": "demo", "password": password}).encode(), {"Content-Type": "application/json"})
    deadline = time.monotonic() + 60
    while True:  # the kept manager has just started
        try:
            opener.open(req, timeout=10).read()
            break
        except OSError:
            assert time.monotonic() < deadline, "the kept dashboard did not answer"
            time.sleep(0.2)
    swarms = json.loads(opener.open(base + "api/swarms", timeout=10).read())["swarms"]
    assert len(swarms) == 1 and swarms[0]["status"] == "STOPPED", swarms
    series = json.loads(opener.open(
        f"{base}api/swarms/{swarms[0]['id']}/series?key=metrics.val_acc", timeout=10).read())
    assert len(series["nodes"]) == 3 and 1 <= len(series["mean"]) <= 3, series
    nodes = json.loads(opener.open(base + "api/nodes?history=0", timeout=10).read())["nodes"]
    assert sorted(n["alias"] for n in nodes) == ["node0", "node1", "node2"], nodes


def test_demo_short(node_bin, tmp_path):
    build = os.path.dirname(node_bin)
    assert os.path.exists(os.path.join(build, "manta_manager"))
    plot = tmp_path / "fedavg.png"
    proc = subprocess.Popen([str(SOURCE_DIR / "scripts" / "demo"), "--bin-dir", build, "--rounds",
                             "3", "--plot", str(plot), "--keep"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            stdin=subprocess.DEVNULL, start_new_session=True)
    timer = threading.Timer(1500, lambda: os.killpg(proc.pid, signal.SIGKILL))
    timer.start()
    lines = []
    try:
        for line in proc.stdout:
            lines.append(line)
            if "Ctrl-C stops everything" in line:
                _dashboard_look(lines, line)
                os.killpg(proc.pid, signal.SIGINT)
        proc.wait(timeout=120)
    finally:
        timer.cancel()
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    out = "".join(lines)
    kept = re.search(r"kept (/tmp/manta-demo\.\w+)", out)
    if kept:
        shutil.rmtree(kept.group(1), ignore_errors=True)
    assert any("Ctrl-C stops everything" in line for line in lines), out
    assert kept, out

    assert proc.returncode == 0, out
    assert "the swarm ended normally" in out, out
    assert "Fashion-MNIST, a iid partition for each of 3 nodes" in out, out
    assert re.search(r"node_0/mnist\.npz: 20000 train / 333[34] test", out), out
    rows = re.findall(r"^\s+(\d+)\s+3\s+(0\.\d+)\s+(0\.\d+)$", out, re.M)
    assert 1 <= len(rows) <= 3, out
    mean = [float(m) for _, m, _ in rows]
    worst = [float(w) for _, _, w in rows]
    assert all(w <= m for m, w in zip(mean, worst)), out
    # Learned from the real data: a softmax regression reaches about 0.83 on Fashion-MNIST.
    assert mean[-1] >= 0.80 and mean[-1] >= mean[0], out
    base = re.search(r"^centralized baseline: mean (0\.\d+), worst (0\.\d+) \(the same model "
                     r"trained on all 60000 training images together, (\d+) epoch", out, re.M)
    assert base, out
    assert int(base.group(3)) == len(rows)  # the same budget of epochs (one per round)
    assert abs(float(base.group(1)) - mean[-1]) < 0.05, out
    assert f"picture: {plot}" in out, out
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and plot.stat().st_size > 10000
    assert "sanitizer" not in out.lower() and "runtime error:" not in out, out


def test_plot_results_draws_any_numeric_result(tmp_path):
    """scripts/plot-results on a store of the manager's schema: numbers, lists (last element)
    and maps of them; the newest value of a node in a round; --key, --baseline, errors."""
    import sqlite3

    import msgpack
    store = tmp_path / "store.db"
    db = sqlite3.connect(store)
    db.executescript(
        "CREATE TABLE swarms (id TEXT PRIMARY KEY NOT NULL, name TEXT NOT NULL, status TEXT NOT NULL,"
        " detail TEXT NOT NULL, iteration INTEGER NOT NULL, created_ms INTEGER NOT NULL,"
        " updated_ms INTEGER NOT NULL);"
        "CREATE TABLE results (seq INTEGER PRIMARY KEY, swarm TEXT NOT NULL, tag TEXT NOT NULL,"
        " iteration INTEGER NOT NULL, node TEXT NOT NULL, task TEXT NOT NULL,"
        " created_ms INTEGER NOT NULL, data BLOB NOT NULL);")
    db.execute("INSERT INTO swarms VALUES ('ab12cd', 'demo', 'STOPPED', '', 2, 1, 2)")
    db.execute("INSERT INTO swarms VALUES ('ff00ee', 'old', 'STOPPED', '', 0, 0, 1)")
    for it in range(3):
        for node in ("n1", "n2"):
            for tag, v in (("metrics", {"val_acc": 0.5 + 0.1 * it, "val_loss": 1.0 / (it + 1),
                                        "name": "x"}),
                           ("loss", [3.0, 2.0 - it]), ("count", it), ("text", "no")):
                db.execute("INSERT INTO results (swarm, tag, iteration, node, task, created_ms, data)"
                           " VALUES ('ab12cd', ?, ?, ?, 't', 0, ?)",
                           (tag, it, node, msgpack.packb(v, use_bin_type=True)))
    db.commit()
    db.close()
    script = str(SOURCE_DIR / "scripts" / "plot-results")

    def run(*args):
        return subprocess.run([script, str(store), *args], capture_output=True, text=True,
                              timeout=120, cwd=tmp_path)
    for args in (["--key", "val_acc", "--baseline", "0.7", "--baseline-label", "central"], [],
                 ["--tag", "loss"], ["--tag", "count", "--swarm", "ab"]):
        out = tmp_path / f"p{len(args)}.png"
        p = run(*args, "--out", str(out))
        assert p.returncode == 0, p.stderr
        assert p.stdout.strip() == str(out) and out.read_bytes()[:4] == b"\x89PNG"
    p = run()  # default name: <swarm name>-<id prefix>-<tag>.png in the current folder
    assert p.returncode == 0 and (tmp_path / "demo-ab12cd-metrics.png").exists(), p.stderr
    p = run("--tag", "text")
    assert p.returncode == 1 and "no numeric 'text' result" in p.stderr
    p = run("--swarm", "zz")
    assert p.returncode != 0 and "no swarm matches 'zz'" in (p.stderr + p.stdout)
