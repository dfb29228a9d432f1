"""FedAvg worker: trains a softmax regression (numpy) on this node's "mnist" partition with
minibatch SGD, starting from the global model, and publishes the new weights.

Reads  dataset "mnist" (x_train, y_train), globals "hyperparameters", "global_model_params"
       ({layer: .npy bytes}; an empty map means: start from zeros), "round" (shuffle seed)
Writes results "train_metrics" {"loss": [per epoch], "n_samples": N}, "model_params"
"""
import time

import numpy as np

from manta.light.task import Task
from manta.light.utils import bytes_to_numpy, numpy_to_bytes

FEATURES, CLASSES = 28 * 28, 10


def initial_params():
    return {"dense.weight": np.zeros((CLASSES, FEATURES), np.float32),
            "dense.bias": np.zeros(CLASSES, np.float32)}


def softmax(logits):
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def train(params, x, y, hp, seed=0):
    """Minibatch SGD on the cross-entropy; returns (new params, mean loss of each epoch)."""
    w = params["dense.weight"].astype(np.float32).copy()
    b = params["dense.bias"].astype(np.float32).copy()
    lr = float(hp.get("optimizer_params", {}).get("lr", 0.1))
    batch = int(hp.get("batch_size", 32))
    rng = np.random.default_rng(seed)
    losses = []
    for _ in range(int(hp.get("epochs", 1))):
        total = 0.0
        for idx in np.array_split(rng.permutation(len(x)), max(1, len(x) // batch)):
            xb, yb = x[idx], y[idx]
            p = softmax(xb @ w.T + b)
            total += -np.log(p[np.arange(len(yb)), yb] + 1e-12).sum()
            p[np.arange(len(yb)), yb] -= 1  # d loss / d logits
            p /= len(yb)
            w -= lr * (p.T @ xb)
            b -= lr * p.sum(axis=0)
        losses.append(total / len(x))
    return {"dense.weight": w, "dense.bias": b}, losses


class Worker(Task):
    def __init__(self):
        super().__init__()
        t0 = time.monotonic()
        data = np.load(self.local.get_binary_data("mnist"))
        self.x = data["x_train"].reshape(len(data["x_train"]), -1).astype(np.float32)
        self.y = data["y_train"].astype(np.int64)
        self.logger.info("loaded %d training images in %.3f s", len(self.y), time.monotonic() - t0)

    def run(self):
        hp = self.world.globals["hyperparameters"]
        params = bytes_to_numpy(self.world.globals["global_model_params"]) or initial_params()
        # A new order of the images every round (the scheduler counts rounds in "round"): the
        # same order each time would make every round end on the same minibatches.
        seed = int(hp.get("seed", 0)) + int(self.world.globals["round"] or 0)
        t0 = time.monotonic()
        params, losses = train(params, self.x, self.y, hp, seed=seed)
        self.logger.info("trained on %d images in %.3f s, loss per epoch: %s", len(self.x),
                         time.monotonic() - t0, ", ".join(f"{l:.4f}" for l in losses))
        self.world.results.add("train_metrics", {"loss": losses, "n_samples": len(self.x)})
        self.world.results.add("model_params", numpy_to_bytes(params))


def main():
    Worker().run()
