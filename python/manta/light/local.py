"""self.local: the node's datasets, read-only, over node.light_service.Local
(task-contract.md 4, 6). A dataset is addressed by its name, the key of the node's
[datasets.mappings]; the task never sees host paths.

    raw = self.local.get_binary_data("mnist")          # io.BytesIO
    data = np.load(raw)                                # as the platform's MNIST example
    arrays = self.local.get_numpy_data("mnist")        # the same, in one call
    for p in self.local.list_dir("images").paths: ...  # ProtoPath(value=entry, is_file)
    text = self.local.read_file_lines("notes")         # io.StringIO
    self.local.exists("mnist")                         # bool

Every method has an `async_<name>` coroutine twin. A dataset may be named by a `str`, a
`ProtoPath(name=dataset, value=path inside it)` or a `MantaPath("dataset/path/inside")`.
"""
import io
import logging
from dataclasses import dataclass, field

from manta.light._transport import Channel, Config, pair, run_async

log = logging.getLogger("manta.light")
SERVICE = "/node.light_service.Local/"


def __getattr__(name):
    # ProtoPath is the generated message: imported (with protobuf) only when asked for.
    if name == "ProtoPath":
        from manta._proto.node import light_service_pb2 as lpb
        return lpb.ProtoPath
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


@dataclass
class ListDirResponse:
    """What list_dir() returns: `.paths`, a list of ProtoPath (`.value` = the entry's name,
    `.is_file`), in the node's directory order."""
    paths: list = field(default_factory=list)

    def __iter__(self):
        return iter(self.paths)

    def __len__(self):
        return len(self.paths)


def _name_value(path):
    """(dataset name, path inside it) of a str, a ProtoPath or a MantaPath."""
    if isinstance(path, str):
        return path, ""
    split = getattr(path, "_dataset_and_path", None)
    if split is not None:  # MantaPath("dataset/inside/the/dataset")
        return split()
    return path.name, getattr(path, "value", "")


class Local:
    def __init__(self, host=None, port=None, swarm_id=None, task_id=None):
        self.config = Config.from_env(host, port, swarm_id, task_id)
        self._channel = Channel(self.config)
        log.info("Local configured with %s", self.config.describe())

    def _data_request(self, name: str):
        from manta._proto.node import light_service_pb2 as lpb
        return lpb.DataRequest(task_id=pair(self.config.task_id),
                               swarm_id=pair(self.config.swarm_id), name=name)

    def _dir_request(self, path):
        from manta._proto.node import light_service_pb2 as lpb
        name, value = _name_value(path)
        return lpb.DirRequest(data_request=self._data_request(name), path=value)

    def get_binary_data(self, name) -> io.BytesIO:
        """The content of a file dataset, as a file object at offset 0 (np.load() takes it).
        A ProtoPath's value is not sent (as the SDK); a MantaPath inside a folder dataset is
        sent as the whole path, which this project's node resolves (its first component names
        the dataset); the reference node does not."""
        from manta._proto.common import system_pb2
        if not isinstance(name, str) and hasattr(name, "_dataset_and_path"):
            ds, inside = name._dataset_and_path()
            name = f"{ds}/{inside}" if inside else ds
        elif not isinstance(name, str):
            name = name.name
        chunks = self._channel.server_stream(SERVICE + "GetBinaryData", self._data_request(name),
                                             system_pb2.Binary)
        return io.BytesIO(b"".join(c.content for c in chunks))

    def get_numpy_data(self, name):
        """np.load() of a dataset's bytes: an NpzFile for .npz, an ndarray for .npy (pickles
        refused)."""
        import numpy as np
        return np.load(self.get_binary_data(name), allow_pickle=False)

    def list_dir(self, dir) -> ListDirResponse:
        """The immediate children of a folder dataset (or of a folder inside it)."""
        from manta._proto.node import light_service_pb2 as lpb
        r = self._channel.unary(SERVICE + "ListDir", self._dir_request(dir), lpb.ListDirResponse)
        return ListDirResponse(paths=list(r.paths))

    def read_file_lines(self, file, encoding=None, errors=None, newline=None) -> io.StringIO:
        """A text file dataset (or a file inside a folder dataset), decoded by the node with
        `encoding` (default UTF-8), `errors` and `newline` as Python's open() does, returned as
        a text file object at offset 0: iterate it for lines, .read() for the whole text."""
        from manta._proto.common import system_pb2
        from manta._proto.node import light_service_pb2 as lpb
        name, value = _name_value(file)
        req = lpb.ReadText(data_request=self._data_request(name),
                           path=lpb.ProtoPath(name=name, value=value), encoding=encoding or "",
                           errors=errors or "", newline=newline or "")
        chunks = self._channel.server_stream(SERVICE + "ReadFileLines", req, system_pb2.Binary)
        return io.StringIO("".join(c.content.decode("utf-8") for c in chunks), newline="")

    def exists(self, file) -> bool:
        """Whether a dataset (or a path inside a folder dataset) exists; never an error."""
        from manta._proto.node import light_service_pb2 as lpb
        r = self._channel.unary(SERVICE + "Exists", self._dir_request(file), lpb.ExistsResponse)
        return bool(r.value)

    async def async_get_binary_data(self, name) -> io.BytesIO:
        return await run_async(self.get_binary_data, name)

    async def async_get_numpy_data(self, name):
        return await run_async(self.get_numpy_data, name)

    async def async_list_dir(self, dir) -> ListDirResponse:
        return await run_async(self.list_dir, dir)

    async def async_read_file_lines(self, file, encoding=None, errors=None,
                                    newline=None) -> io.StringIO:
        return await run_async(self.read_file_lines, file, encoding, errors, newline)

    async def async_exists(self, file) -> bool:
        return await run_async(self.exists, file)

    def close(self):
        self._channel.close()
