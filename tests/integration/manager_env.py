"""A whole local swarm for tests: a broker, `manta_manager` (run or serve) and N real nodes.

Nodes use the `process` runtime by default (no containers) with the project's python/ task
runtime on PYTHONPATH; the container runtimes are exercised by the demo and test_demo.py."""
import json
import os
import pathlib
import signal
import subprocess
import time

from conftest import SOURCE_DIR, Node
from wire_env import Broker, RunningNode, free_port, node_config, wait_for


def manager_bin() -> str:
    p = os.environ.get("MANTA_MANAGER_BIN")
    if p and os.path.exists(p):
        return p
    for build in ("build/gcc", "build/asan", "build/lead"):
        cand = SOURCE_DIR / build / "manta_manager"
        if cand.exists():
            return str(cand)
    raise RuntimeError("manta_manager is not built (set MANTA_MANAGER_BIN)")


class LocalSwarm:
    def __init__(self, tmp: pathlib.Path, node_bin: str, nodes: int = 3, datasets=None,
                 runtime: str = "process", node_extra: str = "", broker_conf: str = ""):
        self.tmp = tmp
        self.node_bin = node_bin
        self.mgr = manager_bin()
        self.home = tmp / "mgrhome"
        self.home.mkdir(parents=True, exist_ok=True)
        self.env = {"MANTA_HOME": str(self.home / ".manta"), "HOME": str(self.home),
                    "PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C.UTF-8"}
        for k in ("ASAN_OPTIONS", "UBSAN_OPTIONS", "LSAN_OPTIONS"):
            if k in os.environ:
                self.env[k] = os.environ[k]
        self.broker = Broker(tmp / "broker", extra_conf=broker_conf).start()
        self.port = free_port()
        self.store = tmp / "store.db"
        self.admin_sock = tmp / "admin.sock"
        self.proc = None
        self.out = []
        self.nodes = []
        self.running = []
        datasets = datasets or [{} for _ in range(nodes)]
        for i in range(nodes):
            alias = f"node{i}"
            token = self.manager("token", "create", "--node", alias).stdout.strip()
            n = Node(node_bin, tmp / f"node{i}")
            n.home.mkdir(parents=True, exist_ok=True)
            n.env["PYTHONPATH"] = str(SOURCE_DIR / "python")
            maps = datasets[i]
            extra = node_extra
            if maps:
                extra += "[datasets]\nmappings = { " + ", ".join(
                    f'{k} = "{v}"' for k, v in maps.items()) + " }\n"
            n.write_config("default", node_config(token, self.port, alias=alias, runtime=runtime,
                                                  extra=extra))
            self.nodes.append(n)

    def common_args(self):
        return ["--listen", f"127.0.0.1:{self.port}", "--broker",
                f"127.0.0.1:{self.broker.port}", "--store", str(self.store), "--admin",
                str(self.admin_sock)]

    def manager(self, *args, timeout=30, check=True):
        p = subprocess.run([self.mgr, *args], capture_output=True, text=True, env=self.env,
                           timeout=timeout)
        if check:
            assert p.returncode == 0, f"manta_manager {args}: {p.returncode}\n{p.stdout}\n{p.stderr}"
        assert p.returncode not in (86, 87), p.stderr
        return p

    def admin(self, *args, check=True):
        return self.manager(*args, "--admin", str(self.admin_sock), "--store", str(self.store),
                            check=check)

    def admin_json(self, *args):
        # The admin socket file appears at bind(), a moment before listen(): retry briefly.
        for _ in range(50):
            p = self.admin(*args, "--json", check=False)
            if p.returncode == 0 or "No manager is running" not in p.stderr:
                break
            time.sleep(0.1)
        assert p.returncode == 0, f"manta_manager {args}: {p.returncode}\n{p.stdout}\n{p.stderr}"
        return json.loads(p.stdout)

    def start_run(self, swarm_file, *extra):
        self.proc = subprocess.Popen(
            [self.mgr, "run", str(swarm_file), "--nodes", str(len(self.nodes)), "--wait", "60",
             *self.common_args(), *extra],
            env=self.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self.wait_listening()
        return self

    def wait_listening(self):
        """Nodes give up when the manager does not answer at their start: wait for it."""
        import socket

        def up():
            assert self.proc.poll() is None, self.proc.communicate()[0]
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return True
            except OSError:
                return False
        wait_for(up, timeout=30, what="manta_manager listening")

    def start_serve(self, *extra, log=None):
        """`log`: a binary file for the manager's output (for a manager started many times, or
        whose output nobody reads while it runs: a pipe left unread fills and blocks it)."""
        self.proc = subprocess.Popen([self.mgr, "serve", *self.common_args(), *extra],
                                     env=self.env, stdout=log or subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=log is None)
        self.wait_listening()
        return self

    def start_nodes(self, which=None):
        for i, n in enumerate(self.nodes):
            if which is None or i in which:
                self.running.append(RunningNode(n))
        return self

    def wait(self, timeout=300):
        try:
            out, _ = self.proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.send_signal(signal.SIGTERM)
            out, _ = self.proc.communicate(timeout=30)
            raise AssertionError(f"manta_manager did not finish in {timeout} s:\n{out}")
        self.output = out
        return self.proc.returncode, out

    def close(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.communicate(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        for r in self.running:
            try:
                r.stop() if hasattr(r, "stop") else r.proc.terminate()
            except Exception:
                pass
            try:
                r.proc.wait(timeout=20)
            except Exception:
                r.proc.kill()
        self.broker.stop()
        # Tasks outlive their node by design (re-adoption): end those this swarm left behind.
        for pid in os.listdir("/proc"):
            if not pid.isdigit():
                continue
            try:
                cmd = open(f"/proc/{pid}/cmdline", "rb").read().decode(errors="replace")
            except OSError:
                continue
            if str(self.tmp) in cmd:
                try:
                    os.kill(int(pid), signal.SIGKILL)
                except OSError:
                    pass


def module_dir(tmp: pathlib.Path, files: dict) -> pathlib.Path:
    d = tmp / "swarm"
    d.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (d / name).write_text(text)
    return d
