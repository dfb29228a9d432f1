"""FedAvg tester (PyTorch): evaluates the global model on this node's held-out images."""
from .test_task import WorkerTest


def main():
    WorkerTest().run()
