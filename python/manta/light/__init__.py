"""manta.light: what runs inside a task container (task-contract.md).

Importing it configures logging as the SDK does (root handler on stderr, level INFO) and reads
the connection settings once, so that a bad RPC_PORT fails at import as with the SDK."""
import logging
import sys

_FORMAT = "%(asctime)s - %(name)s - %(levelname)s - %(message)s (%(filename)s:%(lineno)d)"
if not logging.getLogger().handlers:
    _h = logging.StreamHandler(sys.stderr)
    _h.setFormatter(logging.Formatter(_FORMAT))
    logging.getLogger().addHandler(_h)
    logging.getLogger().setLevel(logging.INFO)

from manta.light._transport import Config as _Config  # noqa: E402

_Config.from_env()  # ValueError now on a bad RPC_PORT / TASK_ID / SWARM_ID

from manta.light.local import Local  # noqa: E402,F401
from manta.light.results import ResultMethod  # noqa: E402,F401
from manta.light.task import Task  # noqa: E402,F401
from manta.light.world import World  # noqa: E402,F401
