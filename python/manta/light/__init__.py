"""manta.light: what runs inside a task container (task-contract.md), the SDK's task API.

    from manta.light import Task, MantaPath, numpy_to_bytes, bytes_to_numpy

Importing it configures logging as the SDK does (root handler on stderr, level INFO) and builds
the module-level Local of manta.light.path from the environment, so that a bad RPC_PORT fails at
import as with the SDK. Nothing connects, and neither grpc, protobuf, numpy nor msgpack is
imported, before the first call that needs them."""
from manta.light import logging_config  # noqa: F401  (configures logging)
from manta.light import globals, local, path, results, task, utils, world  # noqa: F401,A004
from manta.light.globals import Globals
from manta.light.local import Local
from manta.light.path import MantaPath
from manta.light.results import ResultMethod, Results
from manta.light.task import Task
from manta.light.utils import (bytes_to_dict, bytes_to_numpy, bytes_to_torchmodel, dict_to_bytes,
                               numpy_to_bytes, torchmodel_to_bytes)
from manta.light.world import World

__all__ = ["Task", "Local", "World", "Globals", "Results", "MantaPath", "bytes_to_dict",
           "dict_to_bytes", "numpy_to_bytes", "bytes_to_numpy", "torchmodel_to_bytes",
           "bytes_to_torchmodel", "ResultMethod", "task", "local", "world", "globals", "results",
           "utils", "path", "logging_config"]
