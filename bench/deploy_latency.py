#!/usr/bin/python3
"""Benchmark: deploy latency of a task that exits at once, image present, for runc and docker:
  deploy_task published -> RUNNING reported (TaskUpdate) -> logs uploaded (AddTaskLogs),
next to the bare runtime doing the same work (`runc run` of a bundle over the same image,
`docker run --rm --network host`), so that the node's own overhead shows.

    bench/deploy_latency.py --binary build/release/manta_node [--runs 10]
"""
import argparse
import json
import os
import pathlib
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests" / "integration"))
os.environ.setdefault("MANTA_SOURCE_DIR", str(HERE.parent))

from runtimes import IMAGE, Dockerd, runc_store, runtime_config, task_image_tarball  # noqa
from test_tasks_process import NODE_XID, module, mqtt_task  # noqa
from wire_env import (Broker, FakeManager, Observer, RunningNode, node_config, tasks_pb2,  # noqa
                      wait_for)

TOKEN = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJiZW5jaCJ9.c2ln"
QUICK = module("def main():\n    print('done')\n")


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


def node_runs(binary, kind, env, runs):
    work = pathlib.Path(tempfile.mkdtemp(prefix="manta-bench-"))
    b = Broker(work / "broker").start()
    m = FakeManager(b).start()
    o = Observer(b)
    h = Home(binary, work / "home")
    h.write_config("default", node_config(TOKEN, m.port, containers=runtime_config(
        kind, store=env.get("store"), dockerd=env.get("dockerd"))))
    rn = RunningNode(h)
    rn.wait_line("✓ Ready to execute tasks", timeout=60)
    running, uploaded = [], []
    try:
        for i in range(runs):
            n0 = len(m.named("AddTaskLogs"))
            t0 = time.monotonic()
            o.publish(f"manta/nodes/{NODE_XID}/deploy_task", mqtt_task(1000 + i, QUICK))

            def seen_running():
                for p, t in o.on("manager/update_task_status"):
                    u = tasks_pb2.TaskUpdate.FromString(p)
                    if u.task_id.tail == 1000 + i and u.task_status == tasks_pb2.RUNNING:
                        return t
            t_run = wait_for(seen_running, 60, what="RUNNING")
            wait_for(lambda: len(m.named("AddTaskLogs")) > n0, 60, what="logs")
            t_logs = m.named("AddTaskLogs")[-1].time
            running.append((t_run - t0) * 1000)
            uploaded.append((t_logs - t0) * 1000)
    finally:
        rn.signal(signal.SIGTERM)
        rn.wait(120)
        o.close()
        m.stop()
        b.stop()
        shutil.rmtree(work, ignore_errors=True)
    return running, uploaded


def bare_runc(store, runs):
    rootfs = next(pathlib.Path(store).glob("*/rootfs"))
    times = []
    for i in range(runs):
        b = pathlib.Path(tempfile.mkdtemp(prefix="manta-bare-"))
        subprocess.run(["runc", "spec", "--bundle", str(b)], check=True)
        spec = json.loads((b / "config.json").read_text())
        spec["root"] = {"path": str(rootfs), "readonly": True}
        spec["process"]["terminal"] = False
        spec["process"]["args"] = ["python", "-c", "print('done')"]
        spec["linux"]["cgroupsPath"] = f"/manta-bench/bare-{os.getpid()}-{i}"
        spec["linux"]["namespaces"] = [n for n in spec["linux"]["namespaces"]
                                       if n["type"] != "network"]
        (b / "config.json").write_text(json.dumps(spec))
        t0 = time.monotonic()
        subprocess.run(["runc", "--root", str(b / "state"), "run", "--bundle", str(b),
                        f"bench-{os.getpid()}-{i}"], check=True, capture_output=True)
        times.append((time.monotonic() - t0) * 1000)
        shutil.rmtree(b, ignore_errors=True)
    return times


def bare_docker(d, runs):
    times = []
    for _ in range(runs):
        t0 = time.monotonic()
        subprocess.run(["/usr/bin/docker", "-H", f"unix://{d.sock}", "run", "--rm", "--network",
                        "host", IMAGE, "python", "-c", "print('done')"], check=True,
                       capture_output=True)
        times.append((time.monotonic() - t0) * 1000)
    return times


def fmt(v):
    return f"median {statistics.median(v):.0f} ms (min {min(v):.0f}, max {max(v):.0f})"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--binary", required=True)
    ap.add_argument("--runs", type=int, default=10)
    args = ap.parse_args()
    tar = task_image_tarball()
    store = runc_store(args.binary, tar)
    try:
        run, up = node_runs(args.binary, "runc", {"store": store}, args.runs)
        bare = bare_runc(store, args.runs)
        print(f"runc   node: published -> RUNNING {fmt(run)}; -> logs uploaded {fmt(up)}")
        print(f"runc   bare `runc run` (python -c print): {fmt(bare)}")
    finally:
        shutil.rmtree(store, ignore_errors=True)
    d = Dockerd()
    try:
        d.import_image(tar)
        run, up = node_runs(args.binary, "docker", {"dockerd": d}, args.runs)
        bare = bare_docker(d, args.runs)
        print(f"docker node: published -> RUNNING {fmt(run)}; -> logs uploaded {fmt(up)}")
        print(f"docker bare `docker run --rm` (python -c print): {fmt(bare)}")
    finally:
        d.stop()


if __name__ == "__main__":
    main()
