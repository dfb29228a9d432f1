#!/usr/bin/python3
"""Benchmark: the light service as a task uses it.
  * GetBinaryData of a 256 MiB dataset file: throughput and the node's peak RSS during it;
  * a 16 MiB SetGlobal followed by GetGlobal through the node and a (fake, python3-grpcio)
    manager, one message each way as the SDK sends it.

    bench/light.py --binary $PWD/build/release/manta_node [--runs 5]
"""
import argparse
import os
import pathlib
import re
import shutil
import signal
import statistics
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
from test_tasks_process import NODE_XID, SWARM, mqtt_task, send, sleeper, updates  # noqa: E402
from wire_env import Broker, Observer, RunningNode, node_config, tasks_pb2, wait_for  # noqa: E402

TOKEN = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJiZW5jaCJ9.c2ln"
MIB = 1 << 20


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


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--binary", required=True)
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args()
    work = pathlib.Path(tempfile.mkdtemp(prefix="manta-bench-light-"))
    data = work / "big.bin"
    with open(data, "wb") as f:
        for i in range(256):
            f.write(bytes([i % 251]) * MIB)
    b = Broker(work / "broker").start()
    m = WorldManager(b).start()
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
        ch = grpc.insecure_channel(f"127.0.0.1:{port}", options=OPTS)
        lpb = pbgen.pb("node.light_service_pb2")
        spb = pbgen.pb("common.system_pb2")
        local = pbgen.client(ch, "node.light_service.Local")
        world = pbgen.client(ch, "node.light_service.World")
        ids = dict(task_id=spb.PairId(tail=1), swarm_id=spb.PairId(head=SWARM[0], tail=SWARM[1]))
        base = rss_kib(rn.proc.pid)
        rates, peaks = [], []
        for _ in range(args.runs):
            p = Peak(rn.proc.pid)
            t0 = time.monotonic()
            n = sum(len(c.content) for c in local.GetBinaryData(lpb.DataRequest(name="big", **ids)))
            dt = time.monotonic() - t0
            p.stop_ = True
            p.join()
            assert n == 256 * MIB
            rates.append(n / dt / 1e6)
            peaks.append(p.peak)
        value = os.urandom(16 * MIB)
        m.globals["w"] = value
        times = []
        for _ in range(args.runs):
            t0 = time.monotonic()
            world.SetGlobal(iter([lpb.SetGlobalRequest(tag="w", data=value, **ids)]))
            got = b"".join(c.data for c in world.GetGlobal(lpb.GetGlobalRequest(tag="w", **ids)))
            times.append((time.monotonic() - t0) * 1000)
            assert got == value
        ch.close()
        print(f"GetBinaryData 256 MiB: median {statistics.median(rates):.0f} MB/s "
              f"(min {min(rates):.0f}, max {max(rates):.0f}, {args.runs} runs); node RSS "
              f"{base / 1024:.1f} MiB before, peak {max(peaks) / 1024:.1f} MiB during")
        print(f"16 MiB SetGlobal + GetGlobal through node and manager: median "
              f"{statistics.median(times):.0f} ms (min {min(times):.0f}, max {max(times):.0f})")
    finally:
        rn.signal(signal.SIGTERM)
        rn.wait(60)
        o.close()
        m.stop()
        b.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
