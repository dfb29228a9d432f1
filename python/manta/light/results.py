"""self.world.results: values a task publishes for later tasks (task-contract.md 5, 7).

    self.world.results.add("metrics", {"val_acc": 0.9})   # msgpack, for this node/task/iteration
    every = self.world.results.select("metrics")          # {node_hex_id: value} of this iteration

`add` stores msgpack(value) for this node, task and iteration; `select(tag)` returns the value
of every node that produced `tag` in the caller's iteration. `async_add`, `async_select` are
the coroutine forms."""
import enum
import uuid

from manta.light._transport import Channel, Config, id_hex, pair, run_async, unpair

SERVICE = "/node.light_service.World/"
CHUNK_SIZE = 2 ** 32  # as the SDK: in practice one message for the whole value


class ResultMethod(enum.IntEnum):
    """common.results.ResultMethod: which of a node's values select() returns."""
    UNSPECIFIED = 0
    LAST = 1
    ALL = 2


ALL = ResultMethod.ALL
LAST = ResultMethod.LAST


def pack(value) -> bytes:
    import msgpack
    return msgpack.packb(value, use_bin_type=True)


def unpack(data: bytes):
    import msgpack
    return msgpack.unpackb(data, raw=False)


def chunks(data: bytes):
    """The SDK's chunking: pieces of CHUNK_SIZE bytes (at least one, even for b"")."""
    return [data[i:i + CHUNK_SIZE] for i in range(0, len(data), CHUNK_SIZE)] or [b""]


class Results:
    def __init__(self, host=None, port=None, swarm_id=None, task_id=None):
        self.config = Config.from_env(host, port, swarm_id, task_id)
        self._channel = Channel(self.config)

    @classmethod
    def _shared(cls, config: Config, channel: Channel) -> "Results":
        """World's Results: its configuration and connection (one per World, as the SDK)."""
        self = cls.__new__(cls)
        self.config, self._channel = config, channel
        return self

    def add(self, tag: str, value) -> None:
        from manta._proto.common import system_pb2
        from manta._proto.node import light_service_pb2 as lpb
        ids = dict(task_id=pair(self.config.task_id), swarm_id=pair(self.config.swarm_id))
        msgs = [lpb.LightResult(tag=tag, data=c, **ids) for c in chunks(pack(value))]
        # One id per call, the same on every repeat: the manager stores the value once.
        request = (("manta-request-id", uuid.uuid4().hex),)
        self._channel.client_stream(SERVICE + "AddTaskResult", msgs, system_pb2.Ok,
                                    repeatable=True, metadata=request)

    def select(self, tag: str, size: int = -1, method: ResultMethod = ResultMethod.ALL) -> dict:
        """{node_hex_id: value}: chunks grouped by node id in arrival order, concatenated, then
        msgpack-decoded."""
        from manta._proto.common import results_pb2
        from manta._proto.node import light_service_pb2 as lpb
        q = lpb.LightResultQuery(task_id=pair(self.config.task_id),
                                 swarm_id=pair(self.config.swarm_id), tag=tag, size=size,
                                 method=int(method))
        parts = {}
        for c in self._channel.server_stream(SERVICE + "GetTaskResult", q,
                                             results_pb2.ChunkResultValues):
            parts.setdefault(unpair(c.node_id), []).append(c.data)
        return {id_hex(node): unpack(b"".join(p)) for node, p in parts.items()}

    async def async_add(self, tag: str, value) -> None:
        return await run_async(self.add, tag, value)

    async def async_select(self, tag: str, size: int = -1,
                           method: ResultMethod = ResultMethod.ALL) -> dict:
        return await run_async(self.select, tag, size, method)

    def close(self):
        self._channel.close()
