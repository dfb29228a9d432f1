"""The light service's World half: the six RPCs a running task calls, each relayed to the
manager (reference-node.md 12.2/12.3, task-contract.md 5, 7, 10). A long sleeper task is deployed
over MQTT so its (swarm, task) is known; the test then plays the task's SDK against the node's
light port while a fake manager records what the node relays."""
import hashlib
import os
import re
import signal
import socket
import subprocess
import threading
import time
from concurrent import futures

import grpc
import pytest

import pbgen
from test_node_wire import TOKEN
from test_tasks_process import NODE, NODE_XID, SWARM, send, sleeper, updates
from wire_env import Broker, FakeManager, Observer, RunningNode, node_config, system_pb2, tasks_pb2, \
    wait_for

lpb = pbgen.pb("node.light_service_pb2")
results_pb2 = pbgen.pb("common.results_pb2")

TASK = 7
ITERATION = 3
CIRCULAR = 2
MIB = 1 << 20
OPTS = [("grpc.max_receive_message_length", -1), ("grpc.max_send_message_length", -1)]


def pair(t):
    return system_pb2.PairId(head=t[0], tail=t[1])


SW = pair(SWARM)
TK = pair((0, TASK))
OTHER = pair((0, 999))  # a task this node does not know


def block(i, n):
    return bytes([i % 251]) * n


def varint(n):
    out = bytearray()
    while True:
        b, n = n & 0x7F, n >> 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def wire_fields(buf):
    """The top-level fields of an encoded message, without copying it: a list of
    (number, start of the field, start of its value, end of its value)."""
    out, pos, n = [], 0, len(buf)

    def read_varint():
        nonlocal pos
        v = shift = 0
        while True:
            b = buf[pos]
            pos += 1
            v |= (b & 0x7F) << shift
            shift += 7
            if b < 0x80:
                return v

    while pos < n:
        start = pos
        key = read_varint()
        num, wt = key >> 3, key & 7
        vstart = pos
        if wt == 0:
            read_varint()
        elif wt == 1:
            pos += 8
        elif wt == 2:
            ln = read_varint()
            vstart = pos
            pos += ln
        elif wt == 5:
            pos += 4
        else:
            raise ValueError(f"wire type {wt}")
        assert pos <= n, "truncated message"
        out.append((num, start, vstart, pos))
    return out


def split_bytes_field(buf, number):
    """(the message without field `number`, a memoryview of that field's last value or None)."""
    view = memoryview(buf)
    fields = wire_fields(view)
    rest = b"".join(bytes(view[s:e]) for num, s, _, e in fields if num != number)
    data = [view[vs:e] for num, _, vs, e in fields if num == number]
    return rest, (data[-1] if data else None)


class WorldManager(FakeManager):
    """FakeManager plus the six World relays. `fail` = (code, text) makes every World relay fail
    before any data; `midfail` makes streams fail (UNAVAILABLE) after the first chunk.

    Large values are never copied here: SetGlobal reads the raw messages and hashes the value in
    place; GetGlobal serves `whole` values as stored (one serialised GlobalValue) and `big`
    values generated chunk by chunk."""

    def __init__(self, broker, workers=8, **kw):
        super().__init__(broker, **kw)
        self.workers = workers
        self.fail = None
        self.midfail = False
        self.globals = {}          # tag -> bytes: sent in 4 MiB GlobalValues
        self.whole = {}            # tag -> one serialised GlobalValue, sent as is
        self.big = {}              # tag -> (chunks, chunk size): generated on the fly
        self.hold = threading.Event()  # GetGlobal of tag "hold" waits for it (at most 60 s)
        self.holding = 0           # GetGlobal calls waiting for `hold` now
        self.results = []          # ChunkResultValues returned by GetTaskResult
        self.raw_queries = []      # raw ResultQuery bytes as received
        self.received = {}         # tag -> (messages, bytes, sha256) of the last SetGlobal
        self.keep_sets = False     # also keep what SetGlobal receives in `globals` (benchmarks)
        self.hang_before = 0       # GetGlobal: seconds of silence before the first chunk
        self.hang_after = 0        # GetGlobal: seconds of silence after the first chunk
        self.stop_reading = 0      # SetGlobal: seconds before it reads anything

    def _maybe_fail(self, context):
        if self.fail:
            context.abort(self.fail[0], self.fail[1])

    def GetTaskResult(self, request, context):
        self._record("GetTaskResult", request, context)
        self._maybe_fail(context)
        for i, r in enumerate(self.results):
            yield r
            if self.midfail:
                context.abort(grpc.StatusCode.UNAVAILABLE, "manager lost the database")

    def AddTaskResult(self, request_iterator, context):
        msgs = []
        for m in request_iterator:
            msgs.append(m)
            if self.midfail:
                self._record("AddTaskResult", msgs, context)
                context.abort(grpc.StatusCode.UNAVAILABLE, "manager lost the database")
        self._record("AddTaskResult", msgs, context)
        self._maybe_fail(context)
        return system_pb2.Ok()

    def GetGlobal(self, request, context):
        self._record("GetGlobal", request, context)
        self._maybe_fail(context)
        if request.tag == "hold":
            with self.lock:
                self.holding += 1
            try:
                self.hold.wait(60)
            finally:
                with self.lock:
                    self.holding -= 1
            yield results_pb2.GlobalValue(data=b"held")
            return
        if request.tag in self.whole:
            yield self.whole[request.tag]
            return
        if request.tag in self.big:
            n, size = self.big[request.tag]
            for i in range(n):
                yield results_pb2.GlobalValue(data=block(i, size))
            return
        data = self.globals.get(request.tag, b"")
        time.sleep(self.hang_before)
        for off in range(0, len(data), 4 * MIB):
            yield results_pb2.GlobalValue(data=data[off:off + 4 * MIB])
            time.sleep(self.hang_after)
            if self.midfail:
                context.abort(grpc.StatusCode.UNAVAILABLE, "manager lost the database")

    def SetGlobal(self, request_iterator, context):
        # Raw GlobalUpdate messages (see start): the value is hashed where grpcio put it.
        count, total, h, first = 0, 0, hashlib.sha256(), None
        kept = []
        if self.stop_reading:
            time.sleep(self.stop_reading)  # a peer that stops reading: flow control fills up
        for raw in request_iterator:
            rest, data = split_bytes_field(raw, 3)
            if first is None:
                first = results_pb2.GlobalUpdate.FromString(rest)
            count += 1
            if data is not None:
                total += len(data)
                h.update(data)
                if self.keep_sets:
                    kept.append(bytes(data))
            del raw, data
            if self.midfail:
                self._record("SetGlobal", (first, count, total), context)
                context.abort(grpc.StatusCode.UNAVAILABLE, "manager lost the database")
        self._record("SetGlobal", (first, count, total), context)
        self._maybe_fail(context)
        if first is not None:
            self.received[first.tag] = (count, total, h.hexdigest())
            if self.keep_sets:
                self.globals[first.tag] = b"".join(kept)
        return system_pb2.Ok()

    def StopSwarm(self, request, context):
        self._record("StopSwarm", request, context)
        self._maybe_fail(context)
        return system_pb2.Ok()

    def ScheduleTask(self, request, context):
        self._record("ScheduleTask", request, context)
        self._maybe_fail(context)
        return system_pb2.Ok()

    def start(self, port=0, credentials=None):
        # Also keep the raw bytes of every ResultQuery (grpcio only hands the parsed message).
        def raw_query(request, context):
            self.raw_queries.append(request)
            q = results_pb2.ResultQuery.FromString(request)
            yield from self.GetTaskResult(q, context)

        def serialize_global(v):
            return v if isinstance(v, bytes) else v.SerializeToString()

        raw = grpc.method_handlers_generic_handler("node.node_service.Node", {
            "GetTaskResult": grpc.unary_stream_rpc_method_handler(
                raw_query, request_deserializer=None,
                response_serializer=results_pb2.ChunkResultValues.SerializeToString),
            "GetGlobal": grpc.unary_stream_rpc_method_handler(
                self.GetGlobal, request_deserializer=results_pb2.GlobalTag.FromString,
                response_serializer=serialize_global),
            "SetGlobal": grpc.stream_unary_rpc_method_handler(
                self.SetGlobal, request_deserializer=None,
                response_serializer=system_pb2.Ok.SerializeToString)})
        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=self.workers),
                                  options=OPTS)
        self.server.add_generic_rpc_handlers([raw, pbgen.servicer("node.node_service.Node", self)])
        self.port = self.server.add_insecure_port(f"127.0.0.1:{port}")
        self.server.start()
        return self


def light_port(rn, log):
    """The light service's port, from the node's output or log."""
    def port():
        text = "\n".join(rn.out + rn.err) + (log.read_text() if log.exists() else "")
        mm = re.search(r"Light service listening on 127\.0\.0\.1:(\d+)", text)
        return mm and int(mm.group(1))
    return wait_for(port, 10, what="the light port")


def stop_all(ch, rn, o, m, b):
    """Close the task's channel, stop the node (it must exit 0), the observer, manager, broker."""
    if ch is not None:
        ch.close()
    rn.signal(signal.SIGTERM)
    try:
        assert rn.wait(60) == 0
    finally:
        rn.kill()
        o.close()
        m.stop()
        b.stop()


@pytest.fixture
def env(node, tmp_path, request):
    """A node serving one running task. The node's rpc_timeout (the World relay's deadline per
    message to the manager) is the tests' 5 s unless a test asks for another with
    @pytest.mark.parametrize("env", [{"rpc_timeout": N}], indirect=True)."""
    rpc_timeout = getattr(request, "param", {}).get("rpc_timeout", 5)
    # Under AddressSanitizer freed chunks sit in a 256 MiB quarantine, which would hide whether
    # the node's memory stays flat: keep it small (no effect on a plain build).
    asan = node.env.get("ASAN_OPTIONS", "")
    node.env["ASAN_OPTIONS"] = (asan + ":" if asan else "") + "quarantine_size_mb=8"
    b = Broker(tmp_path / "broker").start()
    m = WorldManager(b, token=TOKEN).start()
    o = Observer(b)
    node.write_config("default", node_config(TOKEN, m.port).replace(
        "rpc_timeout = 5\n", f"rpc_timeout = {rpc_timeout}\n"))
    rn = RunningNode(node)
    rn.wait_line("✓ Ready to execute tasks")
    ch = None
    try:
        task = tasks_pb2.MqttTask(
            swarm_id=SW, task_id=TK, iteration=ITERATION, circular=CIRCULAR,
            payload=sleeper(300), image="manta-task:bookworm", alias="job", network="None",
            auth_key="None", login_server="None").SerializeToString()
        send(o, "deploy_task", task)
        wait_for(lambda: tasks_pb2.RUNNING in updates(o, TASK), 20, what="the task RUNNING")
        log = node.home / ".manta/logs/nodes/default.log"
        lport = light_port(rn, log)
        ch = grpc.insecure_channel(f"127.0.0.1:{lport}", options=OPTS)
        grpc.channel_ready_future(ch).result(timeout=10)
        w = pbgen.client(ch, "node.light_service.World")
        w.channel = ch
        w.port = lport
        yield rn, m, w
    finally:
        stop_all(ch, rn, o, m, b)


def n_calls(m, name):
    return len(m.named(name))


def test_every_rpc_is_relayed_with_the_node_fields(env):
    rn, m, w = env
    # GetTaskResult: the SDK's default size=-1 goes on as the 10-byte varint of 2^64-1.
    other = pair((0xAA, 0xBB))
    m.results = [results_pb2.ChunkResultValues(node_id=pair(NODE), data=b"ab"),
                 results_pb2.ChunkResultValues(node_id=other, data=b"xyz"),
                 results_pb2.ChunkResultValues(node_id=pair(NODE), data=b"cd")]
    got = list(w.GetTaskResult(lpb.LightResultQuery(task_id=TK, swarm_id=SW, tag="metrics",
                                                    size=-1, method=1), timeout=20))
    assert [(g.node_id.tail, g.data) for g in got] == [(NODE[1], b"ab"), (0xBB, b"xyz"),
                                                       (NODE[1], b"cd")]
    q = m.named("GetTaskResult")[-1].request
    assert (q.swarm_id, q.task_id, q.node_id) == (SW, TK, pair(NODE))
    assert q.iteration == ITERATION and q.tag == "metrics" and q.method == 1
    assert q.size == 4294967295
    assert b"\x30" + b"\xff" * 9 + b"\x01" in m.raw_queries[-1]
    assert m.named("GetTaskResult")[-1].metadata["authorization"] == TOKEN

    # AddTaskResult: one Result per chunk, with this node's id and the task's iteration.
    chunks = [lpb.LightResult(task_id=TK, swarm_id=SW, tag="model", data=block(i, 1000))
              for i in range(3)]
    ok = w.AddTaskResult(iter(chunks), timeout=20)
    assert isinstance(ok, system_pb2.Ok)
    sent = m.named("AddTaskResult")[-1].request
    assert len(sent) == 3
    for i, r in enumerate(sent):
        assert (r.swarm_id, r.task_id, r.node_id) == (SW, TK, pair(NODE))
        assert r.iteration == ITERATION and r.tag == "model" and r.data == block(i, 1000)

    # SetGlobal: task_id dropped; GetGlobal: GlobalTag{swarm, tag}, chunks relayed.
    value = b"".join(block(i, 300) for i in range(4))
    w.SetGlobal(iter([lpb.SetGlobalRequest(swarm_id=SW, task_id=TK, tag="hp", data=value[:600]),
                      lpb.SetGlobalRequest(swarm_id=SW, task_id=TK, tag="hp", data=value[600:])]),
                timeout=20)
    first, count, total = m.named("SetGlobal")[-1].request
    assert first.swarm_id == SW and first.tag == "hp" and (count, total) == (2, 1200)
    assert m.received["hp"][2] == hashlib.sha256(value).hexdigest()
    m.globals["hp"] = value
    got = list(w.GetGlobal(lpb.GetGlobalRequest(swarm_id=SW, task_id=TK, tag="hp"), timeout=20))
    assert b"".join(g.data for g in got) == value
    gt = m.named("GetGlobal")[-1].request
    assert gt.swarm_id == SW and gt.tag == "hp"
    assert gt == results_pb2.GlobalTag(swarm_id=SW, tag="hp")

    # StopSwarm: the task's stored TaskUpdate.
    w.StopSwarm(system_pb2.EnvId(swarm_id=SW, task_id=TK), timeout=20)
    u = m.named("StopSwarm")[-1].request
    assert (u.swarm_id, u.node_id, u.task_id) == (SW, pair(NODE), TK)
    assert (u.iteration, u.circular, u.task_status) == (ITERATION, CIRCULAR, tasks_pb2.RUNNING)

    # ScheduleTask: unchanged.
    ts = tasks_pb2.TaskScheduling(node_ids=[pair(NODE), other], task_id=TK,
                                  task_to_schedule_alias="worker", swarm_id=SW)
    w.ScheduleTask(ts, timeout=20)
    assert m.named("ScheduleTask")[-1].request == ts


def test_values_in_any_field_order(env):
    """The relay rewrites a message around its value in place when the value is its last field
    (as the SDK serialises it) and decodes the whole message otherwise: the manager gets the
    same either way."""
    rn, m, w = env
    set_raw = w.channel.stream_unary("/node.light_service.World/SetGlobal",
                                     request_serializer=None,
                                     response_deserializer=system_pb2.Ok.FromString)
    add_raw = w.channel.stream_unary("/node.light_service.World/AddTaskResult",
                                     request_serializer=None,
                                     response_deserializer=system_pb2.Ok.FromString)
    v1, v2 = os.urandom(5000), os.urandom(70000)

    def value(v):  # field 4 (bytes) of SetGlobalRequest and LightResult
        return b"\x22" + varint(len(v)) + v

    def sg(tag):
        return lpb.SetGlobalRequest(swarm_id=SW, task_id=TK, tag=tag).SerializeToString()

    cut = wire_fields(sg("middle"))[0][3]  # after the first field (swarm_id)
    cases = {
        "last": ([sg("last") + value(v1)], v1),
        "first": ([value(v1) + sg("first")], v1),
        "middle": ([sg("middle")[:cut] + value(v2) + sg("middle")[cut:]], v2),
        "twice": ([sg("twice") + value(v2) + value(v1)], v1),  # the last occurrence counts
        "none": ([sg("none")], b""),
        "empty": ([sg("empty") + b"\x22\x00"], b""),
        "mixed": ([sg("mixed") + value(v1), value(v2) + sg("mixed"), sg("mixed") + value(v1)],
                  v1 + v2 + v1),
    }
    for tag, (msgs, want) in cases.items():
        set_raw(iter(msgs), timeout=20)
        assert m.received[tag] == (len(msgs), len(want), hashlib.sha256(want).hexdigest()), tag

    def lr(tag):
        return lpb.LightResult(task_id=TK, swarm_id=SW, tag=tag).SerializeToString()

    add_raw(iter([lr("r") + value(v2), value(v1) + lr("r"), lr("r")]), timeout=20)
    sent = m.named("AddTaskResult")[-1].request
    assert [r.data for r in sent] == [v2, v1, b""]
    for r in sent:
        assert (r.swarm_id, r.task_id, r.node_id) == (SW, TK, pair(NODE))
        assert r.iteration == ITERATION and r.tag == "r"

    # A value whose length runs past the end of the message: refused, nothing relayed.
    n0 = n_calls(m, "SetGlobal")
    with pytest.raises(grpc.RpcError) as e:
        set_raw(iter([sg("bad") + b"\x22" + varint(100) + b"short"]), timeout=20)
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert n_calls(m, "SetGlobal") == n0


def test_refusals_and_manager_errors(env):
    rn, m, w = env

    def code_of(fn, *a):
        with pytest.raises(grpc.RpcError) as e:
            r = fn(*a, timeout=20)
            if hasattr(r, "__iter__") and not isinstance(r, system_pb2.Ok):
                list(r)
        return e.value.code(), e.value.details()

    # Empty client streams: refused, not forwarded.
    before = (n_calls(m, "AddTaskResult"), n_calls(m, "SetGlobal"))
    assert code_of(w.AddTaskResult, iter([]))[0] == grpc.StatusCode.INVALID_ARGUMENT
    assert code_of(w.SetGlobal, iter([]))[0] == grpc.StatusCode.INVALID_ARGUMENT
    time.sleep(0.3)
    assert (n_calls(m, "AddTaskResult"), n_calls(m, "SetGlobal")) == before

    # Unknown (swarm, task): FAILED_PRECONDITION "RESOURCE_ERROR: ...", nothing forwarded.
    names = ["GetTaskResult", "AddTaskResult", "GetGlobal", "SetGlobal", "StopSwarm",
             "ScheduleTask"]
    before = {n: n_calls(m, n) for n in names}
    calls = [
        (w.GetTaskResult, lpb.LightResultQuery(task_id=OTHER, swarm_id=SW, tag="t", size=-1)),
        (w.AddTaskResult, iter([lpb.LightResult(task_id=OTHER, swarm_id=SW, tag="t", data=b"x")])),
        (w.GetGlobal, lpb.GetGlobalRequest(swarm_id=SW, task_id=OTHER, tag="t")),
        (w.SetGlobal, iter([lpb.SetGlobalRequest(swarm_id=SW, task_id=OTHER, tag="t", data=b"x")])),
        (w.StopSwarm, system_pb2.EnvId(swarm_id=SW, task_id=OTHER)),
        (w.ScheduleTask, tasks_pb2.TaskScheduling(task_id=OTHER, swarm_id=SW)),
        (w.GetGlobal, lpb.GetGlobalRequest(swarm_id=pair((1, 2)), task_id=TK, tag="t")),
    ]
    for fn, req in calls:
        code, details = code_of(fn, req)
        assert code == grpc.StatusCode.FAILED_PRECONDITION, (fn, code, details)
        assert details.startswith("RESOURCE_ERROR: ")
    time.sleep(0.3)
    assert {n: n_calls(m, n) for n in names} == before

    # The manager's status passes through when it fails before any data.
    m.fail = (grpc.StatusCode.PERMISSION_DENIED, "swarm is not yours")
    for fn, req in [
        (w.StopSwarm, system_pb2.EnvId(swarm_id=SW, task_id=TK)),
        (w.ScheduleTask, tasks_pb2.TaskScheduling(task_id=TK, swarm_id=SW)),
        (w.GetGlobal, lpb.GetGlobalRequest(swarm_id=SW, task_id=TK, tag="t")),
        (w.GetTaskResult, lpb.LightResultQuery(task_id=TK, swarm_id=SW, tag="t", size=-1)),
        (w.SetGlobal, iter([lpb.SetGlobalRequest(swarm_id=SW, task_id=TK, tag="t", data=b"x")])),
        (w.AddTaskResult, iter([lpb.LightResult(task_id=TK, swarm_id=SW, tag="t", data=b"x")])),
    ]:
        code, details = code_of(fn, req)
        assert code == grpc.StatusCode.PERMISSION_DENIED, (fn, code, details)
        assert "swarm is not yours" in details
    # A retryable failure before any data: retried (3 attempts), then passed through.
    m.fail = (grpc.StatusCode.UNAVAILABLE, "manager is starting")
    n0 = n_calls(m, "GetGlobal")
    code, details = code_of(w.GetGlobal, lpb.GetGlobalRequest(swarm_id=SW, task_id=TK, tag="t"))
    assert code == grpc.StatusCode.UNAVAILABLE and "manager is starting" in details
    assert n_calls(m, "GetGlobal") == n0 + 3
    m.fail = (grpc.StatusCode.NOT_FOUND, "no such global")
    code, details = code_of(w.GetGlobal, lpb.GetGlobalRequest(swarm_id=SW, task_id=TK, tag="t"))
    assert code == grpc.StatusCode.NOT_FOUND and "no such global" in details
    m.fail = None

    # The manager failing mid-stream: never a retryable status for the task.
    retryable = {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.RESOURCE_EXHAUSTED,
                 grpc.StatusCode.ABORTED, grpc.StatusCode.DEADLINE_EXCEEDED}
    m.midfail = True
    m.globals["g"] = b"q" * (12 * MIB)  # 3 chunks of 4 MiB: fails after the first
    m.results = [results_pb2.ChunkResultValues(node_id=pair(NODE), data=b"a"),
                 results_pb2.ChunkResultValues(node_id=pair(NODE), data=b"b")]
    n_get = n_calls(m, "GetGlobal")
    for fn, req in [
        (w.GetGlobal, lpb.GetGlobalRequest(swarm_id=SW, task_id=TK, tag="g")),
        (w.GetTaskResult, lpb.LightResultQuery(task_id=TK, swarm_id=SW, tag="t", size=-1)),
        (w.SetGlobal, iter([lpb.SetGlobalRequest(swarm_id=SW, task_id=TK, tag="g", data=b"x")
                            for _ in range(5)])),
        (w.AddTaskResult, iter([lpb.LightResult(task_id=TK, swarm_id=SW, tag="g", data=b"x")
                                for _ in range(5)])),
    ]:
        code, details = code_of(fn, req)
        assert code not in retryable and code != grpc.StatusCode.OK, (fn, code, details)
        assert code in (grpc.StatusCode.INTERNAL, grpc.StatusCode.DATA_LOSS), (fn, code)
    assert n_calls(m, "GetGlobal") == n_get + 1  # the node did not retry after data
    m.midfail = False

    # The node is still serving.
    w.StopSwarm(system_pb2.EnvId(swarm_id=SW, task_id=TK), timeout=20)


def test_a_call_the_manager_cancels_is_read_as_the_manager_away(env):
    """A manager that stops cancels the calls it received and had not started (gRPC's server
    shutdown) and those still running when its grace ends: the task sees CANCELLED, which
    neither the SDK nor this runtime repeats, and a scheduler failed in a chaos run (a GetGlobal
    at the moment of the manager's SIGTERM). The node reads CANCELLED it did not ask for as the
    manager being away: UNAVAILABLE, tried again like a call that found no manager (3 attempts
    here, then the task's own retries); after data was relayed, the status the runtime repeats a
    repeatable call on (INTERNAL, "manager failed after data was relayed")."""
    rn, m, w = env

    def code_of(fn, req):
        with pytest.raises(grpc.RpcError) as e:
            r = fn(req, timeout=20)
            if hasattr(r, "__iter__") and not isinstance(r, system_pb2.Ok):
                list(r)
        return e.value.code(), e.value.details()

    m.fail = (grpc.StatusCode.CANCELLED, "Server shutting down")
    for name, fn, req in [
        ("GetGlobal", w.GetGlobal, lpb.GetGlobalRequest(swarm_id=SW, task_id=TK, tag="t")),
        ("GetTaskResult", w.GetTaskResult,
         lpb.LightResultQuery(task_id=TK, swarm_id=SW, tag="t", size=-1)),
        ("ScheduleTask", w.ScheduleTask, tasks_pb2.TaskScheduling(task_id=TK, swarm_id=SW)),
        ("StopSwarm", w.StopSwarm, system_pb2.EnvId(swarm_id=SW, task_id=TK)),
    ]:
        n0 = n_calls(m, name)
        code, details = code_of(fn, req)
        assert code == grpc.StatusCode.UNAVAILABLE, (name, code, details)
        assert "the server cancelled the call" in details, (name, details)
        assert n_calls(m, name) == n0 + 3, name  # the node tried it again itself
    for name, fn, req in [
        ("SetGlobal", w.SetGlobal,
         iter([lpb.SetGlobalRequest(swarm_id=SW, task_id=TK, tag="t", data=b"x")])),
        ("AddTaskResult", w.AddTaskResult,
         iter([lpb.LightResult(task_id=TK, swarm_id=SW, tag="t", data=b"x")])),
    ]:
        code, details = code_of(fn, req)
        assert code == grpc.StatusCode.INTERNAL, (name, code, details)
        assert "manager failed after data was relayed: UNAVAILABLE: the server cancelled" in \
            details, (name, details)
    m.fail = None
    w.StopSwarm(system_pb2.EnvId(swarm_id=SW, task_id=TK), timeout=20)


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


class RssSampler:
    def __init__(self, pid):
        self.pid, self.peak, self.stop = pid, 0, threading.Event()
        self.t = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self.stop.is_set():
            self.peak = max(self.peak, rss_kib(self.pid))
            time.sleep(0.02)

    def __enter__(self):
        self.t.start()
        return self

    def __exit__(self, *a):
        self.stop.set()
        self.t.join(5)


# What the node may keep once large values have gone through it and it has settled (the light
# service closes idle connections after 1 s and gives freed memory back 1.5 s after the last
# large call, light_impl.h): its idle RSS give or take this (issue 13).
SETTLED_KIB = 4 * 1024


def settled_rss(pid, base, timeout=15):
    """The node's RSS once it is within SETTLED_KIB of base (polled: the trim comes ~1.5 s
    after the last large call, later on a busy machine), or the last sample after timeout."""
    deadline = time.monotonic() + timeout
    while True:
        rss = rss_kib(pid)
        if rss < base + SETTLED_KIB or time.monotonic() > deadline:
            return rss
        time.sleep(0.2)


def test_large_values(env):
    rn, m, w = env
    sanitized = bool(os.environ.get("MANTA_SANITIZED"))
    # Idle, before any value went through (AddressSanitizer keeps freed memory in its quarantine
    # and allocator caches: no RSS figure means anything there but gross growth).
    time.sleep(0.5)
    idle = rss_kib(rn.proc.pid)
    # 64 MiB in one message, as the SDK sends a value below 4 GiB.
    value = bytes(range(256)) * (64 * MIB // 256)
    w.SetGlobal(iter([lpb.SetGlobalRequest(swarm_id=SW, task_id=TK, tag="w64", data=value)]),
                timeout=120)
    assert m.received["w64"] == (1, len(value), hashlib.sha256(value).hexdigest())
    m.globals["w64"] = value
    got = b"".join(g.data for g in w.GetGlobal(
        lpb.GetGlobalRequest(swarm_id=SW, task_id=TK, tag="w64"), timeout=120))
    assert got == value
    del value, got
    m.globals.clear()
    after64 = settled_rss(rn.proc.pid, idle)
    print(f"node RSS KiB: idle {idle}, after the 64 MiB value (settled) {after64}")
    if not sanitized:
        assert after64 < idle + SETTLED_KIB, (idle, after64)

    # 256 MiB in 1 MiB chunks both ways: the node's memory stays flat.
    n = 256
    base = rss_kib(rn.proc.pid)
    h = hashlib.sha256()

    def chunks():
        for i in range(n):
            c = block(i, MIB)
            h.update(c)
            yield lpb.SetGlobalRequest(swarm_id=SW, task_id=TK, tag="w256", data=c)
    with RssSampler(rn.proc.pid) as s:
        w.SetGlobal(chunks(), timeout=300)
    assert m.received["w256"] == (n, n * MIB, h.hexdigest())
    up_peak = s.peak

    m.big["w256"] = (n, MIB)
    h2, total, count = hashlib.sha256(), 0, 0
    with RssSampler(rn.proc.pid) as s:
        for g in w.GetGlobal(lpb.GetGlobalRequest(swarm_id=SW, task_id=TK, tag="w256"),
                             timeout=300):
            h2.update(g.data)
            total += len(g.data)
            count += 1
    assert (count, total, h2.hexdigest()) == (n, n * MIB, h.hexdigest())
    down_peak = s.peak
    # Far below the 256 MiB value, so one whole copy of it fails the test. What the node holds
    # meanwhile is a chunk or two in the relay and gRPC's buffering on both legs, up to the
    # HTTP/2 flow-control windows (512 KiB fixed toward the task, 4 MiB toward the manager,
    # which BDP probing may grow) and the TCP read buffers that follow them.
    limit = base + (160 if sanitized else 96) * 1024
    after = settled_rss(rn.proc.pid, idle)
    print(f"node RSS KiB: idle {idle}, base {base}, SetGlobal peak {up_peak}, GetGlobal peak "
          f"{down_peak}, settled after {after}")
    assert up_peak < limit and down_peak < limit, (base, up_peak, down_peak)
    if not sanitized:
        # Nothing of the values stays: back within SETTLED_KIB of idle.
        assert after < idle + SETTLED_KIB, (idle, after)


def test_an_idle_task_connection_is_kept(env):
    """The light service never closes a task's idle connection. It did (a GOAWAY after 1 s
    without calls, to give gRPC's buffers back), and that raced the task's next call: a call
    started as the GOAWAY came, with a message too large for gRPC's transparent retry (a model's
    SetGlobal), failed with UNAVAILABLE "GOAWAY received". A raw HTTP/2 client connects, does
    nothing for 4 s, and must see no GOAWAY; then a SetGlobal on a grpcio channel idle as long
    is relayed."""
    rn, m, w = env
    frames = []
    with socket.create_connection(("127.0.0.1", w.port), timeout=5) as s:
        s.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + h2_frame(4, 0, 0, b""))
        buf = b""
        end = time.monotonic() + 4
        while time.monotonic() < end:
            s.settimeout(max(0.05, end - time.monotonic()))
            try:
                chunk = s.recv(65536)
            except socket.timeout:
                break
            if not chunk:
                frames.append("EOF")
                break
            buf += chunk
            while len(buf) >= 9:
                length = int.from_bytes(buf[:3], "big")
                if len(buf) < 9 + length:
                    break
                ftype, flags = buf[3], buf[4]
                frames.append(ftype)
                if ftype == 4 and not flags & 1:  # SETTINGS: acknowledge
                    s.sendall(h2_frame(4, 1, 0, b""))
                elif ftype == 6 and not flags & 1:  # PING: answer
                    s.sendall(h2_frame(6, 1, 0, buf[9:9 + length]))
                buf = buf[9 + length:]
    assert 7 not in frames and "EOF" not in frames, f"frames from the node: {frames}"
    assert 4 in frames  # it spoke HTTP/2 (its SETTINGS)

    # A grpcio channel idle as long, then a value above gRPC's 256 KiB retry buffer.
    grpc.channel_ready_future(w.channel).result(timeout=10)
    time.sleep(2.5)
    value = os.urandom(MIB)
    w.SetGlobal(iter([lpb.SetGlobalRequest(swarm_id=SW, task_id=TK, tag="idle", data=value)]),
                timeout=60)
    assert m.received["idle"] == (1, MIB, hashlib.sha256(value).hexdigest())


def h2_frame(ftype, flags, stream, payload):
    return len(payload).to_bytes(3, "big") + bytes([ftype, flags]) + \
        stream.to_bytes(4, "big") + payload


def test_c_client_sets_and_gets_a_global(env):
    """tools/light-client.c (the benchmark's C client): SetGlobal of 16 MiB as one message, then
    GetGlobal, its bytes checked by the client."""
    rn, m, w = env
    build = os.environ.get("MANTA_BUILD_DIR")
    tool = os.path.join(build, "light-client") if build else None
    if not tool or not os.path.exists(tool):
        pytest.skip("light-client not built (MANTA_BUILD_DIR is set by CTest)")
    m.keep_sets = True
    target = w.channel._channel.target().decode()
    swarm = f"{(SWARM[0] << 64) | SWARM[1]:x}"
    p = subprocess.run([tool, "global", target, swarm, f"{TASK:x}", "c16", str(16 * MIB), "2"],
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    assert len(p.stdout.splitlines()) == 2 and "bytes=16777216" in p.stdout
    assert m.received["c16"][:2] == (1, 16 * MIB)
    # The manager keeps a different value: the client notices.
    m.keep_sets = False
    m.globals["c16"] = b"other"
    m.received.clear()
    p = subprocess.run([tool, "global", target, swarm, f"{TASK:x}", "c16", "1000"],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 1 and "other bytes" in p.stderr


def status_kib(pid, key):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return 0


def reset_peak_rss(pid):
    """Reset the kernel's high-water mark of the process's RSS (VmHWM); False if not allowed."""
    try:
        with open(f"/proc/{pid}/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


class PeakRss:
    """The node's peak RSS over a block: VmHWM (exact, when it can be reset) and samples."""

    def __init__(self, pid):
        self.pid = pid

    def __enter__(self):
        self.hwm = reset_peak_rss(self.pid)
        self.sampler = RssSampler(self.pid).__enter__()
        return self

    def __exit__(self, *a):
        self.sampler.__exit__(*a)
        self.peak = max(self.sampler.peak, status_kib(self.pid, "VmHWM") if self.hwm else 0)


# The node's default deadline per message (30 s): a single 300 MiB message takes seconds on a
# busy machine (the tests' 5 s is for the deadline tests; issue 13 replaces it by a stall limit).
@pytest.mark.parametrize("env", [{"rpc_timeout": 30}], indirect=True)
def test_300_mib_global_in_one_message(env):
    """A 300 MiB global set as ONE SetGlobal message (what the SDK sends for any value below
    4 GiB) and read back as one GlobalValue, the node's RSS watched throughout.

    What the node can hold: gRPC core keeps a whole inbound message, and the rpc layer copies a
    received message out of gRPC's buffers (rpc_call_recv, rpc_sstream_next) and copies an
    outgoing one into a gRPC slice (rpc_call_send, rpc_cstream_send); each hand-over briefly has
    two copies. The relay itself adds none (the SetGlobalRequest becomes the GlobalUpdate in
    place). So the bound is two copies of the value plus 64 MiB (gRPC's read buffers and
    allocator slack); a third copy anywhere (300 MiB more) fails the test."""
    rn, m, w = env
    pid = rn.proc.pid
    n = 300 * MIB
    value = os.urandom(n)
    digest = hashlib.sha256(value).hexdigest()
    # The request as the SDK serialises it (fields in order, the value last), built once.
    head = lpb.SetGlobalRequest(swarm_id=SW, task_id=TK, tag="w300").SerializeToString()
    msg = head + b"\x22" + varint(n) + value
    del value
    set_raw = w.channel.stream_unary("/node.light_service.World/SetGlobal",
                                     request_serializer=None,
                                     response_deserializer=system_pb2.Ok.FromString)
    get_raw = w.channel.unary_stream("/node.light_service.World/GetGlobal",
                                     request_serializer=lpb.GetGlobalRequest.SerializeToString,
                                     response_deserializer=None)
    base = rss_kib(pid)
    with PeakRss(pid) as up:
        t0 = time.monotonic()
        set_raw(iter([msg]), timeout=300)
        t_set = time.monotonic() - t0
    assert m.received["w300"] == (1, n, digest)
    after_set = rss_kib(pid)

    # The manager answers with the whole value in one GlobalValue.
    m.whole["w300"] = b"\x0a" + varint(n) + memoryview(msg)[len(msg) - n:]
    del msg
    h, total, count = hashlib.sha256(), 0, 0
    with PeakRss(pid) as down:
        t0 = time.monotonic()
        for raw in get_raw(lpb.GetGlobalRequest(swarm_id=SW, task_id=TK, tag="w300"),
                           timeout=300):
            rest, data = split_bytes_field(raw, 1)
            assert rest == b""
            h.update(data)
            total += len(data)
            count += 1
            del raw, data
        t_get = time.monotonic() - t0
    del m.whole["w300"]
    assert (count, total, h.hexdigest()) == (1, n, digest)
    after_get = rss_kib(pid)

    # AddressSanitizer's allocator keeps freed buffers (gRPC's reads of the message) and its
    # realloc copies: there the test only guards against gross regressions.
    sanitized = bool(os.environ.get("MANTA_SANITIZED"))
    copies = 4 if sanitized else 2
    limit = base + (copies * n + 64 * MIB) // 1024
    print(f"node RSS KiB: base {base}; SetGlobal peak {up.peak} ({t_set:.2f} s), after "
          f"{after_set}; GetGlobal peak {down.peak} ({t_get:.2f} s), after {after_get}; "
          f"limit {limit} (exact peak: {up.hwm})")
    assert up.peak < limit and down.peak < limit, (base, up.peak, down.peak, limit)
    if not sanitized:
        # Nothing of the value stays behind: back within SETTLED_KIB of where it started.
        settled = settled_rss(pid, base)
        print(f"node RSS KiB: settled after {settled}")
        assert settled < base + SETTLED_KIB, (base, after_get, settled)


def test_manager_deadline_per_message_task_call_has_none(env):
    rn, m, w = env  # rpc_timeout = 5 s in the node's configuration
    req = lpb.GetGlobalRequest(swarm_id=SW, task_id=TK, tag="slow")
    m.globals["slow"] = b"s" * (8 * MIB)

    # The manager silent before any data: 3 attempts of 5 s each, then its deadline, as is.
    m.hang_before = 8
    n0 = n_calls(m, "GetGlobal")
    t0 = time.monotonic()
    with pytest.raises(grpc.RpcError) as e:
        list(w.GetGlobal(req, timeout=40))
    assert e.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    assert 14 < time.monotonic() - t0 < 25
    assert n_calls(m, "GetGlobal") == n0 + 3
    m.hang_before = 0

    # Silent after the first chunk: not retryable any more.
    m.hang_after = 8
    with pytest.raises(grpc.RpcError) as e:
        list(w.GetGlobal(req, timeout=30))
    assert e.value.code() == grpc.StatusCode.DATA_LOSS
    m.hang_after = 0

    # A slow task (7 s between its chunks) is not cut off: each manager operation is quick.
    def slow():
        yield lpb.SetGlobalRequest(swarm_id=SW, task_id=TK, tag="slowset", data=b"1")
        time.sleep(7)
        yield lpb.SetGlobalRequest(swarm_id=SW, task_id=TK, tag="slowset", data=b"2")
    w.SetGlobal(slow(), timeout=30)
    assert m.received["slowset"][:2] == (2, 2)
    # and a slow reader of a server stream neither.
    it = w.GetGlobal(req, timeout=30)
    first = next(it)
    time.sleep(7)
    assert len(first.data) + sum(len(g.data) for g in it) == 8 * MIB


@pytest.mark.parametrize("cmd", ["stop_swarm", "stop_task"])
def test_access_ends_when_the_task_is_stopped(env, cmd, tmp_path):
    """From the moment the node receives a stop, the task's World calls are refused as for an
    unknown task (FAILED_PRECONDITION), and nothing more is relayed in its name, though its
    process still runs (this one ignores SIGTERM, so it lives until the grace period ends)."""
    from test_tasks_process import module
    rn, m, w = env
    pidfile = tmp_path / "stubborn.pid"
    stubborn = module(
        "import os, signal, time\n"
        "def main():\n"
        "    signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
        f"    open({str(pidfile)!r}, 'w').write(str(os.getpid()))\n"
        "    time.sleep(300)\n")
    TK8 = pair((0, 8))
    o = Observer(m.broker, client_id="stopper")
    try:
        send(o, "deploy_task", tasks_pb2.MqttTask(
            swarm_id=SW, task_id=TK8, iteration=0, circular=0, payload=stubborn,
            image="manta-task:bookworm", alias="stubborn", network="None", auth_key="None",
            login_server="None").SerializeToString())
        wait_for(lambda: pidfile.exists() and pidfile.read_text(), 20, what="the task's pid")
        pid = int(pidfile.read_text())
        req = lpb.GetGlobalRequest(swarm_id=SW, task_id=TK8, tag="t")
        list(w.GetGlobal(req, timeout=20))  # allowed while it runs (a server stream)

        def refused():
            try:
                list(w.GetGlobal(req, timeout=20))
                return False
            except grpc.RpcError as e:
                assert e.code() == grpc.StatusCode.FAILED_PRECONDITION, e
                return True
        payload = (SW.SerializeToString() if cmd == "stop_swarm"
                   else system_pb2.EnvId(swarm_id=SW, task_id=TK8).SerializeToString())
        send(o, cmd, payload)
        wait_for(refused, 20, what="World calls refused after " + cmd)
        os.kill(pid, 0)  # still running: access ended with the stop, not with the exit
        relayed = n_calls(m, "GetGlobal")
        for _ in range(3):
            assert refused()
        assert n_calls(m, "GetGlobal") == relayed
    finally:
        o.close()


def test_a_manager_that_stops_reading_fails_the_call_at_the_stall_limit(env):
    """rpc_timeout = 5 s is the stall limit: a 64 MiB SetGlobal to a manager that reads nothing
    fails once the connection's counters stop moving, not when the manager gives up (60 s)."""
    rn, m, w = env
    m.stop_reading = 60
    t0 = time.monotonic()
    with pytest.raises(grpc.RpcError) as e:
        w.SetGlobal(iter([lpb.SetGlobalRequest(swarm_id=SW, task_id=TK, tag="stuck",
                                               data=b"z" * (64 * MIB))]), timeout=55)
    took = time.monotonic() - t0
    assert e.value.code() == grpc.StatusCode.INTERNAL, e.value
    assert "nothing moved" in e.value.details(), e.value.details()
    assert took < 50, took
    m.stop_reading = 0


# gRPC's own threads, by the names it gives them the first time it is initialised.
GRPC_THREADS = {"grpc_global_tim", "timer_manager", "event_engine", "default-executo",
                "resolver-execut"}


def thread_names(pid):
    names = []
    for t in os.listdir(f"/proc/{pid}/task"):
        try:
            names.append(open(f"/proc/{pid}/task/{t}/comm").read().strip())
        except OSError:
            pass  # the thread ended meanwhile
    return names


def test_an_idle_node_lets_grpc_go_and_a_task_brings_it_back(node, tmp_path):
    """network.idle_close: once the node has had no task and no manager call for that long, gRPC
    is not initialised in it any more (its timer threads wake every second, the main cost of an
    idle node). A deploy starts the light service again on the same port, the task's World calls
    are relayed, and once the task is gone gRPC goes again."""
    b = Broker(tmp_path / "broker").start()
    m = WorldManager(b, token=TOKEN).start()
    o = Observer(b)
    node.write_config("default", node_config(TOKEN, m.port).replace(
        "rpc_timeout = 5\n", "rpc_timeout = 5\nidle_close = 2\n") + '[logging]\nlevel = "DEBUG"\n')
    rn = RunningNode(node)
    ch = None
    try:
        rn.wait_line("✓ Ready to execute tasks")
        pid = rn.proc.pid
        log = node.home / ".manta/logs/nodes/default.log"
        lport = light_port(rn, log)
        wait_for(lambda: not GRPC_THREADS & set(thread_names(pid)), 60,
                 what="gRPC's threads gone from the idle node")
        idle_names = sorted(thread_names(pid))
        idle = len(idle_names)

        send(o, "deploy_task", tasks_pb2.MqttTask(
            swarm_id=SW, task_id=TK, iteration=ITERATION, circular=CIRCULAR,
            payload=sleeper(300), image="manta-task:bookworm", alias="job", network="None",
            auth_key="None", login_server="None").SerializeToString())
        wait_for(lambda: tasks_pb2.RUNNING in updates(o, TASK), 20, what="the task RUNNING")
        assert len(thread_names(pid)) > idle  # gRPC is back
        ch = grpc.insecure_channel(f"127.0.0.1:{lport}", options=OPTS)
        grpc.channel_ready_future(ch).result(timeout=10)  # the same port as before
        w = pbgen.client(ch, "node.light_service.World")
        w.SetGlobal(iter([lpb.SetGlobalRequest(swarm_id=SW, task_id=TK, tag="back",
                                               data=b"v" * 1000)]), timeout=20)
        assert m.received["back"][2] == hashlib.sha256(b"v" * 1000).hexdigest()
        ch.close()
        ch = None

        send(o, "stop_task", system_pb2.EnvId(swarm_id=SW, task_id=TK).SerializeToString())
        wait_for(lambda: tasks_pb2.STOPPED in updates(o, TASK), 20, what="the task STOPPED")
        wait_for(lambda: len(thread_names(pid)) <= idle, 60,
                 what=lambda: f"the node idle again, without gRPC's threads: it has "
                 f"{sorted(thread_names(pid))}, idle it had {idle_names}; log:\n" + log.read_text()[-6000:])
        assert rn.proc.poll() is None
    finally:
        stop_all(ch, rn, o, m, b)
