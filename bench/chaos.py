#!/usr/bin/python3
"""The long chaos run (issue 13): FedAvg (examples/fedavg) on Fashion-MNIST on N nodes for a
fixed number of rounds while a seeded random driver SIGKILLs and restarts nodes, restarts the
broker and restarts the manager (SIGKILL and SIGTERM). The driver and its pass criteria are
tests/integration/chaos_driver.py, shared with tests/integration/test_chaos.py (the short run
in CI).

    bench/chaos.py [--rounds 30] [--faults 30] [--seed N] [--runtime process|runc]
                   [--nodes 4] [--train N] [--test N] [--binary build/gcc/manta_node]
                   [--manager build/gcc/manta_manager] [--keep]

Exit status 0 when the swarm ended normally with every result and log stored once and nothing
left behind; 1 otherwise (the report says what). runc needs root and the cached task image
(scripts/build-task-image).
"""
import argparse
import os
import pathlib
import shutil
import sys
import tempfile

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests" / "integration"))
os.environ.setdefault("MANTA_SOURCE_DIR", str(HERE.parent))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=30)
    ap.add_argument("--faults", type=int, default=30)
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("--runtime", choices=("process", "runc"), default="process")
    ap.add_argument("--nodes", type=int, default=4)
    ap.add_argument("--train", type=int, default=0, help="training images per node (0: all)")
    ap.add_argument("--test", type=int, default=0, help="held-out images per node (0: all)")
    ap.add_argument("--max-down", type=float, default=3.0, help="longest outage per fault (s)")
    ap.add_argument("--binary", default=str(HERE.parent / "build/gcc/manta_node"))
    ap.add_argument("--manager", default=str(HERE.parent / "build/gcc/manta_manager"))
    ap.add_argument("--keep", action="store_true", help="keep the store, logs and data")
    a = ap.parse_args()
    os.environ["MANTA_MANAGER_BIN"] = str(pathlib.Path(a.manager).resolve())
    from chaos_driver import ChaosRun

    tmp = pathlib.Path(tempfile.mkdtemp(prefix="manta-chaos-"))
    run = ChaosRun(tmp, str(pathlib.Path(a.binary).resolve()), nodes=a.nodes, rounds=a.rounds,
                   faults=a.faults, seed=a.seed, runtime=a.runtime, train=a.train, test=a.test,
                   max_down=a.max_down, round_timeout=180)
    rep = run.run()
    if a.keep or not rep["ok"]:
        print(f"kept: {tmp}")
    else:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0 if rep["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
