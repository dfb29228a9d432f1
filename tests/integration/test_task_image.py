"""scripts/build-task-image: the Debian task image (debootstrap minbase + python3, numpy, msgpack,
grpcio, protobuf), its cache, and the runc image store.

The image is built into a temporary cache with --no-docker and a temporary --runc-store. A cold
build downloads from Debian's archive (about a minute here, bounded by BUILD_TIMEOUT). When the
shared cache (${MANTA_IMAGE_CACHE:-~/.cache/manta/images}) already holds a valid build, its
tarball and manifest are copied into the temporary cache instead, so CI runs on the same machine
are fast; the script still verifies them (cache key and sha256) and every check below runs
on what it unpacked. After a cold build the result is published to the shared cache.

Needs root (debootstrap, chroot). Every subprocess has a timeout; a build that overruns is
sent SIGTERM (the script then ends its children and unmounts) and then SIGKILL.
"""
import fcntl
import hashlib
import json
import os
import pathlib
import re
import shutil
import signal
import subprocess
import time
import zipfile

import pytest

from conftest import SOURCE_DIR

SCRIPT = SOURCE_DIR / "scripts" / "build-task-image"
NAME = "manta-task:bookworm"
SAFE = "manta-task%3Abookworm"  # the store's folder name (images_dir_name in src/node/tasks/images.c)
REQUESTED = ["python3", "python-is-python3", "python3-numpy", "python3-msgpack", "python3-grpcio",
             "python3-protobuf"]
# CTest gives each integration test 900 s; stay below so that a slow mirror fails with output.
BUILD_TIMEOUT = int(os.environ.get("MANTA_IMAGE_BUILD_TIMEOUT", "840"))
CACHED_RUN_LIMIT = 10.0  # seconds
# Measured: 189 MB (180.5 MiB) unpacked, 66 MB compressed (Debian 12.15, python3 3.11.2).
MAX_UNPACKED = 230 * 2**20
CHROOT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="building and entering the image needs root")


def shared_cache() -> pathlib.Path:
    env = os.environ.get("MANTA_IMAGE_CACHE")
    return pathlib.Path(env) if env else pathlib.Path.home() / ".cache" / "manta" / "images"


def run_script(*args, timeout=60):
    """Run the script in its own session; on timeout SIGTERM (it cleans up), then SIGKILL."""
    env = dict(os.environ)
    env.pop("DOCKER_HOST", None)
    start = time.monotonic()
    p = subprocess.Popen([str(SCRIPT), *map(str, args)], stdin=subprocess.DEVNULL,
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
                         start_new_session=True)
    try:
        out, _ = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGTERM)
        try:
            out, _ = p.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)
            out, _ = p.communicate()
        pytest.fail(f"build-task-image {' '.join(map(str, args))} still running after {timeout} s:\n{out}")
    return p.returncode, out, time.monotonic() - start


def read_manifest(path: pathlib.Path) -> dict:
    fields, packages = {}, {}
    for line in path.read_text().splitlines():
        if not line or line.startswith("#"):
            continue
        key, _, value = line.partition("=")
        if key == "package":
            name, _, version = value.partition(" ")
            packages[name] = version
        else:
            fields[key] = value
    fields["packages"] = packages
    return fields


def sha256(path: pathlib.Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def tree_size(root: pathlib.Path) -> int:
    """Bytes of the files and symlinks of a tree (how the image store counts an image's size)."""
    total = 0
    for dirpath, dirnames, filenames in os.walk(root):
        for n in filenames + [d for d in dirnames if os.path.islink(os.path.join(dirpath, d))]:
            st = os.lstat(os.path.join(dirpath, n))
            total += st.st_size
    return total


def publish(cache: pathlib.Path, shared: pathlib.Path):
    """Copy a fresh build into the shared cache (under the script's lock, renamed into place,
    tarball first and manifest last, as the script does)."""
    try:
        shared.mkdir(parents=True, exist_ok=True)
        with open(shared / ".lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if subprocess.run([str(SCRIPT), "--check", "--cache", str(shared)], capture_output=True,
                              timeout=60).returncode == 0:
                return
            for suffix in (".tar.gz", ".manifest"):
                tmp = shared / f".{SAFE}{suffix}.tmp.pytest{os.getpid()}"
                shutil.copyfile(cache / f"{SAFE}{suffix}", tmp)
                os.chmod(tmp, 0o644)
                os.replace(tmp, shared / f"{SAFE}{suffix}")
    except OSError as e:
        print(f"could not publish the image to {shared}: {e}")


class Built:
    cache: pathlib.Path
    store: pathlib.Path
    seeded: bool
    output: str
    seconds: float

    @property
    def tarball(self):
        return self.cache / f"{SAFE}.tar.gz"

    @property
    def manifest(self):
        return self.cache / f"{SAFE}.manifest"

    @property
    def entry(self):
        return self.store / SAFE

    @property
    def rootfs(self):
        return self.entry / "rootfs"


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    b = Built()
    base = tmp_path_factory.mktemp("task-image")
    b.cache, b.store = base / "cache", base / "store"
    b.cache.mkdir()
    shared = shared_cache()
    rc, out, _ = run_script("--check", "--cache", shared)
    b.seeded = rc == 0
    if b.seeded:
        for suffix in (".tar.gz", ".manifest"):
            src, dst = shared / f"{SAFE}{suffix}", b.cache / f"{SAFE}{suffix}"
            try:
                os.link(src, dst)  # the script never writes a cached file in place
            except OSError:
                shutil.copyfile(src, dst)
    rc, b.output, b.seconds = run_script("--cache", b.cache, "--no-docker", "--runc-store", b.store,
                                         timeout=BUILD_TIMEOUT)
    print(b.output)
    print(f"({'seeded from ' + str(shared) if b.seeded else 'cold build'}: {b.seconds:.0f} s)")
    assert rc == 0, b.output
    if not b.seeded:
        publish(b.cache, shared)
    yield b
    shutil.rmtree(base, ignore_errors=True)  # ~250 MB: do not leave it to pytest's tmp rotation


def test_build_records_tarball_and_manifest(built):
    assert built.tarball.is_file() and built.manifest.is_file()
    m = read_manifest(built.manifest)
    assert m["name"] == NAME and m["safe_name"] == SAFE
    assert m["suite"] == "bookworm" and m["variant"] == "minbase"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", m["created"])
    assert re.fullmatch(r"[0-9a-f]{64}", m["key"])
    assert m["sha256"] == sha256(built.tarball)
    assert int(m["compressed_size"]) == built.tarball.stat().st_size
    assert m["requested"].split() == REQUESTED
    for p in REQUESTED:
        assert m["packages"].get(p), f"{p} not in the manifest"
    assert m["packages"]["python3"].startswith("3.11.")
    assert re.match(r"https?://", m["mirror"])
    if built.seeded:
        assert "cached" in built.output
    else:
        for step in range(1, 6):
            assert re.search(rf"^\[{step}/5\] .* \.\.\. .*", built.output, re.M), built.output
        assert re.search(r"^\[1/5\] debootstrap bookworm \(minbase\) \.\.\. done, \d+ s$", built.output, re.M)
    assert re.search(r"^\[4/5\] .*skipped \(--no-docker\)", built.output, re.M)
    # Nothing left behind in the cache: no build trees, no temporary tarballs.
    leftovers = [p.name for p in built.cache.iterdir() if p.name.startswith(".") and p.name != ".lock"]
    assert leftovers == []


def test_second_run_is_cached_and_fast(built):
    rc, out, seconds = run_script("--cache", built.cache, "--no-docker", "--runc-store", built.store,
                                  timeout=120)
    assert rc == 0, out
    assert re.search(r"^\[3/5\] .*cached", out, re.M), out
    assert "already present" in out or "image import" in out, out
    assert seconds < CACHED_RUN_LIMIT, f"cached run took {seconds:.1f} s:\n{out}"
    rc, out, _ = run_script("--check", "--cache", built.cache)
    assert rc == 0 and out.startswith("valid: "), out


def test_corrupt_cache_is_not_reused(built, tmp_path):
    cache = tmp_path / "cache"
    cache.mkdir()
    shutil.copyfile(built.manifest, cache / f"{SAFE}.manifest")
    with open(built.tarball, "rb") as src, open(cache / f"{SAFE}.tar.gz", "wb") as dst:
        dst.write(src.read(1 << 20))  # truncated
    rc, out, _ = run_script("--check", "--cache", cache)
    assert rc == 1 and "sha256 does not match" in out, out
    (cache / f"{SAFE}.manifest").write_text(built.manifest.read_text().replace("key=", "key=0", 1))
    rc, out, _ = run_script("--check", "--cache", cache)
    assert rc == 1 and "cache key changed" in out, out


def test_store_layout(built):
    # One entry per image; nothing half-written (temporary entries have hidden names).
    entries = sorted(p.name for p in built.store.iterdir())
    assert [e for e in entries if e != ".lock"] == [SAFE], entries
    assert {"image.json", "rootfs"} <= {p.name for p in built.entry.iterdir()}
    info = json.loads((built.entry / "image.json").read_text())
    for key in ("name", "created", "size", "source"):
        assert key in info, info
    assert info["name"] == NAME
    # created: when it was imported (not before the tarball was built)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", info["created"])
    assert info["created"] >= read_manifest(built.manifest)["created"]
    assert isinstance(info["size"], int) and info["size"] == tree_size(built.rootfs)
    assert info["source"] == str(built.tarball.resolve())
    for d in ("usr/bin", "etc", "var/lib/dpkg", "proc", "sys", "dev", "tmp"):
        assert (built.rootfs / d).is_dir(), d
    assert list((built.rootfs / "dev").iterdir()) == []  # the runtime provides /dev


def chroot(rootfs, *argv, timeout=60, env=()):
    return subprocess.run(["chroot", str(rootfs), "/usr/bin/env", "-i", f"PATH={CHROOT_PATH}",
                           "LANG=C.UTF-8", *env, *argv], capture_output=True, text=True,
                          timeout=timeout, stdin=subprocess.DEVNULL)


def test_python_and_task_packages_in_rootfs(built):
    p = chroot(built.rootfs, "python", "-c", "import numpy, msgpack, grpc, google.protobuf; print('ok')")
    assert p.returncode == 0 and p.stdout == "ok\n", p.stdout + p.stderr
    p = chroot(built.rootfs, "python", "--version")
    assert p.returncode == 0 and p.stdout.startswith("Python 3.11."), p.stdout + p.stderr
    p = chroot(built.rootfs, "python", "-c",
               "import numpy, msgpack, grpc, google.protobuf as pb; "
               "a = numpy.arange(6).reshape(2, 3); "
               "assert msgpack.unpackb(msgpack.packb(a.tolist())) == [[0, 1, 2], [3, 4, 5]]; "
               "print(numpy.__version__, grpc.__version__, pb.__version__)")
    assert p.returncode == 0, p.stderr
    print("in the image: numpy, grpcio, protobuf =", p.stdout.strip())


def test_module_pyz_runs_as_the_node_starts_it(built):
    # task-contract.md §1: a zip app with __main__.py importing X and calling X.main(),
    # started as `python /usr/src/module.pyz` with TASK_ID, SWARM_ID, RPC_HOST, RPC_PORT.
    pyz = built.rootfs / "usr" / "src" / "module.pyz"
    with zipfile.ZipFile(pyz, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("__main__.py", "# -*- coding: utf-8 -*-\nimport worker\nworker.main()\n")
        z.writestr("worker/__init__.py", "from .task import main\n")
        z.writestr("worker/task.py", "import os, numpy\n"
                   "def main():\n"
                   "    print(os.environ['TASK_ID'], os.environ['RPC_PORT'], int(numpy.ones(3).sum()))\n")
    try:
        p = chroot(built.rootfs, "python", "/usr/src/module.pyz",
                   env=("TASK_ID=t1", "SWARM_ID=s1", "RPC_HOST=127.0.0.1", "RPC_PORT=50051"))
    finally:
        pyz.unlink()
    assert p.returncode == 0 and p.stdout == "t1 50051 3\n", p.stdout + p.stderr


def test_image_is_small_and_stripped(built):
    size = tree_size(built.rootfs)
    print(f"unpacked: {size / 2**20:.1f} MiB, tarball: {built.tarball.stat().st_size / 2**20:.1f} MiB")
    assert size < MAX_UNPACKED, f"image grew to {size / 2**20:.1f} MiB"
    r = built.rootfs
    docs = [p for p in (r / "usr/share/doc").rglob("*") if not p.is_dir() and p.name != "copyright"]
    assert docs == [], docs[:5]
    for d in ("usr/share/man", "usr/share/info"):
        assert not (r / d).exists() or [p for p in (r / d).rglob("*") if not p.is_dir()] == [], d
    assert [p.name for p in (r / "usr/share/locale").iterdir()
            if not p.name.startswith("C") and p.name != "locale.alias"] == []
    assert [p.name for p in (r / "var/lib/apt/lists").iterdir() if p.name not in ("partial", "lock")] == []
    assert list((r / "var/cache/apt/archives").glob("*.deb")) == []
    assert (r / "etc/resolv.conf").read_text() == ""  # the host's DNS settings are not shipped


def test_concurrent_runs_share_the_cache_and_store(built, tmp_path):
    store = tmp_path / "store"
    env = dict(os.environ)
    env.pop("DOCKER_HOST", None)
    args = [str(SCRIPT), "--cache", str(built.cache), "--no-docker", "--runc-store", str(store)]
    procs = [subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                              env=env, stdin=subprocess.DEVNULL, start_new_session=True)
             for _ in range(2)]
    outs = []
    try:
        for p in procs:
            outs.append(p.communicate(timeout=120)[0])
    finally:
        for p in procs:
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()
    try:
        assert [p.returncode for p in procs] == [0, 0], outs
        assert all("cached" in o for o in outs), outs
        assert [x.name for x in store.iterdir() if x.name != ".lock"] == [SAFE]
        assert (store / SAFE / "rootfs" / "usr" / "bin" / "python3").exists()
    finally:
        shutil.rmtree(store, ignore_errors=True)
