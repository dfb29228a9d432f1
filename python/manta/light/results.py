"""self.world.results: values a task publishes for later tasks (task-contract.md 5, 7).

add(tag, value) stores msgpack(value) for this node, task and iteration; select(tag) returns the
value of every node that produced `tag` in the caller's iteration, as {node_hex_id: value}."""
import enum

import msgpack

from manta._proto.common import results_pb2, system_pb2
from manta._proto.node import light_service_pb2 as lpb
from manta.light._transport import Channel, Config, id_hex, pair, unpair

SERVICE = "/node.light_service.World/"
CHUNK_SIZE = 2 ** 32  # as the SDK: in practice one message for the whole value


class ResultMethod(enum.IntEnum):
    UNSPECIFIED = 0
    LAST = 1
    ALL = 2


ALL = ResultMethod.ALL
LAST = ResultMethod.LAST


def pack(value) -> bytes:
    return msgpack.packb(value, use_bin_type=True)


def unpack(data: bytes):
    return msgpack.unpackb(data, raw=False)


def chunks(data: bytes):
    """The SDK's chunking: pieces of CHUNK_SIZE bytes (at least one, even for b"")."""
    return [data[i:i + CHUNK_SIZE] for i in range(0, len(data), CHUNK_SIZE)] or [b""]


class Results:
    def __init__(self, config: Config, channel: Channel):
        self.config = config
        self._channel = channel

    def add(self, tag: str, value) -> None:
        ids = dict(task_id=pair(self.config.task_id), swarm_id=pair(self.config.swarm_id))
        msgs = [lpb.LightResult(tag=tag, data=c, **ids) for c in chunks(pack(value))]
        self._channel.client_stream(SERVICE + "AddTaskResult", msgs, system_pb2.Ok)

    def select(self, tag: str, size: int = -1, method=ResultMethod.ALL) -> dict:
        """{node_hex_id: value}: chunks grouped by node id in arrival order, concatenated, then
        msgpack-decoded."""
        q = lpb.LightResultQuery(task_id=pair(self.config.task_id),
                                 swarm_id=pair(self.config.swarm_id), tag=tag, size=size,
                                 method=int(method))
        parts = {}
        for c in self._channel.server_stream(SERVICE + "GetTaskResult", q,
                                             results_pb2.ChunkResultValues):
            parts.setdefault(unpair(c.node_id), []).append(c.data)
        return {id_hex(node): unpack(b"".join(p)) for node, p in parts.items()}
