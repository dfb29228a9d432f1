"""self.world: the swarm seen from a task, over node.light_service.World (task-contract.md 4,
7): globals, results, and the two swarm-level requests a scheduler makes.

    self.world.schedule_next_iter(node_ids=[...], task_to_schedule_alias="worker")
    self.world.stop_swarm()
    await self.world.async_stop_swarm()
"""
import logging

from manta.light._transport import Channel, Config, pair, parse_id, run_async
from manta.light.globals import Globals
from manta.light.results import SERVICE, Results

log = logging.getLogger("manta.light")


class World:
    def __init__(self, host=None, port=None, swarm_id=None, task_id=None):
        self.config = Config.from_env(host, port, swarm_id, task_id)
        self._channel = Channel(self.config)  # shared by globals and results, as the SDK
        self.globals = Globals._shared(self.config, self._channel)
        self.results = Results._shared(self.config, self._channel)
        log.info("World configured with %s", self.config.describe())

    def _env_id(self):
        from manta._proto.common import system_pb2
        return system_pb2.EnvId(swarm_id=pair(self.config.swarm_id),
                                task_id=pair(self.config.task_id))

    def stop_swarm(self) -> None:
        """Ask the Manager to stop the whole swarm. The task goes on and exits normally."""
        from manta._proto.common import system_pb2
        self._channel.unary(SERVICE + "StopSwarm", self._env_id(), system_pb2.Ok)

    def schedule_next_iter(self, node_ids: list[str], task_to_schedule_alias: str) -> None:
        """Ask the Manager to run the graph task `task_to_schedule_alias` again, as the next
        iteration, on exactly `node_ids` (hex ids, the keys of results.select())."""
        from manta._proto.common import system_pb2, tasks_pb2
        req = tasks_pb2.TaskScheduling(
            node_ids=[pair(parse_id(n, "node id")) for n in node_ids],
            task_id=pair(self.config.task_id), task_to_schedule_alias=task_to_schedule_alias,
            swarm_id=pair(self.config.swarm_id))
        self._channel.unary(SERVICE + "ScheduleTask", req, system_pb2.Ok)

    async def async_stop_swarm(self) -> None:
        return await run_async(self.stop_swarm)

    async def async_schedule_next_iter(self, node_ids: list[str],
                                       task_to_schedule_alias: str) -> None:
        return await run_async(self.schedule_next_iter, node_ids, task_to_schedule_alias)

    def close(self):
        self._channel.close()
