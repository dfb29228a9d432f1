"""FedAvg worker (PyTorch): trains the MLP on this node's "mnist" partition, starting from the
global model, and publishes the new weights."""
from .worker_task import Worker


def main():
    Worker().run()
