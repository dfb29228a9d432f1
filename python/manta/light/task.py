"""The base class of a task: user code subclasses it and runs it from its module's main().

    from manta.light.task import Task

    class Worker(Task):
        def run(self):
            data = self.local.get_binary_data("mnist")
            hp = self.world.globals["hyperparameters"]
            self.world.results.add("metrics", {"loss": 0.1})

    def main():
        Worker().run()
"""
import logging

from manta.light.local import Local
from manta.light.world import World

log = logging.getLogger("manta.light")


class Task:
    def __init__(self, host=None, port=None, task_id=None, swarm_id=None):
        """Connection settings default to the environment the node gives the task: RPC_HOST,
        RPC_PORT, TASK_ID, SWARM_ID. Nothing connects before the first call."""
        self.local = Local(host, port, task_id, swarm_id)
        self.world = World(host, port, task_id, swarm_id)

    def run(self):
        raise NotImplementedError("a Task subclass defines run()")

    def cleanup(self):
        """Close both connections (also done when the task object goes away)."""
        for client in (getattr(self, "local", None), getattr(self, "world", None)):
            if client is not None:
                try:
                    client.close()
                except Exception:  # at interpreter exit grpc may already be gone
                    pass

    def __del__(self):
        self.cleanup()
