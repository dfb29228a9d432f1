"""The base class of a task: user code subclasses it and runs it from its module's main().

    from manta.light.task import Task

    class Worker(Task):
        def run(self):
            data = np.load(self.local.get_binary_data("mnist"))
            hp = self.world.globals["hyperparameters"]
            self.logger.info("training with %s", hp)
            self.world.results.add("metrics", {"loss": 0.1})

    def main():
        Worker().run()
"""
import logging
import os

from manta.light.local import Local
from manta.light.logging_config import get_logger
from manta.light.world import World

log = logging.getLogger("manta.light")


def cpu_limit():
    """The CPUs this process may use: its affinity, lowered to the CFS quota of its cgroup
    (cgroup v2 cpu.max or v1 cpu.cfs_quota_us, the nearest limited ancestor) when there is one.
    None when nothing can be read."""
    try:
        n = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        n = os.cpu_count()
    quota = _cgroup_quota()
    if quota is not None:
        n = min(n or quota, quota)
    return n


def _cgroup_quota():
    import math
    try:
        with open("/proc/self/cgroup") as f:
            lines = f.read().splitlines()
    except OSError:
        return None
    best = None
    for line in lines:
        _, controllers, path = line.split(":", 2)
        if controllers == "":                       # v2
            base, files = "/sys/fs/cgroup", ("cpu.max",)
        elif "cpu" in controllers.split(","):        # v1
            base, files = "/sys/fs/cgroup/cpu", ("cpu.cfs_quota_us", "cpu.cfs_period_us")
            if not os.path.isdir(base):
                base = "/sys/fs/cgroup/" + controllers
        else:
            continue
        # The cgroup as seen from here (inside a cgroup namespace the path is "/"), then its
        # ancestors: the tightest quota wins.
        p = path
        while True:
            d = os.path.join(base, p.lstrip("/"))
            q = _read_quota(d, files)
            if q is not None:
                best = q if best is None else min(best, q)
            if p in ("/", ""):
                break
            p = os.path.dirname(p)
    return None if best is None else max(1, math.ceil(best))


def _read_quota(d, files):
    try:
        if len(files) == 1:
            with open(os.path.join(d, files[0])) as f:
                quota, period = f.read().split()[:2]
            if quota == "max":
                return None
        else:
            with open(os.path.join(d, files[0])) as f:
                quota = f.read().strip()
            with open(os.path.join(d, files[1])) as f:
                period = f.read().strip()
            if int(quota) < 0:
                return None
        return int(quota) / int(period)
    except (OSError, ValueError):
        return None


def _limit_threads():
    """Numerical libraries start one thread per CPU of the machine; a task limited to fewer
    CPUs would oversubscribe them. OMP_NUM_THREADS (and MKL/OpenBLAS's) for libraries imported
    later, torch.set_num_threads() when torch is already imported."""
    import sys
    n = cpu_limit()
    if not n:
        return
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(var, str(n))
    torch = sys.modules.get("torch")
    if torch is not None and hasattr(torch, "set_num_threads"):
        want = int(os.environ.get("OMP_NUM_THREADS", n) or n)
        if torch.get_num_threads() > want:
            torch.set_num_threads(want)


class Task:
    """What a task's code subclasses: `self.local` (the node's datasets), `self.world` (globals,
    results, scheduling), `self.logger` (reaches the task's log); override `run()`.
    Connection settings come from the environment the node gives the task (RPC_HOST, RPC_PORT,
    SWARM_ID, TASK_ID); nothing connects before the first call."""

    def __init__(self):
        self.logger = get_logger(type(self).__name__)
        self.local = Local()
        self.world = World()
        _limit_threads()

    def run(self):
        raise NotImplementedError("a Task subclass defines run()")

    def cleanup(self):
        """Close both connections (also done when the task object goes away)."""
        for client in (getattr(self, "local", None), getattr(self, "world", None)):
            if client is not None:
                try:
                    client.close()
                except Exception:  # at interpreter exit grpc may already be gone
                    pass

    def __del__(self):
        self.cleanup()
