"""Fairness of the light service: a task (swarm, task) may have at most 8 calls in progress on it,
Local and World together. A task over its cap is refused at once (RESOURCE_EXHAUSTED, which the
SDK retries after a short back-off; FAILED_PRECONDITION for a client stream, whose retry would
resend only the rest of the stream), and another task's calls go through promptly however many
calls the first one keeps open. Before the cap, one task opening 64 streams that never end took
every thread of the server and starved all the others."""
import os
import re
import signal
import time

import grpc
import pytest

import pbgen
from test_light_world import OPTS, WorldManager
from test_node_wire import TOKEN
from test_tasks_process import SWARM, mqtt_task, send, sleeper, updates
from wire_env import Broker, Observer, RunningNode, node_config, system_pb2, tasks_pb2, wait_for

lpb = pbgen.pb("node.light_service_pb2")

CAP = 8              # LIGHT_TASK_CALLS in src/node/light/light_impl.h
GREEDY = 70          # more calls than the whole server had before the cap (64)
TASK_A, TASK_B = 21, 22
BLOB = os.urandom(3 * 1024 * 1024 + 777)
PROMPT = 5.0         # seconds within which the other task's calls must complete
BUSY_TEXT = f"already has {CAP} calls in progress on the light service"


def ids(task):
    return dict(swarm_id=system_pb2.PairId(head=SWARM[0], tail=SWARM[1]),
                task_id=system_pb2.PairId(head=0, tail=task))


def dreq(task):
    return lpb.DataRequest(name="blob", **ids(task))


def hold(task):
    return lpb.GetGlobalRequest(tag="hold", **ids(task))


@pytest.fixture
def env(node, tmp_path):
    data = tmp_path / "blob.bin"
    data.write_bytes(BLOB)
    b = Broker(tmp_path / "broker").start()
    # Enough manager threads for every held call plus the node's own calls.
    m = WorldManager(b, token=TOKEN, workers=48).start()
    o = Observer(b)
    # A long manager deadline: held GetGlobal calls stay held for the whole test.
    cfg = node_config(TOKEN, m.port, extra=f'[datasets]\nmappings = {{ blob = "{data}" }}\n')
    node.write_config("default", cfg.replace("rpc_timeout = 5", "rpc_timeout = 60"))
    rn = RunningNode(node)
    chans = []
    try:
        rn.wait_line("✓ Ready to execute tasks")
        for t in (TASK_A, TASK_B):
            send(o, "deploy_task", mqtt_task(t, sleeper(300)))
        for t in (TASK_A, TASK_B):
            wait_for(lambda: tasks_pb2.RUNNING in updates(o, t), 20, what=f"task {t} RUNNING")
        log = node.home / ".manta/logs/nodes/default.log"
        port = wait_for(lambda: re.search(r"Light service listening on 127\.0\.0\.1:(\d+)",
                                          log.read_text()), 10, what="the light port").group(1)

        def task_clients():
            # One connection per task, as the SDK opens its own.
            ch = grpc.insecure_channel(f"127.0.0.1:{port}", options=OPTS)
            chans.append(ch)
            grpc.channel_ready_future(ch).result(timeout=10)
            return (pbgen.client(ch, "node.light_service.Local"),
                    pbgen.client(ch, "node.light_service.World"))
        yield rn, m, task_clients(), task_clients(), log
    finally:
        m.hold.set()
        for ch in chans:
            ch.close()
        rn.signal(signal.SIGTERM)
        try:
            rc = rn.wait(60)
        finally:
            rn.kill()
            o.close()
            m.stop()
            b.stop()
        assert "AddressSanitizer" not in rn.stderr() and "runtime error:" not in rn.stderr()
        assert rc == 0


def open_held(world, task, n):
    """n GetGlobal streams of `task` that the manager holds (until m.hold is set)."""
    return [world.GetGlobal(hold(task), timeout=90) for _ in range(n)]


def refused(calls):
    return [c for c in calls if c.done() and c.code() != grpc.StatusCode.OK]


def error_of(fn):
    with pytest.raises(grpc.RpcError) as e:
        r = fn()
        if not isinstance(r, system_pb2.Ok):
            list(r)
    return e.value.code(), e.value.details()


def test_a_greedy_task_is_capped_and_does_not_starve_another(env):
    rn, m, (a_local, a_world), (b_local, b_world), log = env

    # Task A opens far more streams than its cap; the manager holds every one it sees.
    calls = open_held(a_world, TASK_A, GREEDY)
    wait_for(lambda: len(refused(calls)) >= GREEDY - CAP and m.holding >= CAP, 30,
             what=lambda: f"{GREEDY - CAP} refusals and {CAP} held calls; got "
                          f"{len(refused(calls))} and {m.holding}")
    time.sleep(0.5)  # nothing more gets through
    assert m.holding == CAP
    assert len(refused(calls)) == GREEDY - CAP
    for c in refused(calls):
        assert c.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, (c.code(), c.details())
        assert c.details().startswith("RESOURCE_ERROR: ") and BUSY_TEXT in c.details()
    assert len(m.named("GetGlobal")) == CAP  # the refused calls never reached the manager

    # Task B is served at once, Local and World.
    t0 = time.monotonic()
    got = b"".join(c.content for c in b_local.GetBinaryData(dreq(TASK_B), timeout=PROMPT))
    assert got == BLOB
    m.globals["small"] = b"v" * 1000
    got = b"".join(g.data for g in b_world.GetGlobal(
        lpb.GetGlobalRequest(tag="small", **ids(TASK_B)), timeout=PROMPT))
    assert got == b"v" * 1000
    b_world.SetGlobal(iter([lpb.SetGlobalRequest(tag="b", data=b"12345", **ids(TASK_B))]),
                      timeout=PROMPT)
    assert m.received["b"][:2] == (1, 5)
    assert b_local.Exists(lpb.DirRequest(data_request=dreq(TASK_B)), timeout=PROMPT).value
    assert time.monotonic() - t0 < PROMPT

    # Task A's other calls are refused too, on both services, without reaching the manager.
    code, details = error_of(lambda: a_local.GetBinaryData(dreq(TASK_A), timeout=PROMPT))
    assert code == grpc.StatusCode.RESOURCE_EXHAUSTED and BUSY_TEXT in details
    code, details = error_of(lambda: a_local.Exists(lpb.DirRequest(data_request=dreq(TASK_A)),
                                                    timeout=PROMPT))
    assert code == grpc.StatusCode.RESOURCE_EXHAUSTED and BUSY_TEXT in details
    n_set = len(m.named("SetGlobal"))
    code, details = error_of(lambda: a_world.SetGlobal(
        iter([lpb.SetGlobalRequest(tag="a", data=b"x", **ids(TASK_A))]), timeout=PROMPT))
    # A client stream: its first message was read, so the refusal is not retryable.
    assert code == grpc.StatusCode.FAILED_PRECONDITION and BUSY_TEXT in details
    assert "must not be retried" in details
    assert len(m.named("SetGlobal")) == n_set
    code, details = error_of(lambda: a_world.StopSwarm(system_pb2.EnvId(**ids(TASK_A)),
                                                       timeout=PROMPT))
    assert code == grpc.StatusCode.RESOURCE_EXHAUSTED and BUSY_TEXT in details
    assert "refusing another" in log.read_text()

    # The held calls complete normally once the manager answers...
    m.hold.set()
    held = [c for c in calls if c not in refused(calls)]
    assert len(held) == CAP
    for c in held:
        assert [g.data for g in c] == [b"held"]
    wait_for(lambda: m.holding == 0, 10, what="the manager's held calls to end")

    # ...and give their slots back: A again has exactly CAP calls.
    m.hold.clear()
    time.sleep(0.3)  # the handlers return just after the status goes out
    calls = open_held(a_world, TASK_A, CAP + 1)
    wait_for(lambda: len(refused(calls)) >= 1 and m.holding >= CAP, 30,
             what=lambda: f"1 refusal and {CAP} held calls; got {len(refused(calls))} and "
                          f"{m.holding}")
    time.sleep(0.3)
    assert m.holding == CAP and len(refused(calls)) == 1
    assert refused(calls)[0].code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    m.hold.set()
    for c in calls:
        if c not in refused(calls):
            assert [g.data for g in c] == [b"held"]


def test_unknown_tasks_do_not_count(env):
    """Refusing an unknown task does not take a slot of anyone, and a known task's cap does not
    depend on the calls of unknown ones."""
    rn, m, (a_local, a_world), _, _ = env
    for _ in range(3 * CAP):
        code, _d = error_of(lambda: a_local.GetBinaryData(dreq(999), timeout=PROMPT))
        assert code == grpc.StatusCode.FAILED_PRECONDITION
    calls = open_held(a_world, TASK_A, CAP)
    wait_for(lambda: m.holding >= CAP, 30, what=lambda: f"{CAP} held calls; got {m.holding}")
    assert not refused(calls)
    m.hold.set()
    for c in calls:
        assert [g.data for g in c] == [b"held"]
