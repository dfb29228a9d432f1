"""self.world.globals: swarm-wide values by tag, last write wins (task-contract.md 5, 7).

    hp = self.world.globals["hyperparameters"]         # msgpack-decoded
    self.world.globals["global_model_params"] = value  # msgpack-encoded
    hp = await self.world.globals.async_get("hyperparameters")
    await self.world.globals.async_set("round", 3)
"""
from manta.light._transport import Channel, Config, pair, run_async
from manta.light.results import SERVICE, chunks, pack, unpack


class Globals:
    def __init__(self, host=None, port=None, swarm_id=None, task_id=None):
        self.config = Config.from_env(host, port, swarm_id, task_id)
        self._channel = Channel(self.config)

    @classmethod
    def _shared(cls, config: Config, channel: Channel) -> "Globals":
        """World's Globals: its configuration and connection (one per World, as the SDK)."""
        self = cls.__new__(cls)
        self.config, self._channel = config, channel
        return self

    def __getitem__(self, tag: str):
        """The value of a global. KeyError when the node answers with no data at all (the SDK
        would retry 3 times, then fail to decode b"")."""
        from manta._proto.common import results_pb2
        from manta._proto.node import light_service_pb2 as lpb
        req = lpb.GetGlobalRequest(swarm_id=pair(self.config.swarm_id),
                                   task_id=pair(self.config.task_id), tag=tag)
        got = self._channel.server_stream(SERVICE + "GetGlobal", req, results_pb2.GlobalValue)
        if not got:
            raise KeyError(tag)
        return unpack(b"".join(g.data for g in got))

    def __setitem__(self, tag: str, value) -> None:
        from manta._proto.common import system_pb2
        from manta._proto.node import light_service_pb2 as lpb
        ids = dict(swarm_id=pair(self.config.swarm_id), task_id=pair(self.config.task_id))
        msgs = [lpb.SetGlobalRequest(tag=tag, data=c, **ids) for c in chunks(pack(value))]
        self._channel.client_stream(SERVICE + "SetGlobal", msgs, system_pb2.Ok,
                                    repeatable=True)  # an overwrite

    def get(self, tag: str, default=None):
        """The value, or `default` when the global has no value (KeyError above, or the
        status NOT_FOUND). Not in the SDK."""
        from manta.common.errors import MantaGRPCError
        try:
            return self[tag]
        except KeyError:
            return default
        except MantaGRPCError as e:
            if e.status_code.name != "NOT_FOUND":
                raise
            return default

    async def async_get(self, tag: str):
        return await run_async(self.__getitem__, tag)

    async def async_set(self, tag: str, value) -> None:
        return await run_async(self.__setitem__, tag, value)

    def close(self):
        self._channel.close()
