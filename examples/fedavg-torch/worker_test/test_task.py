"""Reads  dataset "mnist" (x_test, y_test); globals "global_model_params", "hyperparameters"
Writes result "metrics" {"val_loss": float, "val_acc": float}
"""
import time

import numpy as np
import torch
import torch.nn as nn
from manta.light.task import Task
from manta.light.utils import bytes_to_numpy

from .model import MLP, device


def evaluate(model, x, y, loss: str = "CrossEntropyLoss"):
    """(val_loss, val_acc) of a model on tensors x, y."""
    model.to(device).eval()
    with torch.no_grad():
        out = model(x.to(device))
        return (getattr(nn, loss)()(out, y.to(device)).item(),
                (out.argmax(1) == y.to(device)).float().mean().item())


class WorkerTest(Task):
    def __init__(self):
        super().__init__()
        t0 = time.monotonic()
        data = np.load(self.local.get_binary_data("mnist"))
        self.x = torch.from_numpy(data["x_test"].astype(np.float32))
        self.y = torch.from_numpy(data["y_test"].astype(np.int64))
        self.logger.info("loaded %d held-out images in %.3f s", len(self.y), time.monotonic() - t0)

    def run(self):
        weights = bytes_to_numpy(self.world.globals["global_model_params"])
        hp = self.world.globals["hyperparameters"]
        if not weights:
            raise RuntimeError("global_model_params is empty: the aggregator has not run")
        model = MLP()
        model.set_weights(weights)
        val_loss, val_acc = evaluate(model, self.x, self.y, hp.get("loss", "CrossEntropyLoss"))
        self.logger.info("val_loss %.4f, val_acc %.4f on %d held-out images", val_loss, val_acc,
                         len(self.y))
        self.world.results.add("metrics", {"val_loss": val_loss, "val_acc": val_acc})
