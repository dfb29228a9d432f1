"""The model of the example: a multilayer perceptron for 28x28 images, 10 classes
(784-256-128-10, ReLU; 235,146 parameters), with the weight exchange the platform's examples
use: get_weights() -> {layer: numpy array}, set_weights({layer: array})."""
import numpy as np
import torch
import torch.nn as nn

# Task code that asks for a GPU runs on one (the swarm's task has gpu = true and the node has
# one); on the CPU it works the same, with as many threads as the task's CPU limit allows.
device = torch.device("cuda" if torch.cuda.is_available() else "cpu")


class MLP(nn.Module):
    def __init__(self):
        super().__init__()
        self.layers = nn.Sequential(
            nn.Flatten(),
            nn.Linear(28 * 28, 256), nn.ReLU(),
            nn.Linear(256, 128), nn.ReLU(),
            nn.Linear(128, 10))

    def forward(self, x):
        return self.layers(x)

    def get_weights(self) -> dict:
        return {k: v.detach().cpu().numpy() for k, v in self.state_dict().items()}

    def set_weights(self, weights: dict) -> None:
        if weights:
            self.load_state_dict({k: torch.from_numpy(np.asarray(v)) for k, v in weights.items()})


def initial_model(seed: int = 0) -> MLP:
    """The same initial weights on every node (the first round starts from them)."""
    torch.manual_seed(seed)
    return MLP()
