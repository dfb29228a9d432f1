#!/usr/bin/python3
"""Benchmark: a registered, idle node. Measures
  * exec -> registered (RegisterNode answered) -> subscribed (SUBACKs, "Connected" printed),
  * RSS and anonymous memory from /proc/PID/smaps_rollup after registration,
  * CPU used over an idle period (utime + stime from /proc/PID/stat), once the node has let gRPC
    go (network.idle_close).
against a fake manager (python3-grpcio) and a real mosquitto on loopback.

    bench/node_idle.py --binary build/release/manta_node [--idle 60] [--runs 10]

Budgets (shared/DESIGN.md section 7): RSS <= 16 MiB with Pss_Anon <= 4 MiB; exec -> registered
and subscribed <= 100 ms with a local manager; idle CPU <= 0.5 % of one core.
"""
import argparse
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

from wire_env import Broker, FakeManager, node_config  # noqa: E402

TOKEN = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJiZW5jaCJ9.c2ln"


def smaps(pid):
    out = {}
    for line in open(f"/proc/{pid}/smaps_rollup"):
        parts = line.split()
        if len(parts) >= 3 and parts[-1] == "kB":
            out[parts[0].rstrip(":")] = int(parts[1])
    return out


def cpu_ticks(pid):
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime + stime


def thread_stats(pid):
    """{tid: (name, on-CPU ns, times scheduled)} from /proc/PID/task/*/schedstat."""
    out = {}
    for t in os.listdir(f"/proc/{pid}/task"):
        try:
            ns, _, n = open(f"/proc/{pid}/task/{t}/schedstat").read().split()
            out[t] = (open(f"/proc/{pid}/task/{t}/comm").read().strip(), int(ns), int(n))
        except (OSError, ValueError):
            pass
    return out


def cpu_ns(pid):
    """On-CPU time of every thread, in ns: finer than clock ticks."""
    return sum(ns for _, ns, _ in thread_stats(pid).values())


def run_once(binary, home, manager, broker):
    env = {"HOME": str(home), "PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C.UTF-8"}
    t0 = time.monotonic()
    p = subprocess.Popen([binary, "start"], env=env, stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, text=True, stdin=subprocess.DEVNULL)
    t_reg = t_sub = None
    for line in p.stdout:
        now = time.monotonic()
        if "✓ Node registered with manager" in line:
            t_reg = now
        if "✓ Connected to MQTT broker" in line:
            t_sub = now
        if "✓ Ready to execute tasks" in line:
            break
    return p, t0, t_reg, t_sub


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--binary", required=True)
    ap.add_argument("--idle", type=float, default=60.0)
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--idle-close", type=int, default=30,
                    help="the node's network.idle_close: after this long without tasks or "
                         "manager calls it lets gRPC go (default 30, the node's default)")
    ap.add_argument("--settle", type=float,
                    help="seconds between ready and the idle period (default: idle-close + 3, "
                         "so the idle period is the node's steady state)")
    ap.add_argument("--docker-socket", help="use the docker runtime with this daemon's socket "
                    "(default: the process runtime)")
    args = ap.parse_args()
    if args.settle is None:
        args.settle = args.idle_close + 3.0
    work = pathlib.Path(tempfile.mkdtemp(prefix="manta-bench-"))
    broker = Broker(work / "broker").start()
    manager = FakeManager(broker).start()
    home = work / "home"
    (home / ".manta" / "nodes").mkdir(parents=True)
    # heartbeat every 1 s, as the reference; log at INFO to a file
    containers = (f'[containers]\nruntime = "docker"\ndocker_socket = "{args.docker_socket}"\n'
                  if args.docker_socket else None)
    (home / ".manta" / "nodes" / "default.toml").write_text(
        node_config(TOKEN, manager.port, containers=containers).replace(
            "rpc_timeout = 5\n", f"rpc_timeout = 5\nidle_close = {args.idle_close}\n"))
    try:
        reg, sub = [], []
        for _ in range(args.runs):
            p, t0, t_reg, t_sub = run_once(args.binary, home, manager, broker)
            reg.append((t_reg - t0) * 1000)
            sub.append((t_sub - t0) * 1000)
            p.send_signal(signal.SIGTERM)
            p.wait(20)
        p, *_ = run_once(args.binary, home, manager, broker)
        time.sleep(args.settle)
        mem = smaps(p.pid)
        hz = os.sysconf("SC_CLK_TCK")
        c0, s0, w0 = cpu_ticks(p.pid), thread_stats(p.pid), time.monotonic()
        time.sleep(args.idle)
        c1, s1, w1 = cpu_ticks(p.pid), thread_stats(p.pid), time.monotonic()
        n0 = sum(ns for _, ns, _ in s0.values())
        n1 = sum(ns for _, ns, _ in s1.values())
        threads = len(os.listdir(f"/proc/{p.pid}/task"))
        mem_end = smaps(p.pid)
        p.send_signal(signal.SIGTERM)
        p.wait(20)
        cpu_pct = (c1 - c0) / hz / (w1 - w0) * 100
        print(f"binary: {args.binary}")
        print(f"exec -> registered: median {statistics.median(reg):.1f} ms "
              f"(min {min(reg):.1f}, max {max(reg):.1f}, {args.runs} runs)")
        print(f"exec -> registered and subscribed: median {statistics.median(sub):.1f} ms "
              f"(min {min(sub):.1f}, max {max(sub):.1f})")
        print(f"RSS {mem['Rss'] / 1024:.2f} MiB, Pss_Anon {mem['Pss_Anon'] / 1024:.2f} MiB "
              f"(after {args.idle:.0f} s idle: RSS {mem_end['Rss'] / 1024:.2f} MiB, "
              f"Pss_Anon {mem_end['Pss_Anon'] / 1024:.2f} MiB)")
        print(f"idle CPU over {w1 - w0:.0f} s with a heartbeat every 1 s: {cpu_pct:.3f} % of one core")
        print(f"  (schedstat, all {threads} threads: {(n1 - n0) / 1e9 / (w1 - w0) * 100:.4f} % of one core)")
        for tid in sorted(s1, key=int):  # who wakes up: threads scheduled during the idle period
            name, ns, n = s1[tid]
            _, ns_0, n_0 = s0.get(tid, (name, 0, 0))
            if n > n_0:
                print(f"    thread {name:16} {(n - n_0) / (w1 - w0):5.2f} wake-ups/s, "
                      f"{(ns - ns_0) / 1e6 / (w1 - w0):.3f} ms CPU/s")
    finally:
        manager.stop()
        broker.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
