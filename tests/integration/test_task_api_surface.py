"""The task runtime (python/manta) holds the public surface of the SDK's `manta.light` 0.5b0:
names, parameters (names, order, defaults), `async_` twins and return types, as the table of
issue 12 gives them, so that task code written for the platform runs unmodified.

Return types are checked here on annotations and, for the calls that need no node, on values;
tests/integration/test_python_runtime.py checks the values every call returns from a real node.
"""
import asyncio
import importlib
import inspect
import io
import logging
import os
import subprocess
import sys
import types

import pytest

from conftest import SOURCE_DIR

RUNTIME = SOURCE_DIR / "python"
sys.path.insert(0, str(RUNTIME))

import manta.light as ml  # noqa: E402

PY = os.environ.get("MANTA_PYTHON", "/usr/bin/python3")
E = inspect.Parameter.empty
EXPORTS = ["Task", "Local", "World", "Globals", "Results", "MantaPath", "bytes_to_dict",
           "dict_to_bytes", "numpy_to_bytes", "bytes_to_numpy", "torchmodel_to_bytes",
           "bytes_to_torchmodel"]
SUBMODULES = ["task", "local", "world", "globals", "results", "utils", "path", "logging_config"]
CLIENT = [("host", None), ("port", None), ("swarm_id", None), ("task_id", None)]
ALL = ml.results.ResultMethod.ALL

# class -> {method: [(parameter, default)] without self}; every method listed with an "async_"
# twin in ASYNC must exist as a coroutine function with the same parameters.
METHODS = {
    "Task": {"__init__": [], "run": [], "cleanup": []},
    "Local": {"__init__": CLIENT, "get_binary_data": [("name", E)], "get_numpy_data": [("name", E)],
              "list_dir": [("dir", E)],
              "read_file_lines": [("file", E), ("encoding", None), ("errors", None),
                                  ("newline", None)],
              "exists": [("file", E)]},
    "World": {"__init__": CLIENT, "schedule_next_iter": [("node_ids", E),
                                                        ("task_to_schedule_alias", E)],
              "stop_swarm": []},
    "Globals": {"__getitem__": [("tag", E)], "__setitem__": [("tag", E), ("value", E)],
                "async_get": [("tag", E)], "async_set": [("tag", E), ("value", E)]},
    "Results": {"add": [("tag", E), ("value", E)],
                "select": [("tag", E), ("size", -1), ("method", ALL)]},
    "MantaPath": {"__init__": [("path", E), ("is_file", True)]},
}
ASYNC = {"Local": ["get_binary_data", "get_numpy_data", "list_dir", "read_file_lines", "exists"],
         "World": ["schedule_next_iter", "stop_swarm"], "Results": ["add", "select"]}
RETURNS = {("Local", "get_binary_data"): io.BytesIO, ("Local", "read_file_lines"): io.StringIO,
           ("Local", "exists"): bool, ("Local", "list_dir"): ml.local.ListDirResponse,
           ("Results", "select"): dict}


def params(fn):
    ps = list(inspect.signature(fn).parameters.values())
    if ps and ps[0].name == "self":
        ps = ps[1:]
    return [(p.name, p.default) for p in ps]


def test_exports_and_submodules():
    for name in EXPORTS:
        assert hasattr(ml, name), f"manta.light.{name} missing"
        assert name in ml.__all__
    for name in SUBMODULES:
        mod = importlib.import_module(f"manta.light.{name}")
        assert isinstance(getattr(ml, name), types.ModuleType) and getattr(ml, name) is mod
    # The exported names are those of the submodules (one object, two import paths).
    assert ml.Task is ml.task.Task and ml.Local is ml.local.Local and ml.World is ml.world.World
    assert ml.Globals is ml.globals.Globals and ml.Results is ml.results.Results
    assert ml.MantaPath is ml.path.MantaPath
    for f in EXPORTS[6:]:
        assert getattr(ml, f) is getattr(ml.utils, f)
    assert ml.local.ProtoPath.DESCRIPTOR.full_name == "node.light_service.ProtoPath"


@pytest.mark.parametrize("cls", sorted(METHODS))
def test_signatures(cls):
    c = getattr(ml, cls)
    for method, expected in METHODS[cls].items():
        assert params(getattr(c, method)) == expected, f"{cls}.{method}"
    for method in ASYNC.get(cls, []):
        tw = getattr(c, "async_" + method, None)
        assert tw is not None and inspect.iscoroutinefunction(tw), f"{cls}.async_{method}"
        assert params(tw) == METHODS[cls][method], f"{cls}.async_{method}"
    for (k, method), t in RETURNS.items():
        if k == cls:
            assert inspect.signature(getattr(c, method)).return_annotation is t, f"{cls}.{method}"


def test_task_has_local_world_logger(monkeypatch):
    monkeypatch.setenv("RPC_HOST", "127.0.0.1")
    monkeypatch.setenv("RPC_PORT", "1")
    monkeypatch.setenv("SWARM_ID", "ab")
    monkeypatch.setenv("TASK_ID", "cd")

    class T(ml.Task):
        def run(self):
            return 42

    t = T()
    assert isinstance(t.local, ml.Local) and isinstance(t.world, ml.World)
    assert isinstance(t.logger, logging.Logger) and t.logger.isEnabledFor(logging.INFO)
    assert isinstance(t.world.globals, ml.Globals) and isinstance(t.world.results, ml.Results)
    assert (t.local.config.swarm_id, t.local.config.task_id) == (0xAB, 0xCD)
    assert (t.world.config.swarm_id, t.world.config.task_id) == (0xAB, 0xCD)
    assert t.run() == 42
    t.cleanup()
    with pytest.raises(NotImplementedError):
        ml.Task().run()
    # The SDK's keyword order for the clients: swarm before task.
    loc = ml.Local("h", 5, "1", "2")
    assert (loc.config.host, loc.config.port, loc.config.swarm_id, loc.config.task_id) == \
        ("h", 5, 1, 2)
    for cls in (ml.World, ml.Globals, ml.Results):
        c = cls("h", 5, "1", "2").config
        assert (c.swarm_id, c.task_id) == (1, 2)


def test_what_a_task_logs_reaches_stderr_and_import_is_light():
    """self.logger writes to the task's log (stderr, the SDK's format), and importing the
    runtime imports neither grpc, protobuf, numpy nor msgpack (they come with the first call)."""
    code = ("import sys\n"
            "from manta.light.task import Task\n"
            "heavy = [m for m in ('grpc', 'google.protobuf', 'numpy', 'msgpack') if m in sys.modules]\n"
            "class Job(Task):\n"
            "    def run(self):\n"
            "        self.logger.info('hello from the task')\n"
            "        self.logger.warning('careful')\n"
            "Job().run()\n"
            "print('heavy', heavy)\n")
    p = subprocess.run([PY, "-c", code], capture_output=True, text=True, timeout=60,
                       cwd=RUNTIME, env={"PATH": "/usr/bin:/bin", "RPC_PORT": "1",
                                         "TASK_ID": "1", "SWARM_ID": "2"})
    assert p.returncode == 0, p.stderr
    assert " - Job - INFO - hello from the task (" in p.stderr, p.stderr
    assert " - Job - WARNING - careful (" in p.stderr, p.stderr
    assert "manta.light - INFO - Local configured with Host: host.docker.internal, Port: 1" in p.stderr
    assert p.stdout == "heavy []\n", p.stdout


def test_manta_path():
    p = ml.MantaPath("images") / "cats" / "001.tar.gz"
    assert str(p) == "images/cats/001.tar.gz" and p.is_file
    assert (p.name, p.stem, p.suffix) == ("001.tar.gz", "001.tar", ".gz")
    assert p._dataset_and_path() == ("images", "cats/001.tar.gz")
    assert ml.MantaPath("mnist")._dataset_and_path() == ("mnist", "")
    assert ml.MantaPath("a/./b/../c", is_file=False) == ml.MantaPath("a/c")
    assert not ml.MantaPath("a", is_file=False).is_file
    assert str(ml.MantaPath("d").parent) == "" and str(p.parent) == "images/cats"
    assert ml.MantaPath("x/.hidden").suffix == "" and ml.MantaPath("x/file.").suffix == ""


def test_utils_round_trips():
    np = pytest.importorskip("numpy")
    w = {"layer": {"w": np.arange(6, dtype=np.float32).reshape(2, 3)}, "b": np.ones(2)}
    b = ml.numpy_to_bytes(w)
    assert isinstance(b["layer"]["w"], bytes) and b["layer"]["w"].startswith(b"\x93NUMPY")
    back = ml.bytes_to_numpy(b)
    assert np.array_equal(back["layer"]["w"], w["layer"]["w"])
    assert back["layer"]["w"].dtype == np.float32
    value = {"hp": {"lr": 0.1, "layers": [256, 128]}, "blob": b"\x00\x01", "name": "é"}
    assert isinstance(ml.dict_to_bytes(value), bytes)
    assert ml.bytes_to_dict(ml.dict_to_bytes(value)) == value
    import msgpack
    assert ml.dict_to_bytes(value) == msgpack.packb(value, use_bin_type=True)


def test_torch_helpers():
    torch = pytest.importorskip("torch")
    model = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.ReLU(), torch.nn.Linear(3, 2))
    sd = ml.bytes_to_torchmodel(ml.torchmodel_to_bytes(model.state_dict()))
    assert set(sd) == set(model.state_dict())
    assert all(torch.equal(sd[k], model.state_dict()[k]) for k in sd)
    whole = ml.bytes_to_torchmodel(ml.torchmodel_to_bytes(model))  # falls back to a full load
    x = torch.ones(1, 4)
    assert torch.equal(whole(x), model(x))


def test_async_twins_run_concurrently():
    """The async_ forms are coroutines that run the call off the event loop: two slow calls
    overlap (the second does not wait for the first)."""
    import threading
    loc = ml.Local("127.0.0.1", 1, "1", "2")
    seen, both = [], threading.Barrier(2, timeout=10)

    def slow(name):
        seen.append(name)
        both.wait()  # only returns when both calls are in progress at once
        return True
    loc.exists = slow

    async def go():
        return await asyncio.gather(loc.async_exists("a"), loc.async_exists("b"))
    assert asyncio.run(go()) == [True, True] and sorted(seen) == ["a", "b"]
