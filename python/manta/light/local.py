"""self.local: the node's datasets, read-only, over node.light_service.Local
(task-contract.md 4, 6). A dataset is addressed by its name, the key of the node's
[datasets.mappings]; the task never sees host paths."""
import io
import logging

from manta._proto.common import system_pb2
from manta._proto.node import light_service_pb2 as lpb
from manta.light._transport import Channel, Config, pair

log = logging.getLogger("manta.light")
SERVICE = "/node.light_service.Local/"
ProtoPath = lpb.ProtoPath  # .name (dataset), .value (path inside a folder dataset), .is_file


def _name_value(path):
    """A dataset name, or a ProtoPath(name=dataset, value=path inside it)."""
    if isinstance(path, str):
        return path, ""
    return path.name, getattr(path, "value", "")


class Local:
    def __init__(self, host=None, port=None, task_id=None, swarm_id=None):
        self.config = Config.from_env(host, port, task_id, swarm_id)
        self._channel = Channel(self.config)
        log.info("Local configured with %s", self.config.describe())

    def _data_request(self, name: str):
        return lpb.DataRequest(task_id=pair(self.config.task_id),
                               swarm_id=pair(self.config.swarm_id), name=name)

    def get_binary_data(self, name) -> bytes:
        """The bytes of a file dataset (name or ProtoPath; like the SDK, a ProtoPath's value
        is not sent)."""
        name, _ = _name_value(name)
        chunks = self._channel.server_stream(SERVICE + "GetBinaryData", self._data_request(name),
                                             system_pb2.Binary)
        return b"".join(c.content for c in chunks)

    def get_numpy_data(self, name):
        """np.load() of a dataset's bytes: an NpzFile for .npz, an ndarray for .npy."""
        import numpy as np
        return np.load(io.BytesIO(self.get_binary_data(name)), allow_pickle=False)

    def list_dir(self, path) -> list:
        """Immediate children of a folder dataset (or of a folder inside it): ProtoPath
        messages with .value = entry name and .is_file."""
        name, value = _name_value(path)
        r = self._channel.unary(SERVICE + "ListDir",
                                lpb.DirRequest(data_request=self._data_request(name), path=value),
                                lpb.ListDirResponse)
        return list(r.paths)

    def exists(self, path) -> bool:
        name, value = _name_value(path)
        r = self._channel.unary(SERVICE + "Exists",
                                lpb.DirRequest(data_request=self._data_request(name), path=value),
                                lpb.ExistsResponse)
        return r.value

    def read_file_lines(self, path, encoding=None, errors=None, newline=None) -> list:
        """The lines of a text file dataset (each with its line ending), decoded from the
        UTF-8 the node sends whatever the file's encoding."""
        name, value = _name_value(path)
        req = lpb.ReadText(data_request=self._data_request(name),
                           path=lpb.ProtoPath(name=name, value=value), encoding=encoding or "",
                           errors=errors or "", newline=newline or "")
        chunks = self._channel.server_stream(SERVICE + "ReadFileLines", req, system_pb2.Binary)
        return [c.content.decode("utf-8") for c in chunks]

    def close(self):
        self._channel.close()

