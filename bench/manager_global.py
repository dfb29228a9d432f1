#!/usr/bin/python3
"""Benchmark: a 16 MiB global set and read back by a running task through the node AND the real
manta_manager (SQLite store), not a fake manager: SetGlobal (one message, as the SDK sends it)
then GetGlobal, timed by tools/light-client.c; the manager's RSS before and after.

    bench/manager_global.py --bin-dir $PWD/build/release [--runs 9]

The task is a sleeper deployed by the manager from a one-task swarm (module `cafe.py`, so its
task id is 0xcafe as the SDK derives it); the node uses the process runtime."""
import argparse
import os
import pathlib
import re
import statistics
import sys
import tempfile
import time

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests" / "integration"))
os.environ.setdefault("MANTA_SOURCE_DIR", str(HERE.parent))

from light import GLOBAL, c_client, rss_kib, summary  # noqa: E402
from manager_env import LocalSwarm, module_dir  # noqa: E402
from wire_env import wait_for  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin-dir", required=True)
    ap.add_argument("--runs", type=int, default=9)
    ap.add_argument("--node-only", action="store_true", help="skip the straight-to-manager runs")
    ap.add_argument("--hold", type=int, default=0,
                    help="keep everything running this many seconds after (for perf/gdb)")
    args = ap.parse_args()
    bindir = pathlib.Path(args.bin_dir).resolve()
    os.environ["MANTA_MANAGER_BIN"] = str(bindir / "manta_manager")
    work = pathlib.Path(tempfile.mkdtemp(prefix="manta-bench-mgr-"))
    d = module_dir(work, {"cafe.py": "import time\ndef main():\n    time.sleep(600)\n"})
    (d / "swarm.toml").write_text('name = "bench"\n[[tasks]]\nmodule = "cafe.py"\n'
                                  'image = "host"\nmethod = "all"\n')
    sw = LocalSwarm(work, str(bindir / "manta_node"), nodes=1)
    try:
        sw.start_serve().start_nodes()
        wait_for(lambda: len(sw.admin_json("nodes")["nodes"]) == 1, 30, what="the node")
        time.sleep(1.5)  # heard on MQTT (first heartbeat): it can take commands
        swarm = sw.admin("submit", str(d / "swarm.toml")).stdout.strip()
        wait_for(lambda: sw.admin_json("nodes")["nodes"][0]["running"] == 1, 30, what="task")
        log = sw.nodes[0].home / ".manta/logs/nodes/node0.log"
        port = wait_for(lambda: re.search(r"Light service listening on 127\.0\.0\.1:(\d+)",
                                          log.read_text()), 30, what="light port").group(1)
        time.sleep(1)
        token = re.search(r'secured_token = "([^"]+)"',
                          (sw.nodes[0].home / ".manta/nodes/default.toml").read_text()).group(1)
        node_pid = sw.running[0].proc.pid
        mgr_before, node_before = rss_kib(sw.proc.pid), rss_kib(node_pid)
        client = str(bindir / "light-client")
        # Interleaved, one pair per round: through the node, then straight to the manager (the
        # same client, the same manager, the same sizes), so a busy machine hits both alike.
        via, direct = [], []
        for i in range(args.runs):
            via += c_client(client, "global", f"127.0.0.1:{port}", swarm, "0cafe", "w",
                            str(GLOBAL), "1")
            if not args.node_only:
                direct += c_client(client, "manager-global", f"127.0.0.1:{sw.port}", swarm,
                                   token, "d", str(GLOBAL), "1")
        time.sleep(2)
        for name, runs in (("through node and manta_manager", via),
                           ("straight to manta_manager", direct)):
            if runs:
                print(f"16 MiB SetGlobal + GetGlobal {name}, C client: "
                      f"{summary([r['total_ms'] for r in runs], 'ms')} (SetGlobal "
                      f"{statistics.median([r['set_ms'] for r in runs]):.0f} ms, GetGlobal "
                      f"{statistics.median([r['get_ms'] for r in runs]):.0f} ms, medians)")
        if via and direct:
            diffs = [a["total_ms"] - b["total_ms"] for a, b in zip(via, direct)]
            print(f"through the node minus straight, run by run: median {statistics.median(diffs):+.0f} ms "
                  f"(min {min(diffs):+.0f}, max {max(diffs):+.0f})")
        print(f"manta_manager RSS {mgr_before / 1024:.1f} MiB before, "
              f"{rss_kib(sw.proc.pid) / 1024:.1f} MiB after; manta_node RSS "
              f"{node_before / 1024:.1f} MiB before, {rss_kib(node_pid) / 1024:.1f} MiB 2 s "
              f"after")
        if args.hold:
            print(f"holding {args.hold} s: node pid {node_pid}, light port {port}, manager port "
                  f"{sw.port}, swarm {swarm}", flush=True)
            time.sleep(args.hold)
    finally:
        sw.close()


if __name__ == "__main__":
    main()
