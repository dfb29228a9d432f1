"""manta_manager end to end with real nodes (process runtime, the python/ task runtime): the
FedAvg example converges; `any`+`fixed` keeps its node across iterations; ScheduleTask runs a
subset; StopSwarm ends the swarm; a node killed mid-swarm; a refused token."""
import json
import subprocess
import sys
import time
import tomllib

import pytest

from conftest import SOURCE_DIR, Node
from manager_env import LocalSwarm, module_dir
from wire_env import RunningNode, node_config, wait_for

PY = "/usr/bin/python3"


@pytest.fixture
def data3(tmp_path):
    out = tmp_path / "data"
    subprocess.run([PY, str(SOURCE_DIR / "examples/prepare_data.py"), "--nodes", "3",
                    "--out", str(out)], check=True, capture_output=True, timeout=300)
    return [{"mnist": str(out / f"node_{i}" / "mnist.npz")} for i in range(3)]


def results(sw, swarm, tag=None):
    args = ["results", swarm] + (["--tag", tag] if tag else [])
    return sw.admin_json(*args)["results"]


def swarm_id(out):
    for line in out.splitlines():
        if line.startswith("swarm ") and (" STOPPED " in line or " COMPLETED " in line
                                          or " FAILED " in line):
            return line.split()[1]
    raise AssertionError(out)


def test_fedavg_converges(tmp_path, node_bin, data3):
    sw = LocalSwarm(tmp_path, node_bin, nodes=3, datasets=data3)
    try:
        sw.start_run(SOURCE_DIR / "examples/fedavg/swarm.toml", "--timeout", "400")
        sw.start_nodes()
        rc, out = sw.wait(timeout=450)
        assert rc == 0, out
        assert "STOPPED" in out and "stopped by task 'scheduler'" in out, out
        # The scheduler stopped the swarm because every node crossed the threshold, within
        # the round limit of swarm.toml.
        import sqlite3
        import msgpack
        db = sqlite3.connect(str(sw.store))
        rows = db.execute("SELECT iteration, data FROM results WHERE tag = 'metrics'").fetchall()
        assert rows, out
        last = max(r[0] for r in rows)
        accs = [msgpack.unpackb(d, raw=False)["val_acc"] for it, d in rows if it == last]
        with open(SOURCE_DIR / "examples/fedavg/swarm.toml", "rb") as f:
            threshold = tomllib.load(f)["globals"]["hyperparameters"]["val_acc_threshold"]
        assert len(accs) == 3 and min(accs) >= threshold, (accs, out)
        assert last < 10, out
        first = [msgpack.unpackb(d, raw=False)["val_acc"] for it, d in rows if it == 0]
        print("val_acc first round", first, "last round", last, accs)
    finally:
        sw.close()


SCHED_GRAPH = {
    "ping.py": (
        "from manta.light.task import Task\n"
        "class Ping(Task):\n"
        "    def run(self):\n"
        "        self.world.results.add('ping', 1)\n"
        "def main():\n    Ping().run()\n"),
    "boss.py": (
        "from manta.light.task import Task\n"
        "class Boss(Task):\n"
        "    def run(self):\n"
        "        pings = self.world.results.select('ping')\n"
        "        self.world.results.add('seen', sorted(pings))\n"
        "        r = self.world.globals['round'] + 1\n"
        "        self.world.globals['round'] = r\n"
        "        if r >= 3:\n"
        "            self.world.stop_swarm()\n"
        "            return\n"
        "        self.world.schedule_next_iter(node_ids=sorted(pings)[:1],\n"
        "                                      task_to_schedule_alias='ping')\n"
        "def main():\n    Boss().run()\n"),
}

SCHED_SWARM = """
name = "loop"
[globals]
round = 0
[[tasks]]
module = "ping.py"
image = "none"
method = "all"
[[tasks]]
module = "boss.py"
image = "none"
method = "any"
fixed = true
maximum = 1
after = ["ping"]
"""


def test_schedule_subset_fixed_and_stop(tmp_path, node_bin):
    d = module_dir(tmp_path, SCHED_GRAPH)
    (d / "swarm.toml").write_text(SCHED_SWARM)
    sw = LocalSwarm(tmp_path, node_bin, nodes=3)
    try:
        sw.start_run(d / "swarm.toml", "--timeout", "200")
        sw.start_nodes()
        rc, out = sw.wait(timeout=250)
        assert rc == 0, out
        sid = swarm_id(out)
        seen = results(sw, sid, "seen")
        assert [r["iteration"] for r in seen] == [0, 1, 2], seen
        # any + fixed: the same node ran boss in every iteration
        assert len({r["node"] for r in seen}) == 1, seen
        pings = results(sw, sid, "ping")
        by_it = {}
        for r in pings:
            by_it.setdefault(r["iteration"], set()).add(r["node"])
        assert len(by_it[0]) == 3, by_it
        # ScheduleTask to a subset: iterations 1 and 2 ran ping on exactly one node
        assert len(by_it[1]) == 1 and len(by_it[2]) == 1, by_it
        assert by_it[1] == by_it[2] and by_it[1] <= by_it[0], by_it
        # StopSwarm ended it
        st = sw.admin("status", sid).stdout
        assert "STOPPED" in st and "boss" in st, st
    finally:
        sw.close()


SLOW = {
    "slow.py": (
        "import time\n"
        "from manta.light.task import Task\n"
        "def main():\n    time.sleep(600)\n"),
}


def test_node_killed_mid_swarm(tmp_path, node_bin):
    d = module_dir(tmp_path, SLOW)
    (d / "swarm.toml").write_text(
        'name = "slow"\n[[tasks]]\nmodule = "slow.py"\nimage = "none"\nmethod = "all"\n')
    sw = LocalSwarm(tmp_path, node_bin, nodes=2)
    try:
        sw.start_run(d / "swarm.toml", "--timeout", "120")
        sw.start_nodes()
        wait_for(lambda: sw.admin_sock.exists(), timeout=30)

        def running():
            assert sw.proc.poll() is None, sw.proc.communicate()[0]
            return sum(n["running"] for n in sw.admin_json("nodes")["nodes"]) == 2
        wait_for(running, timeout=60, what="two running instances")
        for r in sw.running:
            r.kill()
        t0 = time.monotonic()
        rc, out = sw.wait(timeout=90)
        assert rc == 1, out
        assert "was lost while running slow" in out, out
        assert "FAILED" in out, out
        assert time.monotonic() - t0 < 30, out  # the last will, not the 30 s silence
    finally:
        sw.close()


def test_refused_token(tmp_path, node_bin):
    sw = LocalSwarm(tmp_path, node_bin, nodes=1)
    try:
        sw.start_serve()
        bad = Node(node_bin, tmp_path / "intruder")
        bad.home.mkdir()
        # signed with another secret
        other = subprocess.run([sw.mgr, "token", "create", "--node", "x"], capture_output=True,
                               text=True, env={**sw.env, "MANTA_HOME": str(tmp_path / "other")},
                               check=True).stdout.strip()
        bad.write_config("default", node_config(other, sw.port, alias="intruder"))
        p = bad.run("start", timeout=60)
        assert p.returncode != 0
        assert "token" in (p.stdout + p.stderr).lower(), p.stdout + p.stderr
        assert sw.admin_json("nodes")["nodes"] == []
        # and a good one is accepted
        sw.start_nodes()
        wait_for(lambda: len(sw.admin_json("nodes")["nodes"]) == 1, timeout=30)
    finally:
        sw.close()


def test_failing_task_fails_the_swarm(tmp_path, node_bin):
    d = module_dir(tmp_path, {"bad.py": "def main():\n    raise SystemExit('bad things')\n",
                              "after.py": "def main():\n    pass\n"})
    (d / "swarm.toml").write_text(
        'name = "bad"\n[[tasks]]\nmodule = "bad.py"\nimage = "none"\nmethod = "all"\n'
        '[[tasks]]\nmodule = "after.py"\nimage = "none"\nmethod = "any"\nafter = ["bad"]\n')
    sw = LocalSwarm(tmp_path, node_bin, nodes=1)
    try:
        sw.start_run(d / "swarm.toml", "--timeout", "60")
        sw.start_nodes()
        rc, out = sw.wait(timeout=90)
        assert rc == 1, out
        assert "task 'bad' failed on node" in out, out
        assert "after deployed" not in out, out
        sid = swarm_id(out)
        logs = sw.admin("logs", sid).stdout
        assert "bad things" in logs, logs
    finally:
        sw.close()


from test_node_tls import pki  # noqa: E402,F401  (the fixture: a CA, server and client certs)


def test_tls_and_mutual_tls(tmp_path, node_bin, pki):
    # (appended inside [mqtt]: the broker stays plaintext) then the manager's TLS
    sec = (f'use_tls = false\n[security]\nuse_tls = true\nca_file = "{pki}/ca.crt"\nserver_name = "localhost"\n'
           f'cert_file = "{pki}/client.crt"\nkey_file = "{pki}/client.key"\n')
    sw = LocalSwarm(tmp_path, node_bin, nodes=1, node_extra=sec)
    try:
        sw.start_serve("--config", str(_tls_config(tmp_path, pki, client_ca=True)))
        sw.start_nodes()
        wait_for(lambda: len(sw.admin_json("nodes")["nodes"]) == 1, timeout=30,
                 what="the node registered over mutual TLS")
        # a node without a client certificate is refused by the handshake
        bad = Node(node_bin, tmp_path / "nocert")
        bad.home.mkdir()
        token = sw.manager("token", "create", "--node", "nocert").stdout.strip()
        bad.write_config("default", node_config(token, sw.port, alias="nocert", extra=(
            f'use_tls = false\n[security]\nuse_tls = true\nca_file = "{pki}/ca.crt"\nserver_name = "localhost"\n')))
        p = bad.run("start", timeout=60)
        assert p.returncode != 0, p.stdout + p.stderr
        assert len(sw.admin_json("nodes")["nodes"]) == 1
    finally:
        sw.close()


def _tls_config(tmp_path, pki, client_ca=False):
    f = tmp_path / "manager.toml"
    f.write_text(f'tls_cert = "{pki}/server.crt"\ntls_key = "{pki}/server.key"\n'
                 + (f'tls_client_ca = "{pki}/ca.crt"\n' if client_ca else ""))
    return f


def test_broker_with_credentials(tmp_path, node_bin):
    pw = tmp_path / "passwd"
    subprocess.run(["mosquitto_passwd", "-c", "-b", str(pw), "manta", "s3cret-pw"], check=True,
                   capture_output=True, timeout=30)
    pw.chmod(0o644)
    d = module_dir(tmp_path, {"hello.py": "def main():\n    print('hello')\n"})
    (d / "swarm.toml").write_text(
        'name = "hi"\n[[tasks]]\nmodule = "hello.py"\nimage = "none"\nmethod = "all"\n')
    sw = LocalSwarm(tmp_path, node_bin, nodes=1,
                    node_extra='username = "manta"\npassword = "s3cret-pw"\n',  # in [mqtt]
                    broker_conf=f"allow_anonymous false\npassword_file {pw}\n")
    cfg = tmp_path / "manager.toml"
    cfg.write_text('broker_username = "manta"\nbroker_password = "s3cret-pw"\n')
    try:
        shown = sw.manager("config", "show", "--config", str(cfg)).stdout
        assert "s3cret-pw" not in shown and "(set, not shown)" in shown
        sw.start_run(d / "swarm.toml", "--config", str(cfg), "--timeout", "60")
        sw.start_nodes()
        rc, out = sw.wait(timeout=90)
        assert rc == 0 and "COMPLETED" in out, out
        assert "s3cret-pw" not in out
    finally:
        sw.close()
