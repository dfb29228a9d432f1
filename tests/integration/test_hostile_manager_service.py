"""manta_manager's node service against hostile token holders (issue 16, items 7 and 10).

7: one token's hanging AddTaskLogs streams must not take the threads every node needs: each
   node identity may have 8 calls in progress (the 9th is refused with RESOURCE_EXHAUSTED
   before anything is read), and a call that brings nothing for `call_stall_timeout` ends.
10: a node token acts only for its own node: the node id of its alias, or ids it registered
   first (kept in the store, so across a restart).

The clients are plain grpcio calls with tokens from `manta_manager token create`; the node ids
of the aliases "node-1" and "default" are the ones manta_node derives (test_config_cli.py)."""
import random
import struct
import subprocess
import threading
import time
import zlib

import grpc
import pytest

from manager_env import LocalSwarm
from pbgen import client, pb
from wire_env import wait_for

system_pb2 = pb("common.system_pb2")
info_pb2 = pb("common.informations_pb2")
tasks_pb2 = pb("common.tasks_pb2")
results_pb2 = pb("common.results_pb2")

ALPHA, ALPHA_ID = "node-1", 0xE2BD61640F2008E1CDA87A69DD0EC7DF
BETA, BETA_ID = "default", 0xF78761CF8C3621E851097DFF9A4B0463
SWARM_ID, TASK_ID = 0x1234, 0x5678
NODE_CALLS = 8  # node_service.c: calls in progress per node
THREADS = 64    # node_service.c: threads of the node service


def pair(i):
    return system_pb2.PairId(head=i >> 64, tail=i & (2**64 - 1))


def xid(i):
    h = format(i, "x")
    return h if len(h) == 32 else "0" + h


def log_msg(node_id, text=b"hello from a task\n"):
    """One Logs message: the 52-byte task-log header, then zlib (tasklog.h)."""
    head = struct.pack("<6QHH", SWARM_ID >> 64, SWARM_ID & (2**64 - 1), node_id >> 64,
                       node_id & (2**64 - 1), TASK_ID >> 64, TASK_ID & (2**64 - 1), 0, 0)
    return system_pb2.Logs(content=head + zlib.compress(text))


def hanging(msgs, release, limit=90.0):
    """A request stream: msgs, then silence until `release` is set (at most `limit` s)."""
    def gen():
        yield from msgs
        release.wait(limit)
    return gen()


def code_of(fut, timeout):
    """The status of a call future: (code, details), or ("still running", why) on timeout."""
    try:
        fut.result(timeout=timeout)
        return grpc.StatusCode.OK, ""
    except grpc.FutureTimeoutError:
        return "still running", f"the call had not ended after {timeout} s"
    except grpc.RpcError as e:
        return e.code(), e.details() or ""


class Service:
    """The manager (serve) with a broker and no nodes, and a grpc client for its node service."""

    def __init__(self, tmp_path, node_bin, config=""):
        self.sw = LocalSwarm(tmp_path, node_bin, nodes=0)
        self.config = tmp_path / "manager.toml"
        self.config.write_text(config)
        self.tokens = {}
        self.channel = None
        self.start()

    def start(self):
        self.sw.start_serve("--config", str(self.config))
        self.channel = grpc.insecure_channel(f"127.0.0.1:{self.sw.port}")
        self.node = client(self.channel, "node.node_service.Node")

    def stop(self):
        """Stop the manager; its output must hold no sanitizer report."""
        self.channel.close()
        self.sw.proc.terminate()
        out, _ = self.sw.proc.communicate(timeout=60)
        assert self.sw.proc.returncode not in (86, 87), out
        assert "ERROR: AddressSanitizer" not in out and "runtime error:" not in out, out
        return out

    def restart(self):
        self.stop()
        self.start()

    def token(self, alias):
        if alias not in self.tokens:
            self.tokens[alias] = self.sw.manager("token", "create", "--node",
                                                 alias).stdout.strip()
        return self.tokens[alias]

    def md(self, alias):
        return [("authorization", self.token(alias))]

    def register(self, alias, node_id, hostname, timeout=20):
        ov = info_pb2.NodeOverview(node_id=pair(node_id),
                                   platform_info=info_pb2.PlatformInfo(
                                       system="Linux", release="6", machine="x86_64",
                                       hostname=hostname))
        return self.node.RegisterNode(ov, metadata=self.md(alias), timeout=timeout)

    def nodes(self):
        return {n["id"]: n for n in self.sw.admin_json("nodes")["nodes"]}

    def close(self):
        self.channel.close()
        self.sw.close()


@pytest.fixture
def service(tmp_path, node_bin):
    made = []

    def make(config=""):
        s = Service(tmp_path, node_bin, config)
        made.append(s)
        return s
    try:
        yield make
        for s in made:
            s.stop()
    finally:
        for s in made:
            s.close()


def denied(call):
    with pytest.raises(grpc.RpcError) as e:
        call()
    assert e.value.code() == grpc.StatusCode.PERMISSION_DENIED, (e.value.code(), e.value.details())
    return e.value.details()


# ---- item 7: one token cannot stall everyone's calls ------------------------------------------


def test_hanging_streams_of_one_token_do_not_stall_the_others(service):
    s = service()  # call_stall_timeout at its default (120 s): the streams stay open
    release = threading.Event()
    futs = []
    try:
        # More streams than the node service has threads, each one message and then silence.
        for _ in range(THREADS + 6):
            futs.append(s.node.AddTaskLogs.future(hanging([log_msg(ALPHA_ID)], release),
                                                  metadata=s.md(ALPHA), timeout=300))
        # All but NODE_CALLS are refused at once, without waiting for the others to end (a
        # refusal means the cap is full: the streams let in never end by themselves).
        refused = THREADS + 6 - NODE_CALLS
        end = time.monotonic() + 30
        while time.monotonic() < end and sum(f.done() for f in futs) < refused:
            time.sleep(0.05)
        # Another node is served promptly: availability, registration, heartbeat (before the
        # fix these waited behind the streams for a thread, and timed out).
        assert s.node.IsAvailable(system_pb2.Empty(), metadata=s.md(BETA), timeout=10) is not None
        reg = s.register(BETA, BETA_ID, "host-b", timeout=10)
        assert reg.mqtt_topics == [f"manta/nodes/{xid(BETA_ID)}/+"]
        s.node.Ping(info_pb2.Ping(node_id=pair(BETA_ID)), metadata=s.md(BETA), timeout=10)
        done = [f for f in futs if f.done()]
        assert len(done) == refused, f"{len(done)} of {len(futs)} streams ended, not {refused}"
        for f in done:
            code, details = code_of(f, 0)
            assert code == grpc.StatusCode.RESOURCE_EXHAUSTED, (code, details)
            assert f"{NODE_CALLS} calls in progress" in details, details
            assert "nothing of this call was read" in details, details
        # The 9th concurrent call of the greedy token is refused, whatever its method.
        ninth = s.node.AddTaskLogs.future(hanging([log_msg(ALPHA_ID)], release),
                                          metadata=s.md(ALPHA), timeout=30)
        code, details = code_of(ninth, 20)
        assert code == grpc.StatusCode.RESOURCE_EXHAUSTED, (code, details)
        with pytest.raises(grpc.RpcError) as e:
            s.node.IsAvailable(system_pb2.Empty(), metadata=s.md(ALPHA), timeout=10)
        assert e.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        # The 8 that were let in end normally once their client half-closes, and the token
        # is served again.
        release.set()
        held = [f for f in futs if f not in done]
        for f in held:
            assert code_of(f, 30)[0] == grpc.StatusCode.OK
        wait_for(lambda: _available(s, ALPHA), timeout=10, what="the greedy token served again")
    finally:
        release.set()
        for f in futs:
            f.cancel()


def _available(s, alias):
    try:
        s.node.IsAvailable(system_pb2.Empty(), metadata=s.md(alias), timeout=5)
        return True
    except grpc.RpcError as e:
        assert e.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, e
        return False


def test_stalled_stream_ends_and_frees_its_slot(service):
    s = service("call_stall_timeout = 2\n")
    release = threading.Event()
    futs = []
    try:
        t0 = time.monotonic()
        futs = [s.node.AddTaskLogs.future(hanging([log_msg(ALPHA_ID)], release),
                                          metadata=s.md(ALPHA), timeout=120)
                for _ in range(NODE_CALLS)]
        # the manager ends each of them after 2 s without a message (not the 120 s deadline):
        # all NODE_CALLS were let in (nothing else of this token runs), none is refused
        for f in futs:
            code, details = code_of(f, 60)
            assert code == grpc.StatusCode.DEADLINE_EXCEEDED, (code, details)
            assert "call_stall_timeout" in details, details
        assert time.monotonic() - t0 < 100
        # their slots are free again: a full set of calls is let in
        for _ in range(NODE_CALLS + 1):
            s.node.IsAvailable(system_pb2.Empty(), metadata=s.md(ALPHA), timeout=10)
        # a stream that keeps moving lives longer than the limit: it is per message
        def steady():
            for _ in range(8):
                yield log_msg(ALPHA_ID)
                time.sleep(0.5)
        s.node.AddTaskLogs(steady(), metadata=s.md(ALPHA), timeout=60)
    finally:
        release.set()
        for f in futs:
            f.cancel()


def test_stall_timeout_is_a_bounded_config_key(service, tmp_path):
    s = service()
    p = s.sw.manager("config", "show", "--config", str(s.config))
    assert "call_stall_timeout = 120" in p.stdout
    bad = tmp_path / "bad.toml"
    bad.write_text("call_stall_timeout = 0\n")
    p = subprocess.run([s.sw.mgr, "config", "show", "--config", str(bad)], capture_output=True,
                       text=True, env=s.sw.env, timeout=30)
    assert p.returncode not in (86, 87), p.stderr  # no sanitizer report (a leak, before)
    assert p.returncode == 1 and "`call_stall_timeout` is 0; it must be between 1 and 86400" in \
        p.stderr, p.stderr


# ---- item 10: a node token acts only for its own node -----------------------------------------


def test_token_acts_only_for_its_own_node(service):
    s = service()
    s.register(ALPHA, ALPHA_ID, "host-a")
    before = s.nodes()[xid(ALPHA_ID)]
    assert before["alias"] == ALPHA and before["hostname"] == "host-a" and before["connected"]

    beta = s.md(BETA)
    a = pair(ALPHA_ID)
    details = denied(lambda: s.node.SetNodeStatus(info_pb2.NodeStatus(
        node_id=a, status=info_pb2.DISCONNECTED), metadata=beta, timeout=10))
    assert xid(ALPHA_ID) in details and s.token(BETA) not in details, details
    details = denied(lambda: s.register(BETA, ALPHA_ID, "intruder"))
    assert xid(ALPHA_ID) in details and "already registered" in details, details
    assert s.token(BETA) not in details and s.token(ALPHA) not in details
    denied(lambda: s.node.Ping(info_pb2.Ping(node_id=a), metadata=beta, timeout=10))
    denied(lambda: s.node.SetSystemSummary(info_pb2.SetSystemSummaryRequest(node_id=a),
                                           metadata=beta, timeout=10))
    denied(lambda: s.node.SetOverviews(info_pb2.DatasetOverviews(node_id=a), metadata=beta,
                                       timeout=10))
    denied(lambda: s.node.SendError(system_pb2.Error(node_id=a, content="x"), metadata=beta,
                                    timeout=10))
    denied(lambda: s.node.UpdateTask(tasks_pb2.TaskUpdate(node_id=a), metadata=beta,
                                     timeout=10))
    denied(lambda: s.node.StopSwarm(tasks_pb2.TaskUpdate(swarm_id=pair(SWARM_ID), node_id=a),
                                    metadata=beta, timeout=10))
    denied(lambda: s.node.AddTaskLogs(iter([log_msg(ALPHA_ID)]), metadata=beta, timeout=10))
    denied(lambda: s.node.AddTaskResult(iter([results_pb2.Result(
        swarm_id=pair(SWARM_ID), task_id=pair(TASK_ID), node_id=a, tag="t", data=b"v")]),
        metadata=beta, timeout=10))

    # A is listed as before: its alias and hostname, still connected.
    after = s.nodes()[xid(ALPHA_ID)]
    assert after["alias"] == ALPHA and after["hostname"] == "host-a" and after["connected"], after
    # and A's own token still acts for it
    s.node.Ping(info_pb2.Ping(node_id=a), metadata=s.md(ALPHA), timeout=10)
    # B acts for its own node, and for a node id nobody holds once it registered it
    s.register(BETA, BETA_ID, "host-b")
    other = random.getrandbits(127)
    denied(lambda: s.node.Ping(info_pb2.Ping(node_id=pair(other)), metadata=beta, timeout=10))
    s.register(BETA, other, "host-b2")
    s.node.Ping(info_pb2.Ping(node_id=pair(other)), metadata=beta, timeout=10)
    denied(lambda: s.node.Ping(info_pb2.Ping(node_id=pair(other)), metadata=s.md(ALPHA),
                               timeout=10))
    nodes = s.nodes()
    assert nodes[xid(other)]["alias"] == BETA and nodes[xid(ALPHA_ID)]["alias"] == ALPHA


def test_natural_owner_takes_its_id_back(service):
    s = service()
    # B registers A's id before A ever did (nobody held it)...
    s.register(BETA, ALPHA_ID, "squatter")
    # ...A's own token takes it back, and B may no longer act for it
    s.register(ALPHA, ALPHA_ID, "host-a")
    denied(lambda: s.node.Ping(info_pb2.Ping(node_id=pair(ALPHA_ID)), metadata=s.md(BETA),
                               timeout=10))
    denied(lambda: s.register(BETA, ALPHA_ID, "squatter"))
    n = s.nodes()[xid(ALPHA_ID)]
    assert n["alias"] == ALPHA and n["hostname"] == "host-a", n


def test_bindings_survive_a_manager_restart(service):
    s = service()
    other = random.getrandbits(127)  # an id of no alias: bound by its first registration
    s.register(ALPHA, other, "host-x")
    s.register(ALPHA, ALPHA_ID, "host-a")
    s.restart()
    denied(lambda: s.register(BETA, other, "intruder"))
    denied(lambda: s.register(BETA, ALPHA_ID, "intruder"))
    denied(lambda: s.node.SetNodeStatus(info_pb2.NodeStatus(
        node_id=pair(other), status=info_pb2.DISCONNECTED), metadata=s.md(BETA), timeout=10))
    # the owner carries on without registering again
    s.node.Ping(info_pb2.Ping(node_id=pair(other)), metadata=s.md(ALPHA), timeout=10)
    s.register(ALPHA, other, "host-x")
    assert s.nodes()[xid(other)]["alias"] == ALPHA


# ---- text and numbers from nodes -------------------------------------------------------------


def test_text_and_numbers_from_nodes(service):
    s = service()
    # 126 bytes + "é" do not fit the 127 bytes kept: cut before the "é", not inside it (a cut
    # inside made the node vanish from `manta_manager nodes --json`)
    s.register(ALPHA, ALPHA_ID, "h" * 126 + "\u00e9")
    assert s.nodes()[xid(ALPHA_ID)]["hostname"] == "h" * 126
    # control characters cannot forge log lines or listing rows
    s.register(ALPHA, ALPHA_ID, "host\nforged\x1b[31m")
    assert s.nodes()[xid(ALPHA_ID)]["hostname"] == "host?forged?[31m"
    # an error id the store cannot keep is refused, not wrapped to a negative number
    with pytest.raises(grpc.RpcError) as e:
        s.node.SendError(system_pb2.Error(node_id=pair(ALPHA_ID), error_id=2**31, content="x"),
                         metadata=s.md(ALPHA), timeout=10)
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT, e.value.details()
    # a log timestamp whose milliseconds overflow int64 is replaced by the time of arrival
    lg = log_msg(ALPHA_ID)
    lg.timestamp.seconds = 2**62
    s.node.AddTaskLogs(iter([lg]), metadata=s.md(ALPHA), timeout=10)
    assert s.node.IsAvailable(system_pb2.Empty(), metadata=s.md(ALPHA), timeout=10) is not None
