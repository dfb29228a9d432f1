"""Tasks in real containers, with runc and with Docker (an isolated dockerd the test starts),
running the offline-built Debian task image: the contract's environment and mounts (module
read-only, datasets read-only), no capabilities, exit codes, a memory hog killed by its limit,
the timeout, the concurrency cap, stop_task, stop_swarm, re-deploy with a new payload, GPU on a
node without GPUs, and the node SIGKILLed while a task runs."""
import signal
import time

import pytest

from runtimes import Dockerd, runc_store, runtime_config, task_image_tarball
from test_node_wire import TOKEN
from test_tasks_process import (NODE, NODE_XID, SWARM, logs_of, module, mqtt_task, send,
                                sleeper, updates)
from wire_env import RunningNode, node_config, system_pb2, \
    tasks_pb2, wait_for, xid

INSPECT = module(
    "import os, sys\n"
    "def main():\n"
    "    for k in ('TASK_ID', 'SWARM_ID', 'RPC_HOST', 'RPC_PORT'):\n"
    "        print(f'{k}={os.environ.get(k)}')\n"
    "    print('ARGV=' + ' '.join(sys.argv))\n"
    "    try:\n"
    "        open('/usr/src/module.pyz', 'ab').close(); print('MODULE=writable')\n"
    "    except OSError: print('MODULE=read-only')\n"
    "    print('DATASET=' + open('/datasets/mnist/a.txt').read().strip())\n"
    "    try:\n"
    "        open('/datasets/mnist/new', 'w').close(); print('DATASETS=writable')\n"
    "    except OSError: print('DATASETS=read-only')\n"
    "    st = dict(l.split(':', 1) for l in open('/proc/self/status').read().splitlines())\n"
    "    print('CapEff=' + st['CapEff'].strip()); print('NoNewPrivs=' + st['NoNewPrivs'].strip())\n"
    "    import numpy, msgpack, grpc; print('IMPORTS=ok')\n"
    "    sys.exit(4)\n")

HOG = module("def main():\n    x = bytearray(400 * 1024 * 1024)\n    print(len(x))\n")


@pytest.fixture(scope="module")
def tarball():
    return task_image_tarball()


@pytest.fixture(scope="module", params=["runc", "docker"])
def runtime(request, tarball, node_bin):
    if request.param == "runc":
        store = runc_store(node_bin, tarball)
        yield "runc", {"store": store}
        import shutil
        shutil.rmtree(store, ignore_errors=True)
    else:
        d = Dockerd()
        try:
            d.import_image(tarball)
            yield "docker", {"dockerd": d}
        finally:
            d.stop()


def start(node, manager, runtime, tmp_path, tasks="", memory="256M"):
    kind, env = runtime
    data = tmp_path / "mnist"
    data.mkdir(exist_ok=True)
    (data / "a.txt").write_text("hello dataset\n")
    cfg = node_config(TOKEN, manager.port, containers=runtime_config(
        kind, store=env.get("store"), dockerd=env.get("dockerd"), memory=memory), tasks=tasks,
        extra=f'[datasets]\nmappings = {{ mnist = "{data}" }}\n')
    node.write_config("default", cfg)
    rn = RunningNode(node)
    rn.wait_line("✓ Ready to execute tasks", timeout=60)
    assert f"Task runtime: {kind}" in rn.out
    return rn


def node_log(node):
    return (node.home / ".manta/logs/nodes/default.log").read_text()


def test_contract_in_a_container(node, world, runtime, tmp_path):
    _, m, o = world
    rn = start(node, m, runtime, tmp_path)
    try:
        send(o, "deploy_task", mqtt_task(1, INSPECT, iteration=2))
        hdr, text = wait_for(lambda: logs_of(m, 1), 60, what="the task's logs")[0]
        assert hdr["swarm"] == SWARM and hdr["node"] == NODE and hdr["iteration"] == 2
        assert f"TASK_ID=01\nSWARM_ID={xid(*SWARM)}\nRPC_HOST=127.0.0.1\n" in text
        assert "ARGV=/usr/src/module.pyz" in text
        assert "MODULE=read-only" in text
        assert "DATASET=hello dataset" in text and "DATASETS=read-only" in text
        assert "CapEff=0000000000000000" in text and "NoNewPrivs=1" in text
        assert "IMPORTS=ok" in text
        assert updates(o, 1)[:2] == [tasks_pb2.PENDING, tasks_pb2.RUNNING]
        wait_for(lambda: "exit code 4" in node_log(node), 10, what="the exit code in the log")
    finally:
        rn.signal(signal.SIGTERM)
        assert rn.wait(90) == 0


def test_memory_hog_killed_and_reported(node, world, runtime, tmp_path):
    _, m, o = world
    rn = start(node, m, runtime, tmp_path, memory="64M")
    try:
        send(o, "deploy_task", mqtt_task(2, HOG))
        wait_for(lambda: logs_of(m, 2), 60, what="the hog's logs")
        wait_for(lambda: "oom-killed" in node_log(node), 10, what="the OOM kill in the log")
    finally:
        rn.signal(signal.SIGTERM)
        assert rn.wait(90) == 0


def test_cap_timeout_stop_swarm_redeploy_gpu(node, world, runtime, tmp_path):
    _, m, o = world
    rn = start(node, m, runtime, tmp_path,
               tasks="task_timeout = 5\n[resources]\nmax_concurrent_tasks = 2\n")
    try:
        for t in (10, 11, 12):
            send(o, "deploy_task", mqtt_task(t, sleeper(60)))
        wait_for(lambda: tasks_pb2.RUNNING in updates(o, 11), 30, what="two running")
        time.sleep(1)
        assert tasks_pb2.RUNNING not in updates(o, 12)  # N+1 deploys, N run
        wait_for(lambda: logs_of(m, 10) and logs_of(m, 11), 60, what="the timeout")
        assert "exceeded tasks.task_timeout" in node_log(node)
        wait_for(lambda: tasks_pb2.RUNNING in updates(o, 12), 30, what="the third one")
        send(o, "stop_task", system_pb2.EnvId(
            swarm_id=system_pb2.PairId(head=SWARM[0], tail=SWARM[1]),
            task_id=system_pb2.PairId(tail=12)).SerializeToString())
        wait_for(lambda: tasks_pb2.STOPPED in updates(o, 12), 60, what="STOPPED")
        # re-deploy: the new iteration runs the new payload
        send(o, "deploy_task", mqtt_task(13, module("def main():\n    print('one')\n"), 1))
        wait_for(lambda: logs_of(m, 13), 60, what="iteration 1")
        send(o, "deploy_task", mqtt_task(13, module("def main():\n    print('two')\n"), 2))
        wait_for(lambda: len(logs_of(m, 13)) == 2, 60, what="iteration 2")
        assert "two" in logs_of(m, 13)[1][1]
        # stop_swarm with several tasks
        send(o, "deploy_task", mqtt_task(14, sleeper(60)))
        send(o, "deploy_task", mqtt_task(15, sleeper(60)))
        wait_for(lambda: tasks_pb2.RUNNING in updates(o, 15), 30, what="14 and 15 running")
        send(o, "stop_swarm", system_pb2.PairId(head=SWARM[0], tail=SWARM[1]).SerializeToString())
        state = node.home / ".manta/state" / NODE_XID / "tasks"
        wait_for(lambda: not list(state.iterdir()), 60, what="the swarm's tasks removed")
        # GPU on a node without GPUs
        send(o, "deploy_task", mqtt_task(16, sleeper(1), gpu=True))
        err = wait_for(lambda: [c for c in m.named("SendError") if c.request.error_id == 18], 20,
                       what="DOCKER_ERROR")[0].request
        assert "GPU support is not enabled" in err.content
    finally:
        rn.signal(signal.SIGTERM)
        assert rn.wait(120) == 0
    kind, env = runtime
    if kind == "docker":  # graceful stop removed every container of this node
        assert not [c for c in env["dockerd"].containers()
                    if c.get("Labels", {}).get("manta.node", "").startswith(NODE_XID)]


def test_node_killed_task_adopted_logs_once(node, world, runtime, tmp_path):
    _, m, o = world
    rn = start(node, m, runtime, tmp_path)
    send(o, "deploy_task", mqtt_task(20, sleeper(6)))
    wait_for(lambda: tasks_pb2.RUNNING in updates(o, 20), 30, what="running")
    rn.kill()
    kind, env = runtime
    rn = RunningNode(node)
    try:
        rn.wait_line("✓ Ready to execute tasks", timeout=60)
        wait_for(lambda: "Adopted task" in node_log(node), 20, what="the adoption")
        wait_for(lambda: logs_of(m, 20), 60, what="the adopted task's logs")
        time.sleep(3)
        assert len(logs_of(m, 20)) == 1 and "end" in logs_of(m, 20)[0][1]
    finally:
        rn.signal(signal.SIGTERM)
        assert rn.wait(90) == 0
