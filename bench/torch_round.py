#!/usr/bin/python3
"""Benchmark: one FedAvg round of the PyTorch example (examples/fedavg-torch) on real nodes,
its time split into task start-up, data loading, training and the manager's own overhead.

    bench/torch_round.py --bin-dir $PWD/build/release [--runtime runc|process] [--nodes 3]
                         [--train 6000] [--cpus 1] [--runs 1]

A broker, `manta_manager run` and N manta_node agents (runc with manta-task:torch from
scripts/build-task-image --torch, 1 GiB and --cpus CPUs per task; or the process runtime with
the host's python3-torch), each with its own Fashion-MNIST partition of --train images. The
swarm is the example with max_rounds = 1: worker (every node), aggregator, worker_test (every
node), scheduler (StopSwarm). Where the time goes:

  * from the tasks' logs (the runtime logs its first light-service call's time since the
    process started; the example's worker and tester log their loading and training): start-up
    (interpreter + imports + the task's set-up before its first call), data loading (the
    dataset over the light service + np.load), training;
  * from the broker (an MQTT client subscribed to everything): per stage of the graph, the
    manager's own overhead = first deploy_task of the next stage - last TaskUpdate COMPLETED of
    the stage before (what the manager does between tasks: store, placement, packing, publish),
    and the node's: deploy_task -> TaskUpdate RUNNING, and RUNNING -> COMPLETED for each task.
"""
import argparse
import os
import pathlib
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = pathlib.Path(__file__).resolve().parent
SOURCE = HERE.parent
sys.path.insert(0, str(SOURCE / "tests" / "integration"))
os.environ.setdefault("MANTA_SOURCE_DIR", str(SOURCE))

from manager_env import LocalSwarm  # noqa: E402
from pbgen import pb  # noqa: E402
from wire_env import Observer  # noqa: E402

tasks_pb2 = pb("common.tasks_pb2")
STAGES = ["worker", "aggregator", "worker_test", "scheduler"]


def xid(p):
    return f"{(p.head << 64) | p.tail:032x}"


def one_round(args, work: pathlib.Path, store):
    data = work / "data"
    subprocess.run([sys.executable, str(SOURCE / "examples/prepare_data.py"), "--nodes",
                    str(args.nodes), "--out", str(data), "--train", str(args.train), "--test",
                    "1000"], check=True, capture_output=True, timeout=300)
    # copied with the examples' layout: the swarm file names ../fedavg's aggregator and scheduler
    for ex in ("fedavg-torch", "fedavg"):
        shutil.copytree(SOURCE / "examples" / ex, work / "examples" / ex,
                        ignore=shutil.ignore_patterns("__pycache__"))
    swarm = work / "examples" / "fedavg-torch"
    sf = swarm / "swarm.toml"
    text = re.sub(r"max_rounds = \d+", "max_rounds = 1", sf.read_text())
    if args.runtime == "process":
        text = re.sub(r'^image = .*$', 'image = "host"', text, flags=re.M)
    sf.write_text(text)
    sw = LocalSwarm(work / "run", str(args.bin_dir / "manta_node"), nodes=args.nodes,
                    runtime=args.runtime,
                    datasets=[{"mnist": str(data / f"node_{i}/mnist.npz")} for i in range(args.nodes)])
    if args.runtime == "runc":
        containers = (f'[containers]\nruntime = "runc"\nimage_store = "{store}"\n'
                      f'default_memory_limit = "1G"\ndefault_cpu_limit = {args.cpus}\n')
        for n in sw.nodes:
            cfg = n.config_path("default")
            cfg.write_text(cfg.read_text().replace('[containers]\nruntime = "runc"\n', containers))
    obs = Observer(sw.broker, client_id="bench", subscribe=("#",))
    try:
        sw.start_run(sf, "--timeout", "900")
        sw.start_nodes()
        rc, out = sw.wait(timeout=960)
        if rc != 0:
            raise SystemExit(f"the swarm failed ({rc}):\n{out}")
        sid = re.search(r"^swarm ([0-9a-f]+) STOPPED", out, re.M).group(1)
        logs = sw.admin("logs", sid).stdout
        with obs.lock:
            msgs = list(obs.messages)
    finally:
        obs.close()
        sw.close()
    return msgs, logs, out


def analyse(msgs, logs):
    alias_of = {}      # task id -> alias (from the deploy messages)
    deploys, running, done = {}, {}, {}   # (alias, node) -> time
    for topic, payload, t in msgs:
        if topic.endswith("/deploy_task"):
            m = tasks_pb2.MqttTask.FromString(payload)
            alias_of[xid(m.task_id)] = m.alias
            deploys.setdefault((m.alias, topic.split("/")[-2]), t)
        elif topic == "manager/update_task_status":
            u = tasks_pb2.TaskUpdate.FromString(payload)
            key = (xid(u.task_id), xid(u.node_id))
            if u.task_status == tasks_pb2.RUNNING:
                running.setdefault(key, t)
            elif u.task_status in (tasks_pb2.COMPLETED, tasks_pb2.FAILED):
                done.setdefault(key, t)
    by = lambda d: {(alias_of.get(k[0], k[0]), k[1]): v for k, v in d.items()}
    running, done = by(running), by(done)
    node_keys = lambda d, a: [v for (al, _), v in d.items() if al == a]
    manager_gaps = []
    for a, b in zip(STAGES, STAGES[1:]):
        if node_keys(done, a) and node_keys(deploys, b):
            manager_gaps.append((f"{a} -> {b}", min(node_keys(deploys, b)) - max(node_keys(done, a))))
    start_lat = [running[k] - deploys[k] for k in running if k in deploys]
    # The node's topic carries its id in hex on the deploy side; updates carry the same id.
    task_time = {a: [done[k] - running[k] for k in done if k in running and k[0] == a]
                 for a in STAGES}

    def grab(pattern):
        return [float(x) for x in re.findall(pattern, logs)]
    return {
        "startup": grab(r"first light-service call ([0-9.]+) s after the process started"),
        "load_train": grab(r"loaded \d+ training images in ([0-9.]+) s"),
        "load_test": grab(r"loaded \d+ held-out images in ([0-9.]+) s"),
        "train": grab(r"trained on \d+ images in ([0-9.]+) s"),
        "manager": manager_gaps, "deploy_to_running": start_lat, "task_time": task_time,
        "round": (max(done.values()) - min(deploys.values())) if done and deploys else None,
    }


def ms(xs):
    if not xs:
        return "-"
    return (f"median {statistics.median(xs) * 1000:.0f} ms ({min(xs) * 1000:.0f}-"
            f"{max(xs) * 1000:.0f}, {len(xs)})")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bin-dir", required=True, type=pathlib.Path)
    ap.add_argument("--runtime", choices=["runc", "process"], default="runc")
    ap.add_argument("--nodes", type=int, default=3)
    ap.add_argument("--train", type=int, default=6000)
    ap.add_argument("--cpus", default="1")
    ap.add_argument("--runs", type=int, default=1)
    args = ap.parse_args()
    args.bin_dir = args.bin_dir.resolve()
    os.environ["MANTA_MANAGER_BIN"] = str(args.bin_dir / "manta_manager")
    work = pathlib.Path(tempfile.mkdtemp(prefix="manta-bench-torch-"))
    store = work / "images"
    try:
        if args.runtime == "runc":
            subprocess.run([str(SOURCE / "scripts/build-task-image"), "--torch", "--no-docker",
                            "--runc-store", str(store)], check=True, timeout=3600)
        for r in range(args.runs):
            msgs, logs, out = one_round(args, work / f"run{r}", store)
            a = analyse(msgs, logs)
            print(f"run {r + 1}: one round, {args.nodes} nodes x {args.train} images, "
                  f"{args.runtime}{' (' + args.cpus + ' CPU per task)' if args.runtime == 'runc' else ''}: "
                  f"{a['round']:.2f} s from the first deploy to the last task's end")
            print(f"  task start-up to first light call: {ms(a['startup'])}")
            print(f"  data loading: workers {ms(a['load_train'])}, testers {ms(a['load_test'])}")
            print(f"  training (1 epoch): {ms(a['train'])}")
            for stage, xs in a["task_time"].items():
                print(f"  {stage:11} RUNNING -> COMPLETED: {ms(xs)}")
            print(f"  node: deploy_task -> RUNNING: {ms(a['deploy_to_running'])}")
            total = sum(g for _, g in a["manager"])
            print("  manager between stages: " + ", ".join(f"{s} {g * 1000:.0f} ms"
                                                            for s, g in a["manager"])
                  + f"; {total * 1000:.0f} ms in the round")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
