"""A node under hostile or unlucky input (issue 16, items 3 to 5): empty MQTT payloads, commands
the persistent session kept while the node was stopped (a burst of stale stop_nodes, a
deploy_task), FIFOs in a dataset or as a configuration file, text cut inside a UTF-8 character on
its way into a protobuf string, and a number too large for what it sizes. Each test starts its
own broker, fake manager and node; every wait is bounded."""
import os
import re
import signal

import grpc
import pytest

from pbgen import client
from test_light_local import dirreq, dreq, error_of, lines, text_req
from test_node_wire import broker, manager, observer  # noqa: F401 (fixtures)
from test_node_wire import DEFAULT_XID, TOKEN, command_topic, start_default
from test_tasks_process import logs_of, module, mqtt_task, send, sleeper, updates
from wire_env import Broker, FakeManager, Observer, RunningNode, tasks_pb2, wait_for

STALE = "Ignoring a stop_node queued before this run started"
MARKER_BACK = "Session marker back"
TIMEOUT = 10


def log_of(node):
    return node.home / ".manta" / "logs" / "nodes" / "default.log"


def log_since(node, offset):
    p = log_of(node)
    return p.read_text(errors="replace")[offset:] if p.exists() else ""


def log_size(node):
    p = log_of(node)
    return len(p.read_text(errors="replace")) if p.exists() else 0


def clean_exit(rn, timeout=60):
    if rn.proc.poll() is None:
        rn.signal(signal.SIGTERM)
    rc = rn.wait(timeout)
    assert "runtime error:" not in rn.stderr() and "AddressSanitizer" not in rn.stderr(), rn.stderr()
    return rc


def alive_while(rn, pred):
    """A wait_for predicate that fails at once if the node exits."""
    def check():
        if rn.proc.poll() is not None:
            raise AssertionError(f"the node exited (code {rn.proc.returncode}): {rn.out + rn.err}")
        return pred()
    return check


def run_once(node, manager):
    """Start the node and stop it again: the broker now keeps a persistent session for it."""
    rn = start_default(node, manager)
    rn.wait_line("✓ Ready to execute tasks")
    assert clean_exit(rn) == 0


# ---- item 3: empty payloads ---------------------------------------------------------------------

def test_empty_collect_information_gets_send_error_and_node_lives(node, manager, observer):
    rn = start_default(node, manager)
    try:
        rn.wait_line("✓ Ready to execute tasks")
        observer.publish(command_topic(DEFAULT_XID, "collect_information"), b"")
        err = manager.wait_call("SendError")[0].request
        assert err.error_id == 22  # MQTT_ERROR
        assert err.content.startswith("Not allowed method")
        assert "empty" in err.content and "set_node_status" in err.content  # says what to send
        # Every command with an empty payload: an answer, never a crash.
        for cmd in ("stop_task", "stop_swarm", "deploy_task", "frobnicate"):
            observer.publish(command_topic(DEFAULT_XID, cmd), b"")
        texts = lambda: [c.request.content for c in manager.named("SendError")]  # noqa: E731
        wait_for(alive_while(rn, lambda: len(texts()) >= 4), 15,
                 what=lambda: f"answers to the empty commands; got {texts()}")
        assert any(t.startswith("Unable to stop task") for t in texts())
        assert any("MqttTask" in t and "task_id" in t for t in texts())
        assert any(t == "Not allowed method: frobnicate" for t in texts())
        n0 = len(observer.on("manager/set_system_summary"))
        wait_for(alive_while(rn, lambda: len(observer.on("manager/set_system_summary")) > n0 + 1),
                 10, what="heartbeats after the empty commands")
    finally:
        assert clean_exit(rn) == 0


def test_unknown_command_cut_inside_a_character_still_reaches_the_manager(node, manager,
                                                                          observer):
    # "Not allowed method: <name>" keeps 100 bytes of the name: here that ends inside an "é".
    # The manager refuses a protobuf string that is not UTF-8, so the cut must respect it.
    name = "x" + "é" * 60
    rn = start_default(node, manager)
    try:
        rn.wait_line("✓ Ready to execute tasks")
        observer.publish(command_topic(DEFAULT_XID, name), b"")
        err = wait_for(alive_while(rn, lambda: manager.named("SendError")), 15,
                       what="the SendError about the unknown command")[0].request
        assert err.content.startswith("Not allowed method: x" + "é" * 49)
        assert "\ufffd" not in err.content
    finally:
        assert clean_exit(rn) == 0


# ---- item 4: commands the session kept while the node was stopped ------------------------------

def test_stale_stop_nodes_do_not_stop_the_next_start(node, manager, observer):
    run_once(node, manager)
    burst = 300
    for _ in range(burst):  # published while the node is stopped: the session keeps them
        observer.publish(command_topic(DEFAULT_XID, "stop_node"), b"")
    offset = log_size(node)
    rn = RunningNode(node)
    try:
        rn.wait_line("✓ Ready to execute tasks")
        wait_for(alive_while(rn, lambda: log_since(node, offset).count(STALE) >= burst), 30,
                 what=lambda: f"{burst} stale stop_nodes ignored; "
                              f"{log_since(node, offset).count(STALE)} so far")
        wait_for(alive_while(rn, lambda: MARKER_BACK in log_since(node, offset)), 30,
                 what="the session marker to come back")
        n0 = len(observer.on("manager/set_system_summary"))
        wait_for(alive_while(rn, lambda: len(observer.on("manager/set_system_summary")) > n0 + 1),
                 10, what="heartbeats after the stale stop_nodes")
        assert log_since(node, offset).count(STALE) == burst
        # A stop_node sent to this run still stops it.
        observer.publish(command_topic(DEFAULT_XID, "stop_node"), b"")
        assert rn.wait(30) == 0
        assert "Received stop_node from the manager, stopping node..." in rn.out
    finally:
        assert clean_exit(rn) == 0
    # and the start after that one is not stopped either (nothing stale is left)
    offset = log_size(node)
    rn = RunningNode(node)
    try:
        rn.wait_line("✓ Ready to execute tasks")
        wait_for(alive_while(rn, lambda: MARKER_BACK in log_since(node, offset)), 30,
                 what="the session marker to come back")
        assert STALE not in log_since(node, offset)
    finally:
        assert clean_exit(rn) == 0


def test_stop_node_naming_a_run(node, manager, broker):  # noqa: F811
    marker_topic = command_topic(DEFAULT_XID, "node_session_marker")
    obs = Observer(broker, client_id="runs", subscribe=("manager/#", marker_topic))
    rn = start_default(node, manager)
    try:
        rn.wait_line("✓ Ready to execute tasks")
        # A new session: nothing kept, nothing stale; the marker still announces the run.
        run_id = wait_for(lambda: obs.on(marker_topic), 10, what="the session marker")[-1][0]
        assert re.fullmatch(rb"[0-9a-f]{32}", run_id)
        n0 = len(obs.on("manager/set_system_summary"))
        wait_for(alive_while(rn, lambda: len(obs.on("manager/set_system_summary")) > n0), 10,
                 what="a heartbeat")
        # The marker is the node's own: never reported as an unknown command.
        assert not manager.named("SendError")
        # A stop_node naming another run is stale, whenever it comes.
        obs.publish(command_topic(DEFAULT_XID, "stop_node"), b"0123456789abcdef" * 2)
        wait_for(alive_while(rn, lambda: STALE in log_of(node).read_text()), 10,
                 what="the stop_node for another run to be ignored")
        n0 = len(obs.on("manager/set_system_summary"))
        wait_for(alive_while(rn, lambda: len(obs.on("manager/set_system_summary")) > n0 + 1), 10,
                 what="heartbeats after it")
        obs.publish(command_topic(DEFAULT_XID, "stop_node"), run_id)
        assert rn.wait(30) == 0
    finally:
        obs.close()
        assert clean_exit(rn) == 0


def test_marker_forbidden_by_the_broker_is_given_up_on(node, tmp_path):
    # An ACL that lets the node read its commands but not publish on them: the marker never
    # comes back; the node stops waiting for it (bounded) and a stop_node then counts.
    acl = tmp_path / "acl"
    acl.write_text("topic read manta/#\ntopic readwrite manager/#\n\n"
                   "user commander\ntopic readwrite manta/#\ntopic readwrite manager/#\n")
    b = Broker(tmp_path / "acl-broker", extra_conf=f"acl_file {acl}\n").start()
    m = FakeManager(b, token=TOKEN).start()
    import paho.mqtt.client as mqtt
    cmd = mqtt.Client(client_id="commander", clean_session=True)
    cmd.username_pw_set("commander")
    cmd.connect(b.host, b.port, keepalive=30)
    cmd.loop_start()
    rn = None
    try:
        run_once(node, m)  # the session exists: the next start waits for its marker
        rn = RunningNode(node)
        rn.wait_line("✓ Ready to execute tasks")
        wait_for(alive_while(rn, lambda: "did not come back" in log_of(node).read_text()), 40,
                 what="the node to give up on its session marker")
        assert MARKER_BACK not in log_of(node).read_text()
        cmd.publish(command_topic(DEFAULT_XID, "stop_node"), b"", qos=1).wait_for_publish(10)
        assert rn.wait(30) == 0
    finally:
        cmd.loop_stop()
        cmd.disconnect()
        if rn is not None:
            assert clean_exit(rn) == 0
        m.stop()
        b.stop()


def test_deploy_task_queued_while_stopped_runs_after_start(node, manager, observer):
    run_once(node, manager)
    job = module("def main():\n    print('queued-deploy-ran', flush=True)\n")
    send(observer, "deploy_task", mqtt_task(7, job))
    send(observer, "collect_information", b"set_node_status")
    rn = RunningNode(node)
    try:
        rn.wait_line("✓ Ready to execute tasks")
        _, text = wait_for(alive_while(rn, lambda: logs_of(manager, 7)), 30,
                           what="the queued task's logs")[0]
        assert "queued-deploy-ran" in text
        st = updates(observer, 7)
        assert st[:2] == [tasks_pb2.PENDING, tasks_pb2.RUNNING], st
        assert manager.wait_call("SetNodeStatus", timeout=10)  # the command queued after it too
    finally:
        assert clean_exit(rn) == 0


# ---- item 5: a FIFO in a dataset ----------------------------------------------------------------

@pytest.fixture
def fifo_world(node, manager, observer, tmp_path):
    data = tmp_path / "data"
    imgs = data / "imgs"
    imgs.mkdir(parents=True)
    (imgs / "a.txt").write_text("alpha\nbeta\n")
    os.mkfifo(imgs / "fifo")
    (data / "pipe.bin").write_bytes(b"soon a FIFO")
    blob = os.urandom(100_000)
    (data / "blob.bin").write_bytes(blob)
    maps = {"imgs": imgs, "pipe": data / "pipe.bin", "blob": data / "blob.bin"}
    rn = start_default(node, manager, extra="[datasets]\nmappings = { " +
                       ", ".join(f'{k} = "{v}"' for k, v in maps.items()) + " }\n")
    ch = None
    try:
        rn.wait_line("✓ Ready to execute tasks")
        port = wait_for(lambda: re.search(r"Light service listening on 127\.0\.0\.1:([0-9]+)",
                                          log_of(node).read_text()), 10,
                        what="the light port").group(1)
        send(observer, "deploy_task", mqtt_task(1, sleeper(600)))  # a task of this node
        wait_for(alive_while(rn, lambda: tasks_pb2.RUNNING in updates(observer, 1)), 30,
                 what="the task running")
        # The file dataset was a regular file at the scan; it becomes a FIFO now.
        os.unlink(data / "pipe.bin")
        os.mkfifo(data / "pipe.bin")
        ch = grpc.insecure_channel(f"127.0.0.1:{port}")
        yield client(ch, "node.light_service.Local"), blob
    finally:
        if ch is not None:
            ch.close()
        assert clean_exit(rn) == 0


def test_fifo_in_a_dataset_is_refused_at_once_and_locks_nothing(fifo_world):
    local, blob = fifo_world
    calls = [lambda: local.ReadFileLines(text_req("imgs", "fifo"), timeout=TIMEOUT),
             lambda: local.GetBinaryData(dreq("pipe"), timeout=TIMEOUT)]
    for i in range(10):  # more than the task's 8 slots
        code, msg = error_of(calls[i % 2])
        # answered (not a deadline), with a status the SDK does not retry
        assert code == grpc.StatusCode.FAILED_PRECONDITION, (i, code, msg)
        assert "FIFO" in msg and "not a regular file" in msg, msg
    # the task can still make other calls
    assert lines(local, text_req("imgs", "a.txt")) == ["alpha\n", "beta\n"]
    assert b"".join(c.content for c in local.GetBinaryData(dreq("blob"), timeout=TIMEOUT)) == blob
    assert local.Exists(dirreq("imgs", "fifo"), timeout=TIMEOUT).value is True
    names = {p.value: p.is_file for p in local.ListDir(dirreq("imgs"), timeout=TIMEOUT).paths}
    assert names == {"a.txt": True, "fifo": False}


def test_config_file_that_is_a_fifo_is_refused_at_once(node, tmp_path):
    # Configuration files, certificates and token secrets are read with fs_read_file: a FIFO
    # without a writer used to block the reader for ever.
    fifo = tmp_path / "site.toml"
    os.mkfifo(fifo)
    p = node.run("config", "init", str(fifo), timeout=30)
    assert p.returncode == 1
    assert "FIFO (named pipe), not a regular file" in p.stderr, p.stderr


# ---- numbers parsed into narrower types ---------------------------------------------------------

@pytest.mark.parametrize("count", ["99999999999999999999", "1001"])
def test_cluster_count_out_of_range_is_refused(node, count):
    p = node.run("cluster", "start", count, "--config", "x", "--yes", timeout=30)
    assert p.returncode == 1
    assert "Node count must be at most 1000" in p.stderr, p.stderr
