"""self.world: the swarm seen from a task, over node.light_service.World (task-contract.md 4,
7): globals, results, and the two swarm-level requests a scheduler makes."""
import logging

from manta._proto.common import system_pb2, tasks_pb2
from manta.light._transport import Channel, Config, pair, parse_id
from manta.light.globals import Globals
from manta.light.results import SERVICE, Results

log = logging.getLogger("manta.light")


class World:
    def __init__(self, host=None, port=None, task_id=None, swarm_id=None):
        self.config = Config.from_env(host, port, task_id, swarm_id)
        self._channel = Channel(self.config)  # shared by globals and results, as the SDK
        self.globals = Globals(self.config, self._channel)
        self.results = Results(self.config, self._channel)
        log.info("World configured with %s", self.config.describe())

    def _env_id(self):
        return system_pb2.EnvId(swarm_id=pair(self.config.swarm_id),
                                task_id=pair(self.config.task_id))

    def stop_swarm(self) -> None:
        """Ask the Manager to stop the whole swarm. The task goes on and exits normally."""
        self._channel.unary(SERVICE + "StopSwarm", self._env_id(), system_pb2.Ok)

    def schedule_next_iter(self, node_ids, task_to_schedule_alias: str) -> None:
        """Ask the Manager to run the graph task `task_to_schedule_alias` again, as the next
        iteration, on exactly `node_ids` (hex ids, the keys of results.select())."""
        req = tasks_pb2.TaskScheduling(
            node_ids=[pair(parse_id(n, "node id")) for n in node_ids],
            task_id=pair(self.config.task_id), task_to_schedule_alias=task_to_schedule_alias,
            swarm_id=pair(self.config.swarm_id))
        self._channel.unary(SERVICE + "ScheduleTask", req, system_pb2.Ok)

    def close(self):
        self._channel.close()
