"""Operating nodes as an operator would: background start (success and each failure), instance
files and their cleanup, stale files after SIGKILL, stop by alias / prefix / --all / --force,
status in three formats, cluster start/stop, duplicate aliases, SIGHUP reload, systemd
readiness."""
import json
import os
import re
import signal
import socket
import time

import pytest

from test_node_wire import TOKEN
from wire_env import Broker, FakeManager, RunningNode, free_port, node_config, wait_for


@pytest.fixture
def world(tmp_path):
    b = Broker(tmp_path / "broker").start()
    m = FakeManager(b, token=TOKEN).start()
    yield m
    m.stop()
    b.stop()


def instances_dir(node):
    return node.home / ".manta" / "nodes" / "instances"


def instance_files(node):
    d = instances_dir(node)
    return sorted(d.glob("*.json")) if d.exists() else []


def pid_alive(pid):
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False


@pytest.fixture
def cleanup(node):
    yield
    node.run("stop", "--all", "--force", timeout=60)


def write(node, world, name="production", alias=None, extra=""):
    node.write_config(name, node_config(TOKEN, world.port, alias=alias, extra=extra))


def test_background_start_and_stop(node, world, cleanup):
    write(node, world, alias="prod-gpu-01")
    t0 = time.monotonic()
    p = node.run("start", "production", "--background", timeout=60)
    assert p.returncode == 0, p.stderr
    lines = p.stdout.splitlines()
    assert lines[0] == "Starting node 'production' in background..."
    assert lines[1] == "✓ Node 'production' started successfully"
    m = re.fullmatch(r"Instance ID: (production-[0-9a-f]{8})", lines[2])
    assert m, lines
    pid = int(re.fullmatch(r"Process ID: (\d+)", lines[3]).group(1))
    assert lines[4] == "Log file: ~/.manta/logs/nodes/prod-gpu-01.log"
    # it returned because the node registered, not after a fixed sleep
    assert world.named("RegisterNode") and time.monotonic() - t0 < 10
    files = instance_files(node)
    assert [f.name for f in files] == [f"{m.group(1)}.json"]
    rec = json.loads(files[0].read_text())
    assert list(rec)[:9] == ["instance_id", "alias", "config_name", "pid", "start_time", "status",
                             "manager_host", "manager_port", "log_file"]
    assert rec["pid"] == pid and rec["alias"] == "prod-gpu-01" and rec["config_name"] == "production"
    assert rec["status"] == "running" and rec["manager_port"] == world.port
    assert rec["process_start_ticks"] > 0
    assert os.getsid(pid) == pid  # a new session: detached from the terminal
    # the log is appended, not truncated
    log = node.home / ".manta" / "logs" / "nodes" / "prod-gpu-01.log"
    assert "Registered with the manager" in log.read_text()
    p = node.run("stop", "prod-gpu-01", timeout=60)
    assert p.returncode == 0, p.stderr
    assert f"Sent termination signal to node 'prod-gpu-01' (PID: {pid})" in p.stdout
    assert "Node 'prod-gpu-01' stopped gracefully" in p.stdout
    assert "Node 'prod-gpu-01' stopped successfully" in p.stdout
    assert not pid_alive(pid) and instance_files(node) == []
    assert world.named("RegisterNode")  # and the DISCONNECTED went out (see wire tests)


def test_background_start_failures_print_the_nodes_own_error(node, world, tmp_path):
    # manager down: start itself prints the manager block and exits 1
    port = free_port()
    node.write_config("down", node_config(TOKEN, port))
    p = node.run("start", "down", "-d", timeout=90)
    assert p.returncode == 1
    assert f"Error: Failed to connect to manager at 127.0.0.1:{port}" in p.stderr
    assert "Log file: ~/.manta/logs/nodes/down.log" in p.stderr
    # bad config: refused before anything detaches
    node.write_config("bad", '[identity]\nsecured_token = "a.b.c"\n[network]\nmanager_prot = 1\n')
    p = node.run("start", "bad", "-d")
    assert p.returncode == 1
    assert "unknown key 'manager_prot'" in p.stderr
    assert instance_files(node) == []


def test_duplicate_alias_refused(node, world, cleanup):
    write(node, world, name="a", alias="same")
    write(node, world, name="b", alias="same")
    assert node.run("start", "a", "-d", timeout=60).returncode == 0
    p = node.run("start", "b", "-d", timeout=60)
    assert p.returncode == 1
    assert "Error: A node with alias 'same' is already running (PID " in p.stderr
    assert "would share a node ID" in p.stderr
    # but another alias for the same config is fine
    assert node.run("start", "b", "--alias", "other", "-d", timeout=60).returncode == 0
    assert len(instance_files(node)) == 2


def test_stale_instance_after_sigkill(node, world, cleanup):
    write(node, world, name="default")
    p = node.run("start", "-d", timeout=60)
    pid = int(re.search(r"Process ID: (\d+)", p.stdout).group(1))
    os.kill(pid, signal.SIGKILL)
    wait_for(lambda: not pid_alive(pid), 5, what="the node to die")
    assert len(instance_files(node)) == 1  # left behind by the crash
    p = node.run("status")
    assert "No running node instances found." in p.stdout
    assert instance_files(node) == []  # pruned
    # a recycled pid is not mistaken for the node: fake a record for a live, unrelated process
    d = instances_dir(node)
    d.mkdir(parents=True, exist_ok=True)
    (d / "ghost-12345678.json").write_text(json.dumps({
        "instance_id": "ghost-12345678", "alias": "ghost", "config_name": "ghost",
        "pid": os.getpid(), "start_time": "2024-01-01T00:00:00", "status": "running",
        "manager_host": "x", "manager_port": 1, "log_file": "x", "process_start_ticks": 1}))
    p = node.run("stop", "ghost")
    assert p.returncode == 1 and "No running node instances found" in p.stderr
    assert pid_alive(os.getpid())
    assert instance_files(node) == []


def test_stop_by_prefix_all_force_and_errors(node, world, cleanup):
    for i in (1, 2, 3):
        write(node, world, name=f"n{i}", alias=f"node-{i}")
        assert node.run("start", f"n{i}", "-d", timeout=60).returncode == 0
    recs = [json.loads(f.read_text()) for f in instance_files(node)]
    by_alias = {r["alias"]: r for r in recs}
    # prefix of an instance id
    p = node.run("stop", by_alias["node-1"]["instance_id"][:6], timeout=60)
    assert p.returncode == 0 and "Node 'node-1' stopped successfully" in p.stdout
    # unknown
    p = node.run("stop", "nope")
    assert p.returncode == 1
    assert "Error: Node instance 'nope' not found" in p.stderr and "node-2" in p.stderr
    # force one
    p = node.run("stop", "node-2", "--force", timeout=60)
    assert p.returncode == 0 and "Force killed node 'node-2' (PID: " in p.stdout
    assert not pid_alive(by_alias["node-2"]["pid"])
    # all
    p = node.run("stop", "--all", timeout=60)
    assert p.returncode == 0
    assert "Found 1 running instance(s):" in p.stdout and "  - node-3 (PID: " in p.stdout
    assert "All 1 instances stopped successfully" in p.stdout
    p = node.run("stop")
    assert p.returncode == 0 and p.stdout == "No running node instances found.\n"


def test_stop_timeout_then_sigkill(node, world, cleanup):
    write(node, world, name="default")
    p = node.run("start", "-d", timeout=60)
    pid = int(re.search(r"Process ID: (\d+)", p.stdout).group(1))
    os.kill(pid, signal.SIGSTOP)  # a hung node ignores SIGTERM
    try:
        p = node.run("stop", "--timeout", "1", timeout=60)
        assert "did not stop gracefully, sending SIGKILL..." in p.stdout
        assert "Force killed node 'default' after timeout" in p.stdout
        assert not pid_alive(pid)
    finally:
        if pid_alive(pid):
            os.kill(pid, signal.SIGKILL)


def test_status_formats(node, world, cleanup):
    p = node.run("status")
    assert p.stdout == ("No running node instances found.\n\nStart a node with:\n"
                        "  manta_node start [config_name]\n")
    write(node, world, name="production", alias="prod-gpu-01")
    start = node.run("start", "production", "-d", timeout=60)
    pid = int(re.search(r"Process ID: (\d+)", start.stdout).group(1))
    p = node.run("status")
    lines = p.stdout.splitlines()
    assert lines[0] == "Running Node Instances"
    assert lines[1].split() == ["Alias", "Config", "PID", "Status", "CPU", "%", "Memory", "(MB)",
                                "Started"]
    row = lines[2].split()
    assert row[:4] == ["prod-gpu-01", "production", str(pid), "running"]
    assert re.fullmatch(r"\d+\.\d%", row[4]) and int(row[5]) > 0
    assert re.fullmatch(r"\d{4}-\d\d-\d\d", row[6]) and re.fullmatch(r"\d\d:\d\d:\d\d", row[7])
    p = node.run("status", "--plain")
    assert p.stdout.startswith("Found 1 running instance(s):\n\nInstance: production-")
    assert f"  PID: {pid}\n  Status: running\n  CPU: " in p.stdout
    p = node.run("status", "--json")
    data = json.loads(p.stdout)
    assert data[0]["alias"] == "prod-gpu-01" and data[0]["pid"] == pid
    assert data[0]["memory_bytes"] > 1 << 20 and data[0]["cpu_percent"] >= 0
    assert node.run("status", "--plain", "--json").returncode == 2


def test_cluster_start_and_stop(node, world, cleanup):
    write(node, world, name="production")
    before = node.config_path("production").read_text()
    p = node.run("cluster", "start", "3", "--config", "production", timeout=120)
    assert p.returncode == 0, p.stdout + p.stderr
    for i in (1, 2, 3):
        assert f"  ✓ Started production-cluster-{i}" in p.stdout
    assert "Successfully started 3 nodes:" in p.stdout
    assert node.config_path("production").read_text() == before  # never rewritten
    regs = world.named("RegisterNode")
    assert len({(r.request.node_id.head, r.request.node_id.tail) for r in regs}) == 3
    st = json.loads(node.run("status", "--json").stdout)
    assert sorted(s["alias"] for s in st) == [f"production-cluster-{i}" for i in (1, 2, 3)]
    p = node.run("cluster", "stop")  # no terminal: needs --yes
    assert p.returncode == 1 and "--yes" in p.stderr
    p = node.run("cluster", "stop", "--yes", timeout=120)
    assert p.returncode == 0, p.stdout
    assert "All 3 cluster nodes stopped successfully" in p.stdout
    assert instance_files(node) == []


def test_cluster_usage(node):
    assert node.run("cluster").returncode == 0
    p = node.run("cluster", "start")
    assert p.returncode == 1 and "Error: Node count is required" in p.stderr
    p = node.run("cluster", "start", "0", "--config", "x")
    assert p.returncode == 1 and "Error: Node count must be greater than 0" in p.stderr


def test_sighup_reloads_level_and_datasets(node, world, tmp_path):
    d1 = tmp_path / "d1"
    d1.mkdir()
    write(node, world, name="default",
          extra=f'[datasets]\nmappings = {{ a = "{d1}" }}\n[logging]\nlevel = "INFO"\n')
    rn = RunningNode(node)
    log = node.home / ".manta" / "logs" / "nodes" / "default.log"
    try:
        rn.wait_line("✓ Ready to execute tasks")
        d2 = tmp_path / "d2.csv"
        d2.write_text("x")
        cfg = node.config_path("default").read_text()
        cfg = cfg.replace(f'mappings = {{ a = "{d1}" }}', f'mappings = {{ a = "{d1}", b = "{d2}" }}')
        cfg = cfg.replace('level = "INFO"', 'level = "DEBUG"')
        cfg = cfg.replace("connect_timeout = 3", "connect_timeout = 4")
        node.config_path("default").write_text(cfg)
        rn.signal(signal.SIGHUP)
        wait_for(lambda: "Reloaded datasets.mappings: 2 dataset(s)" in log.read_text(), 5,
                 what="the reload")
        text = log.read_text()
        assert "Reloaded logging.level = DEBUG" in text
        assert "Changed settings that need a restart to take effect: network.connect_timeout" in text
        # the new level is live: heartbeats are logged at DEBUG now
        wait_for(lambda: "Heartbeat" in log.read_text(), 5, what="a DEBUG line")
        # and the new dataset is reported
        from wire_env import Observer  # noqa
        assert rn.proc.poll() is None
    finally:
        rn.signal(signal.SIGTERM)
        assert rn.wait() == 0


def test_systemd_readiness(node, world, tmp_path):
    sock_path = str(tmp_path / "notify.sock")
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    s.bind(sock_path)
    s.settimeout(20)
    write(node, world, name="default")
    rn = RunningNode(node, env={"NOTIFY_SOCKET": sock_path})
    try:
        msg = s.recv(4096).decode()
        assert "READY=1" in msg and f"MAINPID={rn.proc.pid}" in msg
        assert world.named("RegisterNode")  # readiness only after registration
        rn.signal(signal.SIGTERM)
        assert "STOPPING=1" in s.recv(4096).decode()
    finally:
        rn.signal(signal.SIGTERM)
        rn.wait()
        s.close()
