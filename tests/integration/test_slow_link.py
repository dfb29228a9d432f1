"""Large values on a slow link (issue 13): a call to the manager fails only when nothing moves
for the stall time (network.rpc_timeout), never because a large value takes long. The manager
runs in a network namespace made by the test, behind a veth pair shaped to 100 Mbit/s with tc;
a task sets and reads back a 300 MiB global through its node (rpc_timeout = 15 s: 300 MiB
needs ~25 s each way on this link). Needs root, ip and tc; skipped without them."""
import json
import os
import shutil
import subprocess
import time

import pytest

from conftest import Node, SOURCE_DIR
from manager_env import manager_bin, module_dir
from wire_env import Broker, RunningNode, free_port, node_config, wait_for

NEED = os.geteuid() == 0 and shutil.which("ip") and shutil.which("tc")
pytestmark = pytest.mark.skipif(not NEED, reason="needs root, ip and tc (network namespaces)")

BIG = {
    "big.py": (
        "import hashlib, os\n"
        "from manta.light.task import Task\n"
        "class Big(Task):\n"
        "    def run(self):\n"
        "        v = os.urandom(1 << 20) * 300\n"
        "        self.world.globals['big'] = v\n"
        "        back = self.world.globals['big']\n"
        "        assert hashlib.sha256(back).digest() == hashlib.sha256(v).digest()\n"
        "        print('300 MiB set and read back', flush=True)\n"
        "def main():\n    Big().run()\n"),
}


def sh(*cmd, check=True):
    return subprocess.run(cmd, check=check, capture_output=True, text=True, timeout=30)


@pytest.fixture
def slow_netns():
    ns = f"mtslow{os.getpid()}"
    host, peer, sub = f"vh{os.getpid() % 100000}", f"vn{os.getpid() % 100000}", os.getpid() % 200 + 20
    hip, nip = f"10.213.{sub}.1", f"10.213.{sub}.2"
    sh("ip", "netns", "add", ns)
    try:
        sh("ip", "link", "add", host, "type", "veth", "peer", "name", peer)
        sh("ip", "link", "set", peer, "netns", ns)
        sh("ip", "addr", "add", f"{hip}/30", "dev", host)
        sh("ip", "link", "set", host, "up")
        sh("ip", "netns", "exec", ns, "ip", "addr", "add", f"{nip}/30", "dev", peer)
        sh("ip", "netns", "exec", ns, "ip", "link", "set", peer, "up")
        sh("ip", "netns", "exec", ns, "ip", "link", "set", "lo", "up")
        for pre in ([], ["ip", "netns", "exec", ns]):
            dev = peer if pre else host
            sh(*pre, "tc", "qdisc", "add", "dev", dev, "root", "tbf", "rate", "100mbit",
               "burst", "256kb", "latency", "100ms")
        yield ns, hip, nip
    finally:
        sh("ip", "link", "del", host, check=False)
        sh("ip", "netns", "del", ns, check=False)


def test_300_mib_global_over_100_mbit(tmp_path, node_bin, slow_netns):
    ns, hip, nip = slow_netns
    broker = Broker(tmp_path / "broker", extra_conf=f"listener {free_port()} {hip}\n").start()
    mport = free_port()
    home = tmp_path / "mgrhome"
    home.mkdir()
    env = {"MANTA_HOME": str(home / ".manta"), "HOME": str(home), "PATH": os.environ["PATH"],
           "LANG": "C.UTF-8"}
    for k in ("ASAN_OPTIONS", "UBSAN_OPTIONS", "LSAN_OPTIONS"):
        if k in os.environ:
            env[k] = os.environ[k]
    mgr = manager_bin()
    token = subprocess.run([mgr, "token", "create", "--node", "slow"], env=env, check=True,
                           capture_output=True, text=True).stdout.strip()
    # the broker listens on loopback (for the node) and on the veth's host end (for the manager)
    bport = [l.split()[1] for l in (tmp_path / "broker" / "mosquitto.conf").read_text().splitlines()
             if l.startswith("listener") and hip in l]
    assert bport, "the broker's listener on the veth"
    store, admin = tmp_path / "store.db", tmp_path / "admin.sock"
    proc = subprocess.Popen(
        ["ip", "netns", "exec", ns, mgr, "serve", "--listen", f"{nip}:{mport}", "--broker",
         f"{hip}:{bport[0]}", "--store", str(store), "--admin", str(admin)],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    node = Node(node_bin, tmp_path / "node")
    node.home.mkdir()
    node.env["PYTHONPATH"] = str(SOURCE_DIR / "python")
    # a stall limit of 15 s: well below the ~25 s each 300 MiB message needs on this link (a
    # fixed deadline per message of that length fails), above the manager's time to store and
    # load the value once it has it
    cfg = node_config(token, mport, alias="slow").replace(
        'manager_host = "127.0.0.1"', f'manager_host = "{nip}"').replace(
        "rpc_timeout = 5\n", "rpc_timeout = 15\n")
    node.write_config("default", cfg)
    rn = None
    try:
        wait_for(lambda: admin.exists(), 30, what="the manager's admin socket")
        rn = RunningNode(node)
        adm = lambda *a: subprocess.run([mgr, *a, "--admin", str(admin), "--store", str(store)],  # noqa: E731
                                        env=env, capture_output=True, text=True, timeout=30)
        wait_for(lambda: adm("nodes", "--json").returncode == 0 and
                 json.loads(adm("nodes", "--json").stdout)["nodes"], 60,
                 what="the node registered")
        time.sleep(1.5)
        d = module_dir(tmp_path, BIG)
        (d / "swarm.toml").write_text(
            'name = "big"\n[[tasks]]\nmodule = "big.py"\nimage = "none"\nmethod = "all"\n')
        sid = adm("submit", str(d / "swarm.toml")).stdout.strip()
        t0 = time.monotonic()
        wait_for(lambda: '"RUNNING"' not in adm("status", sid, "--json").stdout, 600,
                 interval=1, what="the swarm to end")
        took = time.monotonic() - t0
        st = adm("status", sid, "--json").stdout
        logs = adm("logs", sid).stdout
        assert '"COMPLETED"' in st, (st, logs)
        assert "300 MiB set and read back" in logs, logs
        # it did cross the shaped link: 600 MiB at 100 Mbit/s is at least ~50 s
        assert took > 40, took
        print(f"300 MiB global set and read back over 100 Mbit/s in {took:.0f} s")
    finally:
        if rn:
            rn.kill()
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
        broker.stop()
