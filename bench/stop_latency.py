#!/usr/bin/python3
"""Benchmark: how long a stop takes for a task whose Python installs no SIGTERM handler (plain
`time.sleep(600)`), for runc and docker, with tasks.stop_timeout = 30 (a stop that waited for
the SIGKILL would take 30 s):
  stop_task published -> the node logs the task's end (the runtime reported it gone)
                      -> the next deploy, queued behind it for the only slot, RUNNING
  SIGTERM to the node with one such task running -> the node has exited

    bench/stop_latency.py --binary build/release/manta_node [--runs 5] [--runtime runc,docker]

Image present (the Debian task image from scripts/build-task-image), fake manager and mosquitto
on loopback, an isolated dockerd for the Docker runs. Needs root.
"""
import argparse
import os
import pathlib
import shutil
import signal
import statistics
import sys
import tempfile
import time

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests" / "integration"))
os.environ.setdefault("MANTA_SOURCE_DIR", str(HERE.parent))

from runtimes import Dockerd, runc_store, runtime_config, task_image_tarball  # noqa
from test_tasks_process import NODE_XID, SWARM, module, mqtt_task  # noqa
from wire_env import (Broker, FakeManager, Observer, RunningNode, node_config, system_pb2,  # noqa
                      tasks_pb2, wait_for)

TOKEN = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJiZW5jaCJ9.c2ln"
PLAIN = module("import time\ndef main():\n    print('ready', flush=True)\n"
               "    time.sleep(600)\n")


class Home:
    def __init__(self, binary, home):
        self.binary = binary
        self.home = home
        self.env = {"HOME": str(home), "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
                    "LANG": "C.UTF-8"}

    def write_config(self, name, text):
        d = self.home / ".manta" / "nodes"
        d.mkdir(parents=True, exist_ok=True)
        (d / f"{name}.toml").write_text(text)


def status_seen(o, task, status):
    for p, _ in o.on("manager/update_task_status"):
        u = tasks_pb2.TaskUpdate.FromString(p)
        if u.task_id.tail == task and u.task_status == status:
            return True
    return False


def start_node(binary, kind, env, work):
    b = Broker(work / "broker").start()
    m = FakeManager(b).start()
    o = Observer(b)
    h = Home(binary, work / "home")
    h.write_config("default", node_config(TOKEN, m.port, containers=runtime_config(
        kind, store=env.get("store"), dockerd=env.get("dockerd")),
        tasks="stop_timeout = 30\n[resources]\nmax_concurrent_tasks = 1\n"))
    rn = RunningNode(h)
    rn.wait_line("✓ Ready to execute tasks", timeout=60)
    return b, m, o, h, rn


def deploy_running(o, task):
    o.publish(f"manta/nodes/{NODE_XID}/deploy_task", mqtt_task(task, PLAIN))
    wait_for(lambda: status_seen(o, task, tasks_pb2.RUNNING), 60, what="RUNNING")
    time.sleep(1.0)  # Python up and sleeping


def measure(binary, kind, env, runs):
    gone, slot, node_exit = [], [], []
    work = pathlib.Path(tempfile.mkdtemp(prefix="manta-bench-"))
    b, m, o, h, rn = start_node(binary, kind, env, work)
    log = h.home / ".manta/logs/nodes/default.log"
    try:
        deploy_running(o, 100)
        for i in range(runs):
            cur, nxt = 100 + i, 101 + i
            o.publish(f"manta/nodes/{NODE_XID}/deploy_task", mqtt_task(nxt, PLAIN))  # queued
            time.sleep(0.3)
            ends = log.read_text().count("finished: stopped")
            t0 = time.monotonic()
            o.publish(f"manta/nodes/{NODE_XID}/stop_task", system_pb2.EnvId(
                swarm_id=system_pb2.PairId(head=SWARM[0], tail=SWARM[1]),
                task_id=system_pb2.PairId(tail=cur)).SerializeToString())
            wait_for(lambda: log.read_text().count("finished: stopped") > ends, 60, what="end")
            gone.append(time.monotonic() - t0)
            wait_for(lambda: status_seen(o, nxt, tasks_pb2.RUNNING), 60, what="next RUNNING")
            slot.append(time.monotonic() - t0)
            time.sleep(1.0)
    finally:
        rn.signal(signal.SIGTERM)
        rn.wait(120)
        o.close()
        m.stop()
        b.stop()
        shutil.rmtree(work, ignore_errors=True)
    for _ in range(runs):
        work = pathlib.Path(tempfile.mkdtemp(prefix="manta-bench-"))
        b, m, o, h, rn = start_node(binary, kind, env, work)
        try:
            deploy_running(o, 200)
            t0 = time.monotonic()
            rn.signal(signal.SIGTERM)
            rn.wait(120)
            node_exit.append(time.monotonic() - t0)
        finally:
            if rn.proc.poll() is None:
                rn.proc.kill()
                rn.proc.wait(30)
            o.close()
            m.stop()
            b.stop()
            shutil.rmtree(work, ignore_errors=True)
    return gone, slot, node_exit


def fmt(v):
    ms = sorted(x * 1000 for x in v)
    return f"median {statistics.median(ms):.0f} ms ({ms[0]:.0f}–{ms[-1]:.0f})"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--binary", required=True)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--runtime", default="runc,docker")
    a = ap.parse_args()
    tarball = task_image_tarball()
    print("| runtime | stop_task → gone | stop_task → next task RUNNING | node SIGTERM → exited |")
    print("|---|---|---|---|")
    for kind in a.runtime.split(","):
        if kind == "runc":
            store = runc_store(a.binary, tarball)
            try:
                r = measure(a.binary, kind, {"store": store}, a.runs)
            finally:
                shutil.rmtree(store, ignore_errors=True)
        else:
            d = Dockerd()
            try:
                d.import_image(tarball)
                r = measure(a.binary, kind, {"dockerd": d}, a.runs)
            finally:
                d.stop()
        print(f"| {kind} | {fmt(r[0])} | {fmt(r[1])} | {fmt(r[2])} |", flush=True)


if __name__ == "__main__":
    main()
