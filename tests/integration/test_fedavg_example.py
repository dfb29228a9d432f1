"""examples/fedavg: the federated-averaging example converges on Fashion-MNIST and its
scheduler ends the swarm; examples/prepare_data.py partitions the real data.

The example's four modules run unmodified, in this process, on the task runtime of python/
(`manta`), against an in-memory stand-in of the platform: one gRPC server per simulated node
serving the node's Local (its own "mnist" partition from prepare_data.py) and World services
(from proto/, via the runtime's generated modules), all sharing one "manager" store of globals
and results keyed by iteration. Each round runs what the manager would deploy: worker on the
scheduled nodes, aggregator on node 0, worker_test on every node, scheduler on node 0; then
either the scheduler asked for StopSwarm, or its ScheduleTask opens the next iteration.
"""
import contextlib
import hashlib
import importlib.util
import io
import os
import subprocess
import sys
import threading
import tomllib
from concurrent import futures

import grpc
import msgpack
import numpy as np
import pytest

from conftest import SOURCE_DIR

EXAMPLE = SOURCE_DIR / "examples" / "fedavg"
PREPARE = SOURCE_DIR / "examples" / "prepare_data.py"
sys.path.insert(0, str(SOURCE_DIR / "python"))
sys.path.insert(0, str(SOURCE_DIR / "examples"))

from manta._proto.common import results_pb2, system_pb2, tasks_pb2  # noqa: E402
from manta._proto.node import light_service_pb2 as lpb  # noqa: E402

PY = os.environ.get("MANTA_PYTHON", "/usr/bin/python3")
SWARM_ID = 0x5EED0000000000000000000000000001
NODE_IDS = [0x11110000000000000000000000000000 + i for i in range(3)]
TASKS = ["worker", "aggregator", "worker_test", "scheduler"]
TASK_IDS = {a: int(hashlib.sha256(a.encode()).hexdigest()[:32], 16) for a in TASKS}
MIB = 1 << 20


def pair(v):
    return system_pb2.PairId(head=v >> 64, tail=v & ((1 << 64) - 1))


def unpair(p):
    return (p.head << 64) | p.tail


class Manager:
    """What the swarm's tasks share: globals, results per (tag, node, iteration), and the
    requests the scheduler made."""

    def __init__(self, globals_):
        self.lock = threading.Lock()
        self.globals = dict(globals_)     # tag -> msgpack bytes
        self.results = []                 # (tag, node, task, iteration, bytes)
        self.iteration = 0
        self.queries = []                 # LightResultQuery as received
        self.stops = []                   # (node, EnvId)
        self.schedules = []               # (node, TaskScheduling)

    def values(self, tag, iteration):
        return {n: msgpack.unpackb(d, raw=False) for t, n, _, i, d in self.results
                if t == tag and i == iteration}


class FakeNode:
    """One node's light service, for the tasks it runs (unknown task -> FAILED_PRECONDITION,
    as the C node)."""

    def __init__(self, node_id, datasets, manager):
        self.id, self.datasets, self.m = node_id, datasets, manager
        self.running = set()
        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=4), options=[
            ("grpc.max_receive_message_length", -1), ("grpc.max_send_message_length", -1)])
        h = grpc
        self.server.add_generic_rpc_handlers([
            h.method_handlers_generic_handler("node.light_service.Local", {
                "GetBinaryData": h.unary_stream_rpc_method_handler(
                    self.GetBinaryData, lpb.DataRequest.FromString,
                    system_pb2.Binary.SerializeToString)}),
            h.method_handlers_generic_handler("node.light_service.World", {
                "GetTaskResult": h.unary_stream_rpc_method_handler(
                    self.GetTaskResult, lpb.LightResultQuery.FromString,
                    results_pb2.ChunkResultValues.SerializeToString),
                "AddTaskResult": h.stream_unary_rpc_method_handler(
                    self.AddTaskResult, lpb.LightResult.FromString,
                    system_pb2.Ok.SerializeToString),
                "GetGlobal": h.unary_stream_rpc_method_handler(
                    self.GetGlobal, lpb.GetGlobalRequest.FromString,
                    results_pb2.GlobalValue.SerializeToString),
                "SetGlobal": h.stream_unary_rpc_method_handler(
                    self.SetGlobal, lpb.SetGlobalRequest.FromString,
                    system_pb2.Ok.SerializeToString),
                "StopSwarm": h.unary_unary_rpc_method_handler(
                    self.StopSwarm, system_pb2.EnvId.FromString, system_pb2.Ok.SerializeToString),
                "ScheduleTask": h.unary_unary_rpc_method_handler(
                    self.ScheduleTask, tasks_pb2.TaskScheduling.FromString,
                    system_pb2.Ok.SerializeToString)}),
        ])
        self.port = self.server.add_insecure_port("127.0.0.1:0")
        self.server.start()

    def _check(self, swarm, task, context):
        if (unpair(swarm), unpair(task)) not in self.running:
            context.abort(grpc.StatusCode.FAILED_PRECONDITION, "RESOURCE_ERROR: unknown task")

    def GetBinaryData(self, req, context):
        self._check(req.swarm_id, req.task_id, context)
        if req.name not in self.datasets:
            context.abort(grpc.StatusCode.FAILED_PRECONDITION, f"Dataset '{req.name}' not found")
        data = self.datasets[req.name].read_bytes()
        for off in range(0, len(data), MIB):
            yield system_pb2.Binary(content=data[off:off + MIB])

    def GetTaskResult(self, q, context):
        self._check(q.swarm_id, q.task_id, context)
        with self.m.lock:
            self.m.queries.append(q)
            hits = [(n, d) for t, n, _, i, d in self.m.results
                    if t == q.tag and i == self.m.iteration]
        # Two chunks per node, interleaved across nodes: the client must group by node id.
        halves = [[(n, d[:len(d) // 2]), (n, d[len(d) // 2:])] for n, d in hits]
        for part in (0, 1):
            for h in halves:
                n, d = h[part]
                yield results_pb2.ChunkResultValues(node_id=pair(n), data=d)

    def AddTaskResult(self, it, context):
        msgs = list(it)
        if not msgs:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "empty stream")
        self._check(msgs[0].swarm_id, msgs[0].task_id, context)
        with self.m.lock:
            self.m.results.append((msgs[0].tag, self.id, unpair(msgs[0].task_id),
                                   self.m.iteration, b"".join(x.data for x in msgs)))
        return system_pb2.Ok()

    def GetGlobal(self, req, context):
        self._check(req.swarm_id, req.task_id, context)
        with self.m.lock:
            data = self.m.globals.get(req.tag)
        if data is None:
            context.abort(grpc.StatusCode.NOT_FOUND, f"no global '{req.tag}'")
        yield results_pb2.GlobalValue(data=data[:len(data) // 2])
        yield results_pb2.GlobalValue(data=data[len(data) // 2:])

    def SetGlobal(self, it, context):
        msgs = list(it)
        if not msgs:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "empty stream")
        self._check(msgs[0].swarm_id, msgs[0].task_id, context)
        with self.m.lock:
            self.m.globals[msgs[0].tag] = b"".join(x.data for x in msgs)
        return system_pb2.Ok()

    def StopSwarm(self, req, context):
        self._check(req.swarm_id, req.task_id, context)
        with self.m.lock:
            self.m.stops.append((self.id, req))
        return system_pb2.Ok()

    def ScheduleTask(self, req, context):
        self._check(req.swarm_id, req.task_id, context)
        with self.m.lock:
            self.m.schedules.append((self.id, req))
        return system_pb2.Ok()

    @contextlib.contextmanager
    def task(self, alias):
        """The environment the node gives a task (task-contract.md 2)."""
        key = (SWARM_ID, TASK_IDS[alias])
        env = {"RPC_HOST": "127.0.0.1", "RPC_PORT": str(self.port),
               "TASK_ID": format(TASK_IDS[alias], "x"), "SWARM_ID": format(SWARM_ID, "x")}
        saved = {k: os.environ.get(k) for k in env}
        self.running.add(key)
        os.environ.update(env)
        try:
            yield
        finally:
            self.running.discard(key)
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v

    def stop(self):
        self.server.stop(0).wait(5)


def load_module(alias):
    spec = importlib.util.spec_from_file_location(f"fedavg_{alias}", EXAMPLE / f"{alias}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    assert callable(getattr(mod, "main", None)), f"{alias}.py has no top-level main()"
    return mod


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    out = tmp_path_factory.mktemp("fedavg-data")
    p = subprocess.run([PY, str(PREPARE), "--nodes", "3", "--out", str(out)],
                       capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    return out


@pytest.fixture(scope="module")
def modules():
    return {a: load_module(a) for a in TASKS}


def swarm_file():
    with open(EXAMPLE / "swarm.toml", "rb") as f:
        return tomllib.load(f)


def run_swarm(data, modules, hp_changes=None, loops=15):
    """Rounds until the scheduler stops the swarm; returns (manager, [{node: metrics}])."""
    g = swarm_file()["globals"]
    g["hyperparameters"].update(hp_changes or {})
    m = Manager({tag: msgpack.packb(v, use_bin_type=True) for tag, v in g.items()})
    nodes = [FakeNode(n, {"mnist": data / f"node_{i}" / "mnist.npz"}, m)
             for i, n in enumerate(NODE_IDS)]
    history = []
    try:
        scheduled = set(NODE_IDS)
        for it in range(loops):
            m.iteration = it
            for n in nodes:
                if n.id in scheduled:
                    with n.task("worker"):
                        modules["worker"].main()
            with nodes[0].task("aggregator"):
                modules["aggregator"].main()
            for n in nodes:
                with n.task("worker_test"):
                    modules["worker_test"].main()
            history.append(m.values("metrics", it))
            n_sched = len(m.schedules)
            with nodes[0].task("scheduler"):
                modules["scheduler"].main()
            if m.stops:
                assert len(m.schedules) == n_sched, "both ScheduleTask and StopSwarm"
                break
            assert len(m.schedules) == n_sched + 1, "the scheduler neither stopped nor scheduled"
            req = m.schedules[-1][1]
            assert req.task_to_schedule_alias == "worker"
            scheduled = {unpair(p) for p in req.node_ids}
        else:
            pytest.fail(f"no StopSwarm after {loops} rounds")
    finally:
        for n in nodes:
            n.stop()
    return m, history


def test_fedavg_converges_and_the_scheduler_stops_the_swarm(data, modules):
    hp = swarm_file()["globals"]["hyperparameters"]
    threshold, max_rounds = hp["val_acc_threshold"], hp["max_rounds"]
    m, history = run_swarm(data, modules)
    rounds = len(history)
    for r, h in enumerate(history, 1):
        accs = [h[n]["val_acc"] for n in NODE_IDS]
        print(f"round {r}: val_acc " + " ".join(f"{a:.3f}" for a in accs)
              + f" (mean {np.mean(accs):.3f}), val_loss "
              + " ".join(f"{h[n]['val_loss']:.3f}" for n in NODE_IDS))
    first = [history[0][n]["val_acc"] for n in NODE_IDS]
    last = [history[-1][n]["val_acc"] for n in NODE_IDS]
    # It had to learn: not there after one round, every node there when it stopped, within
    # reach of what a softmax regression gets on Fashion-MNIST (about 0.84).
    assert min(first) < threshold
    assert rounds < max_rounds, f"stopped by the round limit ({rounds}), not by accuracy"
    assert min(last) >= threshold, last
    assert np.mean(last) > np.mean(first) + 0.02
    mean_acc = [np.mean([h[n]["val_acc"] for n in NODE_IDS]) for h in history]
    assert 0.82 <= mean_acc[-1] <= 0.87, mean_acc
    assert all(b >= a - 0.01 for a, b in zip(mean_acc, mean_acc[1:])), mean_acc

    # The scheduler: one ScheduleTask per round but the last (reschedule = "all": every tester's
    # node), then one StopSwarm, all for its own (swarm, task).
    assert len(m.schedules) == rounds - 1 and len(m.stops) == 1
    for node, req in m.schedules:
        assert node == NODE_IDS[0]
        assert sorted(unpair(p) for p in req.node_ids) == sorted(NODE_IDS)
        assert (unpair(req.task_id), unpair(req.swarm_id)) == (TASK_IDS["scheduler"], SWARM_ID)
    node, env = m.stops[0]
    assert (unpair(env.swarm_id), unpair(env.task_id)) == (SWARM_ID, TASK_IDS["scheduler"])
    assert msgpack.unpackb(m.globals["round"]) == rounds

    # What the tasks left behind, as the platform's example shapes it.
    params = {k: np.load(io.BytesIO(v))
              for k, v in msgpack.unpackb(m.globals["global_model_params"], raw=False).items()}
    assert params["dense.weight"].shape == (10, 784) and params["dense.weight"].dtype == np.float32
    assert params["dense.bias"].shape == (10,)
    tm = m.values("train_metrics", rounds - 1)
    assert sorted(tm) == sorted(NODE_IDS)
    assert all(v["n_samples"] == 20000 and len(v["loss"]) == hp["epochs"] for v in tm.values())
    assert sorted(m.values("model_params", 0)) == sorted(NODE_IDS)
    # Every select() asked for everything: size -1, method ALL.
    assert m.queries and all(q.size == -1 and q.method == 2 for q in m.queries)


def test_round_limit_stops_the_swarm(data, modules):
    m, history = run_swarm(data, modules, {"val_acc_threshold": 0.999, "max_rounds": 2})
    assert len(history) == 2 and len(m.schedules) == 1 and len(m.stops) == 1
    assert msgpack.unpackb(m.globals["round"]) == 2


def test_scheduler_decisions(modules):
    decide = modules["scheduler"].decide
    metrics = {"aa": {"val_acc": 0.95}, "bb": {"val_acc": 0.5}, "cc": {"val_acc": 0.7}}
    hp = {"val_acc_threshold": 0.9, "max_rounds": 5}
    assert decide(metrics, hp, 1) == ("schedule", ["bb", "cc"])       # the platform's default
    assert decide(metrics, dict(hp, reschedule="all"), 1) == ("schedule", ["aa", "bb", "cc"])
    assert decide(metrics, hp, 5)[0] == "stop"                        # round limit
    assert decide({"aa": {"val_acc": 0.91}}, hp, 1)[0] == "stop"       # everyone is there
    assert decide({}, hp, 1)[0] == "stop"                              # nothing to judge


def test_fedavg_is_a_weighted_mean(modules):
    fedavg = modules["aggregator"].fedavg
    a = {"w": np.full((2, 2), 1.0, np.float32), "b": np.zeros(2, np.float32)}
    b = {"w": np.full((2, 2), 4.0, np.float32), "b": np.ones(2, np.float32)}
    avg = fedavg({"n1": a, "n2": b})
    assert np.allclose(avg["w"], 2.5) and np.allclose(avg["b"], 0.5)
    assert avg["w"].dtype == np.float32
    avg = fedavg({"n1": a, "n2": b}, {"n1": 3, "n2": 1})
    assert np.allclose(avg["w"], 1.75) and np.allclose(avg["b"], 0.25)


def test_prepare_data_partitions_fashion_mnist(data, tmp_path):
    """IID: every node its own third of the 60,000 + 10,000 images, every class about equally,
    the npz layout of the platform's MNIST example; deterministic for a seed."""
    parts = [np.load(data / f"node_{i}" / "mnist.npz") for i in range(3)]
    for d in parts:
        assert sorted(d.files) == ["x_test", "x_train", "y_test", "y_train"]
        assert d["x_train"].shape == (20000, 28, 28) and d["x_train"].dtype == np.float32
        assert d["x_test"].shape[1:] == (28, 28) and 3333 <= len(d["x_test"]) <= 3334
        assert d["y_train"].dtype == np.int64 and set(np.unique(d["y_train"])) == set(range(10))
        assert 0.0 <= d["x_train"].min() and d["x_train"].max() <= 1.0
        hist = np.bincount(d["y_train"], minlength=10)
        assert hist.min() > 1800 and hist.max() < 2200, hist  # about 2,000 of each class
    assert sum(len(d["y_test"]) for d in parts) == 10000
    # Real images: the mean pixel of Fashion-MNIST's training set is 0.286.
    assert abs(float(np.mean([d["x_train"].mean() for d in parts])) - 0.286) < 0.005
    # Same seed, same bytes; another seed, another deal.
    again, other = tmp_path / "again", tmp_path / "other"
    for out, seed in ((again, "0"), (other, "1")):
        p = subprocess.run([PY, str(PREPARE), "--nodes", "3", "--out", str(out), "--seed", seed,
                            "--train", "500", "--test", "100"],
                           capture_output=True, text=True, timeout=300)
        assert p.returncode == 0, p.stderr
    small = [np.load(again / f"node_{i}" / "mnist.npz") for i in range(3)]
    assert [len(d["y_train"]) for d in small] == [500] * 3
    assert [len(d["y_test"]) for d in small] == [100] * 3
    assert np.array_equal(small[0]["x_train"], parts[0]["x_train"][:500])  # a prefix of the deal
    assert not np.array_equal(np.load(other / "node_0" / "mnist.npz")["y_train"],
                              small[0]["y_train"])


def test_partitions_are_disjoint_and_dirichlet_is_skewed():
    import prepare_data as pd
    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(10), 600)
    for parts in (pd.split_iid(rng, len(y), 4),
                  pd.split_by_shares(rng, y, pd.shares_dirichlet(rng, y, 4, 0.3))):
        every = np.concatenate(parts)
        assert len(every) == len(y) and len(np.unique(every)) == len(y)  # each item once
    # alpha 0.3: nodes dominated by a few classes; alpha 1000: nearly IID.
    skew = pd.split_by_shares(rng, y, pd.shares_dirichlet(rng, y, 4, 0.3))
    flat = pd.split_by_shares(rng, y, pd.shares_dirichlet(rng, y, 4, 1000.0))
    top = lambda parts: np.mean([np.bincount(y[p], minlength=10).max() / len(p) for p in parts])
    assert top(skew) > 0.25 > 0.13 > top(flat)
    assert all(len(p) >= 10 for p in skew)


def test_centralized_baseline(data):
    """The demo's baseline: the same model on all partitions together, epochs given."""
    p = subprocess.run([PY, str(EXAMPLE / "centralized.py"), "--data", str(data), "--epochs", "1"],
                       capture_output=True, text=True, timeout=300,
                       env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(SOURCE_DIR / "python")})
    assert p.returncode == 0, p.stderr
    b = __import__("json").loads(p.stdout.strip().splitlines()[-1])
    assert b["images"] == 60000 and b["epochs"] == 1 and len(b["per_node"]) == 3
    assert 0.75 <= b["worst"] <= b["mean"] <= 0.86, b


def test_swarm_file_declares_the_mnist_graph():
    sf = swarm_file()
    assert sf["name"] == "fedavg"
    g = sf["globals"]
    assert g["global_model_params"] == {}
    hp = g["hyperparameters"]
    assert 0 < hp["val_acc_threshold"] < 1 and hp["max_rounds"] >= 1
    t = {x["alias"]: x for x in sf["tasks"]}
    assert [x["alias"] for x in sf["tasks"]] == TASKS
    for alias, x in t.items():
        assert x["module"] == f"{alias}.py" and (EXAMPLE / x["module"]).is_file()
        assert x["image"] == "manta-task:bookworm"
    assert t["worker"]["method"] == "all" and t["worker"]["datasets"] == ["mnist"]
    assert "after" not in t["worker"]
    assert t["worker_test"]["method"] == "all" and t["worker_test"]["datasets"] == ["mnist"]
    for alias in ("aggregator", "scheduler"):
        assert (t[alias]["method"], t[alias]["fixed"], t[alias]["maximum"]) == ("any", True, 1)
    assert t["aggregator"]["after"] == ["worker"]
    assert t["worker_test"]["after"] == ["aggregator"]
    assert t["scheduler"]["after"] == ["worker_test"]
