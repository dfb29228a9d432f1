#!/usr/bin/python3
"""Benchmark: an idle `manta_manager serve` (no node, no swarm) with a real mosquitto on
loopback. Measures, over an idle period, the wake-ups of each of its threads (times scheduled,
from /proc/PID/task/*/schedstat) and its CPU (utime + stime), so that the main loop's share is
seen apart from gRPC's own threads.

    bench/manager_idle.py --binary build/release/manta_manager [--idle 30] [--runs 3]

The main thread (comm `manta_manager`) sleeps until an MQTT message, a signal, a wake-up from
another thread or a deadline; idle, its only deadline is the MQTT clock (keep-alive 30 s,
ticked every 10 s).
"""
import argparse
import os
import pathlib
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests" / "integration"))
os.environ.setdefault("MANTA_SOURCE_DIR", str(HERE.parent))

from node_idle import cpu_ticks, thread_stats  # noqa: E402
from wire_env import Broker, free_port  # noqa: E402


def one_run(binary, idle):
    work = pathlib.Path(tempfile.mkdtemp(prefix="manta-mgr-idle-"))
    b = Broker(work / "broker").start()
    env = {"HOME": str(work), "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
           "MANTA_HOME": str(work / "manta")}
    p = subprocess.Popen([binary, "serve", "--listen", f"127.0.0.1:{free_port()}", "--broker",
                          f"127.0.0.1:{b.port}", "--store", str(work / "store.db"), "--admin",
                          str(work / "admin.sock")], env=env, stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL)
    try:
        time.sleep(3.0)   # connected, settled
        if p.poll() is not None:
            raise SystemExit(f"manta_manager exited ({p.returncode})")
        t0, c0, s0 = time.monotonic(), cpu_ticks(p.pid), thread_stats(p.pid)
        time.sleep(idle)
        t1, c1, s1 = time.monotonic(), cpu_ticks(p.pid), thread_stats(p.pid)
        secs = t1 - t0
        hz = os.sysconf("SC_CLK_TCK")
        main = str(p.pid)
        wake_main = (s1[main][2] - s0[main][2]) / secs
        wake_all = sum(s1[t][2] - s0[t][2] for t in s1 if t in s0) / secs
        cpu = (c1 - c0) / hz / secs * 100
        return wake_main, wake_all, cpu, len(s1)
    finally:
        p.terminate()
        p.wait(30)
        b.stop()
        shutil.rmtree(work, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--binary", required=True)
    ap.add_argument("--idle", type=float, default=30.0)
    ap.add_argument("--runs", type=int, default=3)
    a = ap.parse_args()
    rows = [one_run(a.binary, a.idle) for _ in range(a.runs)]
    med = [statistics.median(r[i] for r in rows) for i in range(4)]
    print("| main loop wake-ups/s | all threads wake-ups/s | CPU % of a core | threads |")
    print("|---|---|---|---|")
    print(f"| {med[0]:.2f} | {med[1]:.2f} | {med[2]:.3f} | {med[3]:.0f} |")


if __name__ == "__main__":
    main()
