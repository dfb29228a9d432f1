"""FedAvg aggregator: the per-layer mean of every worker's weights of this round, weighted by
the number of training samples when the workers reported it, becomes the global model.

Reads  results "model_params" and "train_metrics" of this round
Writes global "global_model_params"
"""
import numpy as np

from manta.light.task import Task
from manta.light.utils import bytes_to_numpy, numpy_to_bytes


def fedavg(models, weights=None):
    """{node: {layer: array}} -> {layer: weighted mean over the nodes}."""
    nodes = sorted(models)
    w = np.array([weights[n] for n in nodes] if weights else [1.0] * len(nodes), np.float64)
    w /= w.sum()
    return {layer: sum(wi * models[n][layer].astype(np.float64) for wi, n in zip(w, nodes))
            .astype(models[nodes[0]][layer].dtype) for layer in models[nodes[0]]}


class Aggregator(Task):
    def run(self):
        models = bytes_to_numpy(self.world.results.select("model_params"))
        if not models:
            raise RuntimeError("no model_params in this round")
        metrics = self.world.results.select("train_metrics")
        weights = None
        if set(models) <= set(metrics) and all("n_samples" in metrics[n] for n in models):
            weights = {n: metrics[n]["n_samples"] for n in models}
        self.world.globals["global_model_params"] = numpy_to_bytes(fedavg(models, weights))
        self.logger.info("averaged the models of %d node(s)%s", len(models),
                         f", weighted by samples {weights}" if weights else "")


def main():
    Aggregator().run()
