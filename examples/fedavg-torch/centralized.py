#!/usr/bin/python3
"""The centralized baseline of the PyTorch FedAvg example: the same MLP (worker/model.py, same
hyperparameters, same initial weights) trained on every node's partition put together, for the
same number of epochs the federation ran, then evaluated on each node's held-out images as
worker_test does.

    centralized.py --data DIR --epochs N [--swarm swarm.toml]

DIR holds node_<i>/mnist.npz (examples/prepare_data.py). Prints one JSON line:
{"epochs": N, "mean": ..., "worst": ..., "per_node": [...], "images": N, "seconds": ...}.
Needs python3-torch and python/ on PYTHONPATH (the modules import manta.light).
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

import torch  # noqa: E402

from worker.model import initial_model  # noqa: E402
from worker.worker_task import Worker  # noqa: E402
from worker_test.test_task import evaluate  # noqa: E402


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
    t0 = time.monotonic()
    w = Worker.__new__(Worker)  # its training loop, on everything, without a node
    w.x = torch.from_numpy(np.concatenate([p["x_train"] for p in parts]).astype(np.float32))
    w.y = torch.from_numpy(np.concatenate([p["y_train"] for p in parts]).astype(np.int64))
    seed = int(hp.get("seed", 0))
    model = initial_model(seed)
    for e in range(a.epochs):
        w.train_model(model, dict(hp, epochs=1), seed + e)
    accs = [evaluate(model, torch.from_numpy(p["x_test"].astype(np.float32)),
                     torch.from_numpy(p["y_test"].astype(np.int64)))[1] for p in parts]
    print(json.dumps({"epochs": a.epochs, "mean": float(np.mean(accs)), "worst": float(min(accs)),
                      "per_node": accs, "images": int(len(w.y)),
                      "seconds": round(time.monotonic() - t0, 2)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
