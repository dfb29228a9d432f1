#!/usr/bin/python3
"""Benchmark: a task's start-up, from `python /usr/src/module.pyz` to its first call on the
light service, in each task image, with this tree's runtime (python/manta) and with the runtime
of another git revision (--before, default HEAD: what is committed).

    bench/task_startup.py [--runs 9] [--before HEAD] [--cache DIR]

Both images are built first (scripts/build-task-image, cached: the runtime layer follows this
tree), unpacked into a temporary folder and entered with chroot (what runc does, without the
container's own set-up, which bench/deploy_latency.py measures), with PYTHONDONTWRITEBYTECODE
set: like a container, which starts from the image every time, a run keeps no .pyc it writes.
"this tree's runtime" is the image as built (with its compiled runtime); the --before runtime
replaces it (sources only, as images were built before). The bench serves the light
service's World.GetGlobal itself (python3-grpcio, on loopback) and times, for each run, the
moment the task's process was started to the moment its first call arrives. Modules:

  * `minimal`:   from manta.light.task import Task; a Task whose run() reads one global
                 (what a scheduler or aggregator does first);
  * `torch`:     the same after `import numpy, torch` (what a PyTorch worker does first);
  * references:  `python -c pass`, `python -c "import torch"` (the interpreter, torch alone).
Needs root (chroot).
"""
import argparse
import io
import os
import pathlib
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import zipfile
from concurrent import futures

HERE = pathlib.Path(__file__).resolve().parent
SOURCE = HERE.parent
sys.path.insert(0, str(SOURCE / "python"))

import grpc  # noqa: E402
import msgpack  # noqa: E402

from manta._proto.common import results_pb2  # noqa: E402
from manta._proto.node import light_service_pb2 as lpb  # noqa: E402

SITE = "usr/lib/python3/dist-packages/manta"
MODULES = {
    "minimal": "from manta.light.task import Task\n",
    "torch": "import numpy, torch\nfrom manta.light.task import Task\n",
}
TASK = ("class Job(Task):\n"
        "    def run(self):\n"
        "        self.world.globals['hyperparameters']\n"
        "def main():\n"
        "    Job().run()\n")


class Light:
    """World.GetGlobal only: records when each call arrives."""

    def __init__(self):
        self.arrivals = []
        self.event = threading.Event()
        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        self.server.add_generic_rpc_handlers([grpc.method_handlers_generic_handler(
            "node.light_service.World", {"GetGlobal": grpc.unary_stream_rpc_method_handler(
                self.get_global, lpb.GetGlobalRequest.FromString,
                results_pb2.GlobalValue.SerializeToString)})])
        self.port = self.server.add_insecure_port("127.0.0.1:0")
        self.server.start()

    def get_global(self, request, context):
        self.arrivals.append(time.monotonic())
        self.event.set()
        yield results_pb2.GlobalValue(data=msgpack.packb({"lr": 0.1}))


def pyz(code: str) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("job.py", code + TASK)
        z.writestr("__main__.py", "# -*- coding: utf-8 -*-\nimport job\njob.main()\n")
    return buf.getvalue()


def chroot(rootfs, argv, env=(), timeout=120):
    return subprocess.Popen(["chroot", str(rootfs), "/usr/bin/env", "-i", "PATH=/usr/bin:/bin",
                             "LANG=C.UTF-8", "PYTHONDONTWRITEBYTECODE=1", *env, *argv],
                            stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def time_plain(rootfs, code, runs):
    out = []
    for _ in range(runs):
        t0 = time.monotonic()
        p = chroot(rootfs, ["python", "-c", code])
        p.wait(120)
        out.append(time.monotonic() - t0)
    return out


def time_first_call(rootfs, light, code, runs):
    (rootfs / "usr/src").mkdir(parents=True, exist_ok=True)
    (rootfs / "usr/src/module.pyz").write_bytes(pyz(code))
    env = [f"RPC_HOST=127.0.0.1", f"RPC_PORT={light.port}", "TASK_ID=1", "SWARM_ID=2"]
    out = []
    for _ in range(runs):
        light.event.clear()
        n = len(light.arrivals)
        t0 = time.monotonic()
        p = chroot(rootfs, ["python", "/usr/src/module.pyz"], env)
        if not light.event.wait(120) or len(light.arrivals) <= n:
            p.kill()
            raise RuntimeError("no call from the task: " + p.communicate()[1].decode()[-2000:])
        out.append(light.arrivals[n] - t0)
        _, err = p.communicate(timeout=120)
        if p.returncode != 0:
            raise RuntimeError(err.decode()[-2000:])
    return out


def runtime_at(rev: str, dest: pathlib.Path) -> pathlib.Path:
    """python/manta as of a git revision, in dest/manta."""
    tar = subprocess.run(["git", "-C", str(SOURCE), "archive", rev, "python/manta"],
                         capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(dest)], input=tar, check=True)
    return dest / "python" / "manta"


def install_runtime(rootfs: pathlib.Path, src: pathlib.Path):
    site = rootfs / SITE
    shutil.rmtree(site, ignore_errors=True)
    shutil.copytree(src, site)


def fmt(xs):
    return f"median {statistics.median(xs) * 1000:.0f} ms ({min(xs) * 1000:.0f}-{max(xs) * 1000:.0f})"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=9)
    ap.add_argument("--before", default="HEAD", help="git revision of the runtime to compare with")
    ap.add_argument("--cache", type=pathlib.Path, default=pathlib.Path(
        os.environ.get("MANTA_IMAGE_CACHE", pathlib.Path.home() / ".cache/manta/images")))
    a = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("task_startup: needs root (chroot)")
    light = Light()
    work = pathlib.Path(tempfile.mkdtemp(prefix="manta-bench-startup-"))
    try:
        before = runtime_at(a.before, work)
        for image, modules, opts in (("manta-task%3Abookworm", ["minimal"], []),
                                     ("manta-task%3Atorch", ["minimal", "torch"], ["--torch"])):
            subprocess.run([str(SOURCE / "scripts/build-task-image"), *opts, "--no-docker",
                            "--cache", str(a.cache)], check=True, timeout=3600,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            tar = a.cache / f"{image}.tar.gz"
            rootfs = work / image
            rootfs.mkdir()
            subprocess.run(["tar", "--numeric-owner", "-xzf", str(tar), "-C", str(rootfs)], check=True)
            urandom = rootfs / "dev" / "urandom"  # what the container runtime provides
            urandom.touch()
            subprocess.run(["mount", "--bind", "/dev/urandom", str(urandom)], check=True)
            try:
                name = image.replace("%3A", ":")
                print(f"{name}:")
                print(f"  python -c pass:           {fmt(time_plain(rootfs, 'pass', a.runs))}")
                if "torch" in image:
                    print(f"  python -c 'import torch': {fmt(time_plain(rootfs, 'import torch', a.runs))}")
                built = work / f"{image}.runtime"
                shutil.copytree(rootfs / SITE, built)
                for mod in modules:
                    # The two runtimes take turns, run by run (the machine's load drifts).
                    runtimes = ((f"runtime at {a.before}", before), ("this tree's runtime", built))
                    xs = {label: [] for label, _ in runtimes}
                    for _ in range(a.runs):
                        for label, src in runtimes:
                            install_runtime(rootfs, src)
                            xs[label] += time_first_call(rootfs, light, MODULES[mod], 1)
                    for label, _ in runtimes:
                        print(f"  {mod:7} module, {label:20}: start -> first light call "
                              f"{fmt(xs[label])}")
            finally:
                subprocess.run(["umount", str(urandom)])
            shutil.rmtree(rootfs, ignore_errors=True)
    finally:
        light.server.stop(0)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
