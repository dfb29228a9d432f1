"""FedAvg tester: evaluates the global model on this node's test split.

Reads  dataset "mnist" (x_test, y_test), globals "global_model_params", "hyperparameters"
Writes result "metrics" {"val_loss": float, "val_acc": float}
"""
import time

import numpy as np

from manta.light.task import Task
from manta.light.utils import bytes_to_numpy


def evaluate(params, x, y):
    logits = x @ params["dense.weight"].T + params["dense.bias"]
    logits = logits - logits.max(axis=1, keepdims=True)
    logp = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
    return (float(-logp[np.arange(len(y)), y].mean()),
            float((logits.argmax(axis=1) == y).mean()))


class WorkerTest(Task):
    def __init__(self):
        super().__init__()
        t0 = time.monotonic()
        data = np.load(self.local.get_binary_data("mnist"))
        self.x = data["x_test"].reshape(len(data["x_test"]), -1).astype(np.float32)
        self.y = data["y_test"].astype(np.int64)
        self.logger.info("loaded %d held-out images in %.3f s", len(self.y), time.monotonic() - t0)

    def run(self):
        params = bytes_to_numpy(self.world.globals["global_model_params"])
        self.world.globals["hyperparameters"]  # read as the platform's tester does
        if not params:
            raise RuntimeError("global_model_params is empty: the aggregator has not run")
        val_loss, val_acc = evaluate(params, self.x, self.y)
        self.logger.info("val_loss %.4f, val_acc %.4f on %d held-out images", val_loss, val_acc,
                         len(self.y))
        self.world.results.add("metrics", {"val_loss": val_loss, "val_acc": val_acc})


def main():
    WorkerTest().run()
