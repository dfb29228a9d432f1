"""Reads  dataset "mnist" (x_train, y_train); globals "hyperparameters", "global_model_params"
       ({layer: .npy bytes}; empty: the seeded initial model), "round" (shuffle seed)
Writes results "train_metrics" {"loss": [per epoch], "n_samples": N}, "model_params"
"""
import time

import numpy as np
import torch
import torch.nn as nn
import torch.optim as optim
from manta.light.task import Task
from manta.light.utils import bytes_to_numpy, numpy_to_bytes

from .model import device, initial_model


class Worker(Task):
    def __init__(self):
        super().__init__()
        t0 = time.monotonic()
        self.data = np.load(self.local.get_binary_data("mnist"))
        self.x = torch.from_numpy(self.data["x_train"].astype(np.float32))
        self.y = torch.from_numpy(self.data["y_train"].astype(np.int64))
        self.logger.info("loaded %d training images in %.3f s (device %s, %d thread(s))",
                         len(self.y), time.monotonic() - t0, device, torch.get_num_threads())

    def run(self):
        hp = self.world.globals["hyperparameters"]
        seed = int(hp.get("seed", 0))
        model = initial_model(seed)
        model.set_weights(bytes_to_numpy(self.world.globals["global_model_params"]))
        rnd = int(self.world.globals["round"] or 0)
        t0 = time.monotonic()
        metrics = self.train_model(model, hp, seed + rnd)
        self.logger.info("trained on %d images in %.3f s, loss per epoch: %s", len(self.y),
                         time.monotonic() - t0, ", ".join(f"{l:.4f}" for l in metrics["loss"]))
        self.world.results.add("train_metrics", dict(metrics, n_samples=len(self.y)))
        self.world.results.add("model_params", numpy_to_bytes(model.get_weights()))

    def train_model(self, model, hp: dict, seed: int) -> dict:
        model.to(device)
        criterion = getattr(nn, hp["loss"])(**hp.get("loss_params", {}))
        optimizer = getattr(optim, hp["optimizer"])(model.parameters(),
                                                    **hp.get("optimizer_params", {}))
        batch = int(hp["batch_size"])
        gen = torch.Generator().manual_seed(seed)
        losses = []
        model.train()
        for _ in range(int(hp["epochs"])):
            total = 0.0
            for idx in torch.randperm(len(self.y), generator=gen).split(batch):
                inputs, targets = self.x[idx].to(device), self.y[idx].to(device)
                optimizer.zero_grad()
                loss = criterion(model(inputs), targets)
                loss.backward()
                optimizer.step()
                total += loss.item() * len(idx)
            losses.append(total / len(self.y))
        return {"loss": losses}
