"""`manta_node start` on the wire: a fake manager (python3-grpcio, from proto/) and a real
mosquitto on loopback. Registration, heartbeats, collect_information, errors to the manager,
shutdown, the last will, a broker restart, and the startup failures with their exact texts."""
import base64
import json
import os
import platform
import signal
import time

import pytest

from wire_env import (Broker, FakeManager, Observer, RunningNode, info_pb2, node_config,
                      system_pb2, tasks_pb2, wait_for, xid)


def make_jwt(exp=None):
    def b64(obj):
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).decode().rstrip("=")
    return f"{b64({'alg': 'HS256', 'typ': 'JWT'})}.{b64({'sub': 'n', 'exp': exp or int(time.time()) + 3600})}.c2ln"


TOKEN = make_jwt()
DEFAULT_ID = (17836332393262621160, 5839336928621298787)  # BLAKE3("default"), reference §4.1
DEFAULT_XID = "f78761cf8c3621e851097dff9a4b0463"


@pytest.fixture
def broker(tmp_path):
    b = Broker(tmp_path / "broker").start()
    yield b
    b.stop()


@pytest.fixture
def manager(broker):
    m = FakeManager(broker, token=TOKEN).start()
    yield m
    m.stop()


@pytest.fixture
def observer(broker):
    o = Observer(broker)
    yield o
    o.close()


def start_default(node, manager, extra="", name="default", args=(), env=None, alias=None,
                  reconnect=(0.2, 1.0)):
    node.write_config(name, node_config(TOKEN, manager.port, alias=alias, extra=extra,
                                        reconnect=reconnect))
    return RunningNode(node, name, args=args, env=env)


def command_topic(node_xid, cmd):
    return f"manta/nodes/{node_xid}/{cmd}"


def test_start_help(node):
    p = node.run("start", "--help")
    assert p.returncode == 0 and "Usage: manta_node start" in p.stdout


def test_registration_sequence(node, manager, observer, tmp_path):
    data = tmp_path / "mnist_v2.npz"
    data.write_bytes(b"x")
    rn = start_default(node, manager, extra=f'[datasets]\nmappings = {{ mnist = "{data}" }}\n')
    try:
        rn.wait_line("✓ Ready to execute tasks")
        assert rn.out[:2] == ["Starting node 'default' in foreground...", "Press Ctrl+C to stop"]
        ticks = [l for l in rn.out if l.startswith("✓")]
        assert ticks == ["✓ Node registered with manager", "✓ Connected to MQTT broker",
                         "✓ Ready to execute tasks"]
        names = [c.method for c in manager.calls]
        assert names[:2] == ["IsAvailable", "RegisterNode"]
        reg = manager.named("RegisterNode")[0]
        assert reg.metadata["authorization"] == TOKEN  # raw JWT, no "Bearer"
        r = reg.request
        assert (r.node_id.head, r.node_id.tail) == DEFAULT_ID
        u = os.uname()
        assert r.platform_info.system == "Linux"
        assert r.platform_info.release == u.release
        assert r.platform_info.version == u.version
        assert r.platform_info.machine == u.machine
        assert r.platform_info.hostname == u.nodename
        ov = list(r.dataset_overviews.content)
        assert [(o.name, o.description, o.dtype) for o in ov] == [
            ("mnist_v2", "File in mnist_v2.npz", "numpy")]
        # the first heartbeat comes right away
        wait_for(lambda: observer.on("manager/set_system_summary"), 5, what="a heartbeat")
    finally:
        rn.signal(signal.SIGTERM)
        assert rn.wait() == 0


def test_named_config_and_alias_override_output(node, manager):
    rn = start_default(node, manager, name="production", alias="prod-gpu-01")
    try:
        rn.wait_line("✓ Ready to execute tasks")
        assert rn.out[:5] == ["Starting node 'production' in foreground...",
                              "Using configuration: ~/.manta/nodes/production.toml",
                              "Node alias: prod-gpu-01",
                              f"Manager: 127.0.0.1:{manager.port}",
                              "Press Ctrl+C to stop"]
    finally:
        rn.signal(signal.SIGTERM)
        rn.wait()
    before = node.config_path("production").read_text()
    rn = RunningNode(node, "production", args=("--alias", "experiment-node-1"))
    try:
        rn.wait_line("✓ Ready to execute tasks")
        assert rn.out[:3] == ["Starting node 'experiment-node-1' in foreground...",
                              "Configuration: production",
                              "Overridden alias: experiment-node-1"]
        reg = manager.named("RegisterNode")[-1].request
        from wire_env import xid as _x  # noqa
        # the ID follows the overriding alias
        assert (reg.node_id.head, reg.node_id.tail) != DEFAULT_ID
    finally:
        rn.signal(signal.SIGTERM)
        rn.wait()
    assert node.config_path("production").read_text() == before  # --alias does not rewrite


def test_heartbeat_cadence_and_content(node, manager, observer):
    rn = start_default(node, manager)
    try:
        rn.wait_line("✓ Ready to execute tasks")
        t0 = time.monotonic()
        beats = wait_for(lambda: len(observer.on("manager/set_system_summary")) >= 5 and
                         observer.on("manager/set_system_summary"), 10, what="5 heartbeats")
        times = [t for _, t in beats]
        gaps = [b - a for a, b in zip(times, times[1:])]
        assert all(0.7 < g < 1.5 for g in gaps[1:]), gaps  # ping_interval = 1 s
        msg = info_pb2.SetSystemSummaryRequest.FromString(beats[-1][0])
        assert (msg.node_id.head, msg.node_id.tail) == DEFAULT_ID
        cpu, mem = msg.metrics_snapshot.cpu, msg.metrics_snapshot.memory
        assert cpu.count == os.cpu_count()
        assert len(cpu.per_cpu_percent) == os.cpu_count()
        assert 0.0 <= cpu.usage_percent <= 100.0
        meminfo = dict(l.split(":", 1) for l in open("/proc/meminfo").read().splitlines())
        assert mem.total_bytes == int(meminfo["MemTotal"].split()[0]) * 1024
        assert 0 < mem.percent_used < 100
        assert abs(msg.metrics_snapshot.timestamp.seconds - time.time()) < 10
        assert time.monotonic() - t0 < 10
    finally:
        rn.signal(signal.SIGTERM)
        rn.wait()


@pytest.mark.parametrize("what,rpc", [("set_node_status", "SetNodeStatus"),
                                      ("set_system_summary", "SetSystemSummary"),
                                      ("set_overviews", "SetOverviews")])
def test_collect_information(node, manager, observer, tmp_path, what, rpc):
    d = tmp_path / "imgs"
    d.mkdir()
    rn = start_default(node, manager, extra=f'[datasets]\nmappings = {{ images = "{d}" }}\n')
    try:
        rn.wait_line("✓ Ready to execute tasks")
        observer.publish(command_topic(DEFAULT_XID, "collect_information"), what.encode())
        call = manager.wait_call(rpc)[0]
        assert call.metadata["authorization"] == TOKEN
        req = call.request
        assert (req.node_id.head, req.node_id.tail) == DEFAULT_ID
        if rpc == "SetNodeStatus":
            assert req.status == info_pb2.CONNECTED
        elif rpc == "SetSystemSummary":
            assert req.metrics_snapshot.memory.total_bytes > 0
        else:
            assert [(o.name, o.description, o.dtype) for o in req.content.content] == [
                ("imgs", "Folder in imgs", "folder")]
    finally:
        rn.signal(signal.SIGTERM)
        rn.wait()


@pytest.mark.parametrize("cmd,payload,expect_id,needle", [
    ("collect_information", b"set_everything", 22, "Not allowed method: set_everything"),
    ("collect_information", b"\xff\x00garbage", 22, "Not allowed method"),
    ("frobnicate", b"", 22, "Not allowed method: frobnicate"),
    ("deploy_task", b"\xff\xff\xff", 22, "Unable to convert message into 'MqttTask'"),
    ("stop_task", b"\x0a\x05\x08", 22, "Unable to convert message into 'EnvId'"),
    ("stop_swarm", b"\x08\x80", 22, "Unable to convert message into 'PairId'"),
])
def test_bad_commands_are_reported_and_survived(node, manager, observer, cmd, payload, expect_id,
                                                needle):
    rn = start_default(node, manager)
    try:
        rn.wait_line("✓ Ready to execute tasks")
        observer.publish(command_topic(DEFAULT_XID, cmd), payload)
        err = manager.wait_call("SendError")[0].request
        assert err.error_id == expect_id
        assert needle in err.content
        assert (err.node_id.head, err.node_id.tail) == DEFAULT_ID
        # still alive and answering
        n0 = len(observer.on("manager/set_system_summary"))
        wait_for(lambda: len(observer.on("manager/set_system_summary")) > n0 + 1, 5,
                 what="heartbeats after the bad command")
        assert rn.proc.poll() is None
    finally:
        rn.signal(signal.SIGTERM)
        assert rn.wait() == 0


def test_sigterm_publishes_disconnected_and_exits_zero(node, manager, observer):
    rn = start_default(node, manager)
    rn.wait_line("✓ Ready to execute tasks")
    rn.signal(signal.SIGTERM)
    assert rn.wait() == 0
    assert "Received SIGTERM, stopping node..." in rn.out
    assert rn.out[-1] == "Node stopped gracefully"
    st = wait_for(lambda: observer.on("manager/set_node_status"), 5, what="DISCONNECTED")
    msg = info_pb2.NodeStatus.FromString(st[-1][0])
    assert msg.status == info_pb2.DISCONNECTED
    assert (msg.node_id.head, msg.node_id.tail) == DEFAULT_ID


def test_stop_node_command(node, manager, observer):
    rn = start_default(node, manager)
    rn.wait_line("✓ Ready to execute tasks")
    observer.publish(command_topic(DEFAULT_XID, "stop_node"), b"")
    assert rn.wait() == 0
    assert observer.on("manager/set_node_status")


def test_last_will_on_crash(node, manager, observer):
    rn = start_default(node, manager)
    rn.wait_line("✓ Ready to execute tasks")
    assert not observer.on("manager/set_node_status")
    rn.kill()  # SIGKILL: no goodbye; the broker publishes the will
    st = wait_for(lambda: observer.on("manager/set_node_status"), 15, what="the last will")
    assert info_pb2.NodeStatus.FromString(st[0][0]).status == info_pb2.DISCONNECTED


def test_broker_restart_reconnects_and_keeps_commands(node, manager, broker):
    # The node waits 3-6 s before reconnecting, so the command below is published while it is
    # away: its persistent session (QoS 1) must hold the command until it returns.
    rn = start_default(node, manager, reconnect=(6.0, 6.0))
    log = node.home / ".manta" / "logs" / "nodes" / "default.log"
    try:
        rn.wait_line("✓ Ready to execute tasks")
        broker.stop()
        wait_for(lambda: "lost; reconnecting" in log.read_text(), 10, what="the node to notice")
        broker.start()
        obs = Observer(broker, client_id="observer2")
        try:
            obs.publish(command_topic(DEFAULT_XID, "collect_information"), b"set_node_status")
            published_at = time.monotonic()
            assert "Reconnecting to" not in log.read_text()  # still away
            call = manager.wait_call("SetNodeStatus", timeout=20)[0]
            assert call.request.status == info_pb2.CONNECTED
            assert call.time > published_at
            assert "(session resumed)" in log.read_text()
            n0 = len(obs.on("manager/set_system_summary"))
            wait_for(lambda: len(obs.on("manager/set_system_summary")) > n0, 10,
                     what="heartbeats after the restart")
        finally:
            obs.close()
    finally:
        rn.signal(signal.SIGTERM)
        assert rn.wait() == 0


def test_reconnect_backoff_is_jittered_and_bounded(node, manager, broker):
    rn = start_default(node, manager, reconnect=(0.2, 1.0))
    log = node.home / ".manta" / "logs" / "nodes" / "default.log"
    try:
        rn.wait_line("✓ Ready to execute tasks")
        broker.stop()
        wait_for(lambda: log.read_text().count("lost; reconnecting in") >= 6, 15,
                 what="several reconnect attempts")
        import re
        delays = [float(x) for x in re.findall(r"reconnecting in ([0-9.]+) s", log.read_text())]
        assert all(0.1 <= d <= 1.0 for d in delays), delays  # within [base/2, max]
        assert len(set(delays)) > 1  # jittered, not a fixed storm
        broker.start()
        wait_for(lambda: "(session resumed)" in log.read_text(), 10, what="the reconnection")
    finally:
        rn.signal(signal.SIGTERM)
        assert rn.wait() == 0


def test_light_service_binds_on_loopback_and_answers(node, manager):
    import grpc
    from pbgen import client, pb
    lpb = pb("node.light_service_pb2")
    rn = start_default(node, manager)
    log = node.home / ".manta" / "logs" / "nodes" / "default.log"
    try:
        rn.wait_line("✓ Ready to execute tasks")
        import re
        m = re.search(r"Light service listening on ([0-9.]+):([0-9]+)", log.read_text())
        assert m and m.group(1) == "127.0.0.1"
        ch = grpc.insecure_channel(f"127.0.0.1:{m.group(2)}")
        local = client(ch, "node.light_service.Local")
        # it answers, and only for this node's tasks: an unknown caller is refused
        with pytest.raises(grpc.RpcError) as ei:
            local.GetBinaryData(lpb.DataRequest(name="x"), timeout=5).next()
        assert ei.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert "not a task of this node" in ei.value.details()
        ch.close()
    finally:
        rn.signal(signal.SIGTERM)
        assert rn.wait() == 0


def test_manager_down_at_start(node):
    port = __import__("wire_env").free_port()
    node.write_config("default", node_config(TOKEN, port))
    p = node.run("start", timeout=60)
    assert p.returncode == 1
    assert (f"Error: Failed to connect to manager at 127.0.0.1:{port}\n"
            "\n"
            "Troubleshooting steps:\n"
            "  1. Check if configuration is valid: manta_node config validate\n"
            "  2. Verify manager is running: docker ps (look for manta services)\n"
            f"  3. Check if port is available: netstat -ln | grep :{port}\n"
            "  4. Validate secured_token is set in config file\n") in p.stderr


def test_refused_token(node, broker):
    m = FakeManager(broker, token="another.token.value").start()
    try:
        node.write_config("default", node_config(TOKEN, m.port))
        p = node.run("start", timeout=60)
        assert p.returncode == 1
        assert f"Error: The manager at 127.0.0.1:{m.port} refused this node's token" in p.stderr
        assert "UNAUTHENTICATED" in p.stderr
        assert "Failed to connect to manager" not in p.stderr
        assert len(m.named("IsAvailable")) == 1  # not retried
    finally:
        m.stop()


def test_broker_unreachable_at_start(node, broker):
    dead = __import__("wire_env").free_port()
    m = FakeManager(broker, token=TOKEN, broker_port=dead).start()
    try:
        node.write_config("default", node_config(TOKEN, m.port))
        p = node.run("start", timeout=60)
        assert p.returncode == 1
        assert ("Error: Failed to connect to MQTT broker\n"
                f"Broker: 127.0.0.1:{dead}\n"
                "\n"
                "Check:\n"
                "  - MQTT broker is running\n"
                "  - Network connectivity\n"
                "  - Firewall rules\n") in p.stderr
    finally:
        m.stop()


def test_broker_override(node, broker):
    # The manager names an unreachable broker; the config's override wins (NAT, containers).
    m = FakeManager(broker, token=TOKEN, broker_host="192.0.2.1", broker_port=1).start()
    try:
        rn = start_default(node, m, extra=f'broker_host = "127.0.0.1"\nbroker_port = {broker.port}\n')
        rn.wait_line("✓ Ready to execute tasks")
        rn.signal(signal.SIGTERM)
        assert rn.wait() == 0
    finally:
        m.stop()


@pytest.mark.parametrize("cfg,needle", [
    ('[identity]\nsecured_token = ""\n', "Error: No valid secured token found in configuration"),
    ('[identity]\nsecured_token = "${MANTA_NODE_TOKEN}"\n',
     "Error: No valid secured token found in configuration"),
])
def test_invalid_token_block(node, cfg, needle):
    node.write_config("production", cfg)
    p = node.run("start", "production")
    assert p.returncode == 1
    assert p.stderr == (
        "Error: No valid secured token found in configuration\n"
        "A secured token (JWT) is required for node authentication.\n"
        "\n"
        "Solutions:\n"
        "  • Set environment variable: export MANTA_NODE_TOKEN=your_jwt_token\n"
        "  • Edit config file: ~/.manta/nodes/production.toml\n"
        "  • Update: secured_token = \"your_jwt_token_here\"\n"
        "  • Or recreate config: manta_node config init\n")


def test_start_missing_config(node):
    p = node.run("start", "gpu-config")
    assert p.returncode == 1
    assert p.stderr.startswith("Error: Configuration 'gpu-config' not found at "
                               "~/.manta/nodes/gpu-config.toml\n")


def test_token_never_in_log_or_output(node, manager, observer):
    extra = '[logging]\nlevel = "DEBUG"\nlog_to_console = true\n'
    rn = start_default(node, manager, extra=extra)
    try:
        rn.wait_line("✓ Ready to execute tasks")
        observer.publish(command_topic(DEFAULT_XID, "collect_information"), b"set_node_status")
        manager.wait_call("SetNodeStatus")
        time.sleep(1.5)
    finally:
        rn.signal(signal.SIGTERM)
        rn.wait()
    log = (node.home / ".manta" / "logs" / "nodes" / "default.log").read_text()
    assert "Registered with the manager" in log
    for part in TOKEN.split("."):
        assert part not in log
        assert part not in rn.stdout() + rn.stderr()


def test_second_signal_exits_at_once(node, manager, broker):
    rn = start_default(node, manager)
    rn.wait_line("✓ Ready to execute tasks")
    broker.stop()  # the DISCONNECTED publish cannot be acknowledged now
    time.sleep(0.3)
    rn.signal(signal.SIGTERM)
    rn.signal(signal.SIGTERM)
    t0 = time.monotonic()
    rc = rn.wait(10)
    assert time.monotonic() - t0 < 3
    assert rc in (0, 1)


@pytest.mark.parametrize("with_gpu", [True, False])
def test_gpu_metrics_with_fake_nvml_and_without(node, manager, with_gpu):
    fake = os.environ.get("MANTA_FAKE_NVML")
    assert fake, "CTest provides the fake NVML library"
    env = {"MANTA_NVML_LIBRARY": fake} if with_gpu else {"MANTA_NVML_LIBRARY": "/nonexistent/libnvidia-ml.so.1"}
    rn = start_default(node, manager, extra='[logging]\nlevel = "DEBUG"\n', env=env)
    try:
        rn.wait_line("✓ Ready to execute tasks")
        log = node.home / ".manta" / "logs" / "nodes" / "default.log"
        if with_gpu:
            wait_for(lambda: "2 GPU(s): Fake GPU 0" in log.read_text(), 5, what="GPUs in the log")
            assert "GPU 1 Fake GPU 1: 40% busy, 25.0% memory, 60 C, 120/250 W" in log.read_text()
        else:
            wait_for(lambda: "NVML not found" in log.read_text(), 5, what="the no-GPU note")
        assert "Disk " in log.read_text() and "Network: " in log.read_text()
    finally:
        rn.signal(signal.SIGTERM)
        assert rn.wait() == 0


def test_docker_not_accessible_block(node, manager, tmp_path):
    node.write_config("default", node_config(TOKEN, manager.port, runtime="docker").replace(
        '[containers]\nruntime = "docker"\n',
        f'[containers]\nruntime = "docker"\ndocker_socket = "{tmp_path}/no-docker.sock"\n'))
    p = node.run("start", timeout=60, env={"DOCKER_HOST": ""})
    assert p.returncode == 1
    assert ("Error: Docker daemon not accessible\n"
            "\n"
            "Solutions:\n"
            "  - Start Docker daemon: sudo systemctl start docker\n"
            "  - Check permissions: sudo usermod -aG docker $USER\n"
            "  - Verify socket: ls -la /var/run/docker.sock\n") in p.stderr
    # The runtime is checked while the node registers (it does not delay the handshake); a node
    # that cannot run tasks does not stay registered: it says it is leaving, at once.
    names = [c.method for c in manager.calls]
    if "RegisterNode" in names:
        after = names[names.index("RegisterNode"):]
        assert "SetNodeStatus" in after, names
        st = manager.named("SetNodeStatus")[-1].request
        assert st.status == info_pb2.DISCONNECTED, st
