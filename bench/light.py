#!/usr/bin/python3
"""Benchmark: the light service as a task uses it.
  * GetBinaryData of a 256 MiB dataset file: throughput and the node's peak RSS during it;
  * a 16 MiB SetGlobal followed by GetGlobal through the node and a (fake, python3-grpcio)
    manager, SetGlobal as one message as the SDK sends it.

Each is measured with two clients, labelled in the output: python3-grpcio (a Python client, as
tasks are) and tools/light-client.c (C, gRPC core through libmanta's rpc layer), which shows what
the node itself sustains when the client is not the bottleneck. The C client is used when built
(found beside --binary, or given with --client).

    bench/light.py --binary $PWD/build/release/manta_node [--runs 5] [--client PATH]
"""
import argparse
import os
import pathlib
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests" / "integration"))
os.environ.setdefault("MANTA_SOURCE_DIR", str(HERE.parent))

import grpc  # noqa: E402
import pbgen  # noqa: E402
from test_light_world import OPTS, WorldManager  # noqa: E402
from test_tasks_process import SWARM, mqtt_task, send, sleeper, updates  # noqa: E402
from wire_env import Broker, Observer, RunningNode, node_config, tasks_pb2, wait_for  # noqa: E402

TOKEN = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJiZW5jaCJ9.c2ln"
MIB = 1 << 20
FILE_MIB = 256
GLOBAL = 16 * MIB


class Home:
    def __init__(self, binary, home):
        self.binary, self.home = binary, home
        self.env = {"HOME": str(home), "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
                    "LANG": "C.UTF-8"}

    def write_config(self, name, text):
        d = self.home / ".manta" / "nodes"
        d.mkdir(parents=True, exist_ok=True)
        (d / f"{name}.toml").write_text(text)


def rss_kib(pid):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


class Peak(threading.Thread):
    def __init__(self, pid):
        super().__init__(daemon=True)
        self.pid, self.peak, self.stop_ = pid, rss_kib(pid), False
        self.start()

    def run(self):
        while not self.stop_:
            self.peak = max(self.peak, rss_kib(self.pid))
            time.sleep(0.01)

    def end(self):
        self.stop_ = True
        self.join()
        return self.peak


def summary(values, unit):
    return (f"median {statistics.median(values):.0f} {unit} (min {min(values):.0f}, "
            f"max {max(values):.0f}, {len(values)} runs)")


def c_client(client, *args):
    """Run tools/light-client; its output lines as dicts of numbers."""
    p = subprocess.run([client, *args], capture_output=True, text=True, timeout=600)
    if p.returncode != 0:
        raise RuntimeError(f"light-client failed ({p.returncode}): {p.stderr.strip()}")
    return [{k: float(v) for k, v in re.findall(r"(\w+)=([0-9.]+)", line)}
            for line in p.stdout.splitlines() if line.strip()]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--binary", required=True)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--client", help="tools/light-client (default: beside --binary, if built)")
    args = ap.parse_args()
    client = args.client or str(pathlib.Path(args.binary).resolve().parent / "light-client")
    if not os.access(client, os.X_OK):
        print(f"(no C client at {client}: Python figures only)")
        client = None
    work = pathlib.Path(tempfile.mkdtemp(prefix="manta-bench-light-"))
    data = work / "big.bin"
    with open(data, "wb") as f:
        for i in range(FILE_MIB):
            f.write(bytes([i % 251]) * MIB)
    b = Broker(work / "broker").start()
    m = WorldManager(b).start()
    m.keep_sets = True  # GetGlobal returns what SetGlobal stored (in 4 MiB messages)
    o = Observer(b)
    h = Home(args.binary, work / "home")
    h.write_config("default", node_config(TOKEN, m.port,
                                          extra=f'[datasets]\nmappings = {{ big = "{data}" }}\n'))
    rn = RunningNode(h)
    try:
        rn.wait_line("✓ Ready to execute tasks", timeout=60)
        send(o, "deploy_task", mqtt_task(1, sleeper(600)))
        wait_for(lambda: tasks_pb2.RUNNING in updates(o, 1), 20, what="the task")
        log = h.home / ".manta/logs/nodes/default.log"
        port = int(re.search(r"Light service listening on 127\.0\.0\.1:(\d+)",
                             log.read_text()).group(1))
        target = f"127.0.0.1:{port}"
        ch = grpc.insecure_channel(target, options=OPTS)
        lpb = pbgen.pb("node.light_service_pb2")
        spb = pbgen.pb("common.system_pb2")
        local = pbgen.client(ch, "node.light_service.Local")
        world = pbgen.client(ch, "node.light_service.World")
        ids = dict(task_id=spb.PairId(tail=1), swarm_id=spb.PairId(head=SWARM[0], tail=SWARM[1]))
        swarm_xid, task_xid = f"{(SWARM[0] << 64) | SWARM[1]:032x}", "01"
        base = rss_kib(rn.proc.pid)
        lines = []

        # GetBinaryData, Python client.
        rates, peaks = [], []
        for _ in range(args.runs):
            p = Peak(rn.proc.pid)
            t0 = time.monotonic()
            n = sum(len(c.content) for c in local.GetBinaryData(lpb.DataRequest(name="big", **ids)))
            dt = time.monotonic() - t0
            peaks.append(p.end())
            assert n == FILE_MIB * MIB
            rates.append(n / dt / 1e6)
        lines.append(f"GetBinaryData {FILE_MIB} MiB, python3-grpcio client: "
                     f"{summary(rates, 'MB/s')}; node RSS {base / 1024:.1f} MiB before, "
                     f"peak {max(peaks) / 1024:.1f} MiB during, "
                     f"{rss_kib(rn.proc.pid) / 1024:.1f} MiB after")

        # GetBinaryData, C client (one process, RUNS calls on one connection).
        if client:
            p = Peak(rn.proc.pid)
            runs = c_client(client, "binary", target, swarm_xid, task_xid, "big", str(args.runs))
            peak = p.end()
            assert all(r["bytes"] == FILE_MIB * MIB for r in runs), runs
            msgs = int(runs[0]["messages"])
            lines.append(f"GetBinaryData {FILE_MIB} MiB, C client (light-client): "
                         f"{summary([r['mbps'] for r in runs], 'MB/s')}, {msgs} messages; "
                         f"node RSS peak {peak / 1024:.1f} MiB during, "
                         f"{rss_kib(rn.proc.pid) / 1024:.1f} MiB after")

        # 16 MiB SetGlobal + GetGlobal, Python client.
        value = os.urandom(GLOBAL)
        times = []
        for _ in range(args.runs):
            t0 = time.monotonic()
            world.SetGlobal(iter([lpb.SetGlobalRequest(tag="w", data=value, **ids)]))
            got = b"".join(c.data for c in world.GetGlobal(lpb.GetGlobalRequest(tag="w", **ids)))
            times.append((time.monotonic() - t0) * 1000)
            assert got == value
        lines.append(f"16 MiB SetGlobal + GetGlobal through node and manager, python3-grpcio "
                     f"client: {summary(times, 'ms')}; node RSS "
                     f"{rss_kib(rn.proc.pid) / 1024:.1f} MiB after")

        if client:
            runs = c_client(client, "global", target, swarm_xid, task_xid, "wc", str(GLOBAL),
                            str(args.runs))
            lines.append(f"16 MiB SetGlobal + GetGlobal through node and manager, C client: "
                         f"{summary([r['total_ms'] for r in runs], 'ms')} (SetGlobal "
                         f"{statistics.median([r['set_ms'] for r in runs]):.0f} ms, GetGlobal "
                         f"{statistics.median([r['get_ms'] for r in runs]):.0f} ms, medians); "
                         f"node RSS {rss_kib(rn.proc.pid) / 1024:.1f} MiB after")
        ch.close()
        print("\n".join(lines))
    finally:
        rn.signal(signal.SIGTERM)
        rn.wait(60)
        o.close()
        m.stop()
        b.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
