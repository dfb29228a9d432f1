"""PyTorch on real nodes: `scripts/build-task-image --torch` builds manta-task:torch (cached in
layers like the default image, without evicting its cache), and the PyTorch FedAvg example
(examples/fedavg-torch) runs end to end: manta_manager run, two manta_node agents with the runc
runtime and the torch image, Fashion-MNIST partitions, two rounds.

The image is built once per machine (a cold build downloads PyTorch and its libraries from
Debian's archive: a few minutes) into the shared cache (${MANTA_IMAGE_CACHE:-~/.cache/manta/
images}) and reused from there while its layers are unchanged. Needs root and runc.
"""
import os
import pathlib
import re
import shutil
import signal
import sqlite3
import subprocess
import time

import msgpack
import pytest

from conftest import SOURCE_DIR
from manager_env import LocalSwarm
from runtimes import runtime_config

SCRIPT = SOURCE_DIR / "scripts" / "build-task-image"
EXAMPLE = SOURCE_DIR / "examples" / "fedavg-torch"
NAME, SAFE = "manta-task:torch", "manta-task%3Atorch"
DEFAULT_SAFE = "manta-task%3Abookworm"
BUILD_TIMEOUT = int(os.environ.get("MANTA_IMAGE_BUILD_TIMEOUT", "840"))
PY = "/usr/bin/python3"

pytestmark = pytest.mark.skipif(os.geteuid() != 0 or shutil.which("runc") is None,
                                reason="the torch image and runc containers need root and runc")


def cache_dir() -> pathlib.Path:
    env = os.environ.get("MANTA_IMAGE_CACHE")
    return pathlib.Path(env) if env else pathlib.Path.home() / ".cache" / "manta" / "images"


def build(*args, timeout=BUILD_TIMEOUT):
    env = dict(os.environ)
    env.pop("DOCKER_HOST", None)
    start = time.monotonic()
    p = subprocess.Popen([str(SCRIPT), "--torch", "--no-docker", *map(str, args)],
                         stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, text=True, env=env, start_new_session=True)
    try:
        out, _ = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGTERM)  # the script ends its children and unmounts
        try:
            out, _ = p.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)
            out, _ = p.communicate()
        pytest.fail(f"build-task-image --torch still running after {timeout} s:\n{out}")
    return p.returncode, out, time.monotonic() - start


def fingerprint(cache: pathlib.Path, safe: str):
    """What identifies an image's cache entry: its files' names, sizes and mtimes."""
    return sorted((p.name, p.stat().st_size, p.stat().st_mtime_ns)
                  for p in cache.glob(f"{safe}.*") if p.is_file())


@pytest.fixture(scope="module")
def image(node_bin, tmp_path_factory):
    store = tmp_path_factory.mktemp("torch-store")
    cache = cache_dir()
    default_before = fingerprint(cache, DEFAULT_SAFE)
    rc, out, seconds = build("--runc-store", store, "--cache", cache)
    print(out)
    print(f"build-task-image --torch: {seconds:.0f} s")
    assert rc == 0, out
    yield {"store": store, "cache": cache, "output": out, "default_before": default_before}
    shutil.rmtree(store, ignore_errors=True)  # ~1 GB unpacked


def test_torch_image_is_cached_in_layers_and_keeps_the_default_cache(image, tmp_path):
    cache = image["cache"]
    man = (cache / f"{SAFE}.manifest").read_text()
    assert f"name={NAME}" in man
    assert re.search(r"^requested=python3 .*python3-grpcio python3-protobuf python3-torch$", man,
                     re.M), man
    assert re.search(r"^package=python3-torch 1\.13\.", man, re.M), man
    assert (cache / f"{SAFE}.base.tar.gz").is_file() and (cache / f"{SAFE}.base.manifest").is_file()
    # Its own packages folder; the default image's cache entry untouched by this build.
    assert (cache / "debs" / f"apt-{SAFE}").is_dir()
    assert fingerprint(cache, DEFAULT_SAFE) == image["default_before"]
    # A second run reuses the cache (no debootstrap, no apt) and the store entry.
    rc, out, seconds = build("--runc-store", image["store"], "--cache", cache, timeout=300)
    assert rc == 0, out
    assert re.search(r"^\[3/5\] .*cached", out, re.M) and "already present" in out, out
    print(f"cached run: {seconds:.1f} s")
    # In the image: torch for the CPU, the task runtime.
    # (The image has an empty /dev, filled by the container runtime; torch reads /dev/urandom.)
    rootfs = image["store"] / SAFE / "rootfs"
    urandom = rootfs / "dev" / "urandom"
    urandom.touch()
    subprocess.run(["mount", "--bind", "/dev/urandom", str(urandom)], check=True, timeout=30)
    try:
        p = subprocess.run(["chroot", str(rootfs), "/usr/bin/env", "-i", "PATH=/usr/bin:/bin",
                            "python", "-c",
                            "import torch, manta.light, numpy; "
                            "print(torch.__version__, torch.cuda.is_available(), "
                            "int(torch.nn.Linear(3, 2)(torch.ones(1, 3)).shape[1]))"],
                           capture_output=True, text=True, timeout=120)
    finally:
        subprocess.run(["umount", str(urandom)], timeout=30)
        urandom.unlink()
    assert p.returncode == 0, p.stderr
    assert re.fullmatch(r"1\.13\.\d+\S* False 2\n", p.stdout), p.stdout


def test_pytorch_fedavg_swarm_on_real_nodes(image, node_bin, tmp_path):
    data = tmp_path / "data"
    p = subprocess.run([PY, str(SOURCE_DIR / "examples" / "prepare_data.py"), "--nodes", "2",
                        "--out", str(data), "--train", "3000", "--test", "500"],
                       capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    # copied with the examples' layout: the swarm file names ../fedavg's aggregator and scheduler
    for ex in (EXAMPLE, EXAMPLE.parent / "fedavg"):
        shutil.copytree(ex, tmp_path / "examples" / ex.name,
                        ignore=shutil.ignore_patterns("__pycache__"))
    swarm = tmp_path / "examples" / EXAMPLE.name
    sf = swarm / "swarm.toml"
    # Two rounds whatever the accuracy: the round limit ends the swarm.
    sf.write_text(re.sub(r"max_rounds = \d+", "max_rounds = 2",
                         re.sub(r"val_acc_threshold = [0-9.]+", "val_acc_threshold = 0.99",
                                sf.read_text())))
    sw = LocalSwarm(tmp_path / "run", node_bin, nodes=2, runtime="runc",
                    datasets=[{"mnist": str(data / f"node_{i}" / "mnist.npz")} for i in range(2)])
    # The runc runtime with the torch image; one CPU per task (torch's threads follow it).
    containers = runtime_config("runc", image["store"], memory="1G") + "default_cpu_limit = 1\n"
    for n in sw.nodes:
        cfg = n.config_path("default")
        cfg.write_text(cfg.read_text().replace('[containers]\nruntime = "runc"\n', containers))
    try:
        sw.start_run(sf, "--timeout", "600")
        sw.start_nodes()
        rc, out = sw.wait(timeout=660)
        assert rc == 0, out
        assert "STOPPED" in out, out
        sid = re.search(r"^swarm ([0-9a-f]+) STOPPED", out, re.M).group(1)
        db = sqlite3.connect(str(sw.store))
        rows = db.execute("SELECT iteration, node, data FROM results WHERE tag = 'metrics'").fetchall()
        accs = {}
        for it, node, d in rows:
            accs.setdefault(it, {})[node] = msgpack.unpackb(d, raw=False)["val_acc"]
        assert sorted(accs) == [0, 1] and all(len(v) == 2 for v in accs.values()), accs
        # An MLP on 6,000 Fashion-MNIST images: above 0.7 after two rounds, and learning.
        last, first = accs[1].values(), accs[0].values()
        assert min(last) >= 0.70 and sum(last) >= sum(first), accs
        logs = sw.admin("logs", sid).stdout
        # The workers ran torch on one thread (the task's CPU limit) and logged through
        # self.logger; the node's GPU check was not involved (gpu = false).
        assert re.search(r" - Worker - INFO - loaded 3000 training images in [0-9.]+ s "
                         r"\(device cpu, 1 thread\(s\)\)", logs), logs[-3000:]
        assert "Traceback" not in logs, logs[-3000:]
        print("val_acc by round:", accs)
    finally:
        sw.close()
