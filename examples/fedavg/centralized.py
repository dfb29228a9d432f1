#!/usr/bin/python3
"""The centralized baseline of the FedAvg example: the same model (worker.py's softmax
regression, same hyperparameters) trained on every node's partition put together, for the same
number of epochs the federation ran, then evaluated on each node's held-out images as
worker_test.py does. How close federated training came is the gap to this.

    centralized.py --data DIR --epochs N [--swarm swarm.toml]

DIR holds node_<i>/mnist.npz (examples/prepare_data.py). Prints one JSON line:
{"epochs": N, "mean": ..., "worst": ..., "per_node": [...], "seconds": ...}.
Needs python/ on PYTHONPATH (the modules import manta.light).
"""
import argparse
import json
import pathlib
import sys
import time
import tomllib

import numpy as np

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import worker  # noqa: E402
import worker_test  # noqa: E402


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", required=True, type=pathlib.Path)
    ap.add_argument("--epochs", required=True, type=int)
    ap.add_argument("--swarm", type=pathlib.Path, default=HERE / "swarm.toml")
    a = ap.parse_args(argv)
    with open(a.swarm, "rb") as f:
        hp = tomllib.load(f)["globals"]["hyperparameters"]
    parts = [np.load(p) for p in sorted(a.data.glob("node_*/mnist.npz"))]
    if not parts:
        print(f"centralized: no node_*/mnist.npz under {a.data}", file=sys.stderr)
        return 1
    x = np.concatenate([p["x_train"] for p in parts]).reshape(-1, worker.FEATURES)
    y = np.concatenate([p["y_train"] for p in parts]).astype(np.int64)
    t0 = time.monotonic()
    params = worker.initial_params()
    for e in range(a.epochs):
        params, _ = worker.train(params, x, y, dict(hp, epochs=1), seed=int(hp.get("seed", 0)) + e)
    accs = [worker_test.evaluate(params, p["x_test"].reshape(len(p["x_test"]), -1).astype(np.float32),
                                 p["y_test"].astype(np.int64))[1] for p in parts]
    print(json.dumps({"epochs": a.epochs, "mean": float(np.mean(accs)), "worst": float(min(accs)),
                      "per_node": accs, "images": int(len(y)),
                      "seconds": round(time.monotonic() - t0, 2)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
