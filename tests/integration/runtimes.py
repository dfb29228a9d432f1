"""Container runtimes for end-to-end task tests: the Debian task image (built offline and cached
by scripts/build-task-image), an isolated dockerd on a unix socket of the test's own, and a runc
image store. Everything started here is stopped here; nothing listens on a network address."""
import os
import pathlib
import shutil
import signal
import subprocess
import tempfile
import time

from conftest import SOURCE_DIR

IMAGE = "manta-task:bookworm"


def task_image_tarball() -> pathlib.Path:
    """Build (or reuse from the cache) the task image; returns the tarball."""
    cache = pathlib.Path(os.environ.get("MANTA_IMAGE_CACHE",
                                        pathlib.Path.home() / ".cache" / "manta" / "images"))
    p = subprocess.run([str(SOURCE_DIR / "scripts" / "build-task-image"), "--no-docker",
                        "--cache", str(cache)], capture_output=True, text=True, timeout=1800)
    assert p.returncode == 0, f"the task image could not be built:\n{p.stdout}\n{p.stderr}"
    tar = cache / "manta-task%3Abookworm.tar.gz"
    assert tar.exists(), p.stdout
    return tar


class Dockerd:
    """dockerd with its own data, exec root and socket; no iptables, no bridge."""

    def __init__(self):
        self.dir = pathlib.Path(tempfile.mkdtemp(prefix="manta-dockerd-"))
        self.sock = self.dir / "docker.sock"
        (self.dir / "daemon.json").write_text("{}")
        self.proc = subprocess.Popen(
            ["dockerd", "--iptables=false", "--ip-forward=false", "--ip-masq=false",
             "--bridge=none", "--data-root", str(self.dir / "data"),
             "--exec-root", str(self.dir / "exec"), "--pidfile", str(self.dir / "docker.pid"),
             "--config-file", str(self.dir / "daemon.json"), "--log-level", "warn",
             "--host", f"unix://{self.sock}"],
            stdout=subprocess.DEVNULL, stderr=open(self.dir / "dockerd.log", "w"))
        end = time.monotonic() + 60
        while time.monotonic() < end:
            if self.api("GET", "/_ping").returncode == 0:
                return
            if self.proc.poll() is not None:
                raise AssertionError("dockerd exited: " + (self.dir / "dockerd.log").read_text())
            time.sleep(0.2)
        raise AssertionError("dockerd did not answer within 60 s")

    def api(self, method, path, data_file=None, timeout=600):
        args = ["curl", "-sf", "--unix-socket", str(self.sock), "-X", method,
                f"http://localhost{path}"]
        if data_file:
            args += ["-H", "Content-Type: application/x-tar", "--data-binary", f"@{data_file}"]
        return subprocess.run(args, capture_output=True, text=True, timeout=timeout)

    def import_image(self, tarball, name=IMAGE):
        repo, tag = name.split(":")
        p = self.api("POST", f"/images/create?fromSrc=-&repo={repo}&tag={tag}", data_file=tarball)
        assert p.returncode == 0, p.stderr
        assert self.api("GET", f"/images/{name}/json").returncode == 0

    def containers(self):
        import json
        p = self.api("GET", "/containers/json?all=1")
        return json.loads(p.stdout or "[]")

    def stop(self):
        for c in self.containers():
            self.api("DELETE", f"/containers/{c['Id']}?force=1", timeout=60)
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        subprocess.run(["sh", "-c", f"grep -o ' {self.dir}[^ ]*' /proc/mounts | sort -r | "
                                    "xargs -r -n1 umount -l"], timeout=60)
        shutil.rmtree(self.dir, ignore_errors=True)


def runc_store(node_bin, tarball) -> pathlib.Path:
    store = pathlib.Path(tempfile.mkdtemp(prefix="manta-images-"))
    p = subprocess.run([node_bin, "image", "import", "--store", str(store), IMAGE, str(tarball)],
                       capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stdout + p.stderr
    return store


def runtime_config(kind, store=None, dockerd=None, memory="256M"):
    """The [containers] table for a runtime."""
    if kind == "runc":
        return (f'[containers]\nruntime = "runc"\nimage_store = "{store}"\n'
                f'default_memory_limit = "{memory}"\n')
    if kind == "docker":
        return (f'[containers]\nruntime = "docker"\ndocker_socket = "{dockerd.sock}"\n'
                f'default_memory_limit = "{memory}"\n')
    return '[containers]\nruntime = "process"\n'
