"""self.world.globals: swarm-wide values by tag, last write wins (task-contract.md 5, 7).

    hp = self.world.globals["hyperparameters"]       # msgpack-decoded
    self.world.globals["global_model_params"] = value  # msgpack-encoded
"""
import grpc

from manta.common.errors import MantaGRPCError
from manta._proto.common import results_pb2, system_pb2
from manta._proto.node import light_service_pb2 as lpb
from manta.light._transport import Channel, Config, pair
from manta.light.results import SERVICE, chunks, pack, unpack


class Globals:
    def __init__(self, config: Config, channel: Channel):
        self.config = config
        self._channel = channel

    def __getitem__(self, tag: str):
        """The value of a global. KeyError when the node answers with no data at all (the SDK
        would retry 3 times, then fail to decode b"")."""
        req = lpb.GetGlobalRequest(swarm_id=pair(self.config.swarm_id),
                                   task_id=pair(self.config.task_id), tag=tag)
        got = self._channel.server_stream(SERVICE + "GetGlobal", req, results_pb2.GlobalValue)
        if not got:
            raise KeyError(tag)
        return unpack(b"".join(g.data for g in got))

    def __setitem__(self, tag: str, value) -> None:
        ids = dict(swarm_id=pair(self.config.swarm_id), task_id=pair(self.config.task_id))
        msgs = [lpb.SetGlobalRequest(tag=tag, data=c, **ids) for c in chunks(pack(value))]
        self._channel.client_stream(SERVICE + "SetGlobal", msgs, system_pb2.Ok)

    def get(self, tag: str, default=None):
        """The value, or `default` when the global has no value (KeyError above, or the
        status NOT_FOUND)."""
        try:
            return self[tag]
        except KeyError:
            return default
        except MantaGRPCError as e:
            if e.status_code != grpc.StatusCode.NOT_FOUND:
                raise
            return default
