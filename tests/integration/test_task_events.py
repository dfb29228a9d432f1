"""Exits are events, and the node's task steps run on a joinable pool (issue 13).

* With the periodic inspection of running tasks set to an hour (MANTA_INSPECT_INTERVAL_MS), a
  task that exits at once, and one that exits after 2 s, are still reported COMPLETED within a
  couple of seconds: the process runtime's supervisor writes `exit`, the node's inotify watch
  turns that into one inspect. The same in runc and Docker containers (Docker: its /events
  stream of "die" events).
* A node stopped while a task's step is blocked inside an image pull (a fake Docker Engine on a
  unix socket whose /images/create never answers) exits promptly and cleanly: the pull is
  cancelled, the pool is joined before the task table is freed (run it with the ASan build:
  MANTA_NODE_BIN=build/<asan>/manta_node)."""
import http.server
import json
import signal
import socketserver
import threading
import time


from runtimes import runtime_config
from test_node_wire import TOKEN
from test_tasks_containers import runtime, tarball  # noqa: F401 (fixtures: runc, dockerd)
from test_tasks_process import NODE_XID, module, mqtt_task, send, sleeper, start
from wire_env import (RunningNode, node_config, tasks_pb2,
                      wait_for)

HOUR_MS = "3600000"


def timed_updates(obs, task):
    out = []
    for p, t in obs.on("manager/update_task_status"):
        u = tasks_pb2.TaskUpdate.FromString(p)
        if u.task_id.tail == task:
            out.append((u.task_status, t))
    return out


def first(obs, task, status, timeout):
    return wait_for(lambda: next((t for s, t in timed_updates(obs, task) if s == status), None),
                    timeout, what=f"task {task} status {status}")


def test_exit_is_an_event_not_a_poll(node, world):
    _, m, o = world
    node.write_config("default", node_config(TOKEN, m.port))
    rn = RunningNode(node, env={"MANTA_INSPECT_INTERVAL_MS": HOUR_MS})
    rn.wait_line("✓ Ready to execute tasks")
    try:
        send(o, "deploy_task", mqtt_task(1, module("def main():\n    print('done')\n")))
        t_run = first(o, 1, tasks_pb2.RUNNING, 20)
        t_done = first(o, 1, tasks_pb2.COMPLETED, 10)
        assert t_done - t_run < 3.0, f"COMPLETED {t_done - t_run:.2f} s after RUNNING"

        send(o, "deploy_task", mqtt_task(2, sleeper(2)))
        t_run = first(o, 2, tasks_pb2.RUNNING, 20)
        t_done = first(o, 2, tasks_pb2.COMPLETED, 15)
        assert 1.5 < t_done - t_run < 5.0, f"COMPLETED {t_done - t_run:.2f} s after RUNNING"
    finally:
        rn.signal(signal.SIGTERM)
        assert rn.wait(60) == 0
    assert "AddressSanitizer" not in rn.stderr() and "runtime error" not in rn.stderr()


def test_container_exit_is_an_event(node, world, runtime, tmp_path):
    """runc: the supervisor's `exit` record through inotify; Docker: the /events stream."""
    kind, renv = runtime
    _, m, o = world
    cfg = node_config(TOKEN, m.port, containers=runtime_config(
        kind, store=renv.get("store"), dockerd=renv.get("dockerd")))
    node.write_config("default", cfg)
    rn = RunningNode(node, env={"MANTA_INSPECT_INTERVAL_MS": HOUR_MS})
    rn.wait_line("✓ Ready to execute tasks", timeout=60)
    try:
        send(o, "deploy_task", mqtt_task(7, module("def main():\n    print('done')\n")))
        t_run = first(o, 7, tasks_pb2.RUNNING, 60)
        t_done = first(o, 7, tasks_pb2.COMPLETED, 20)
        assert t_done - t_run < 8.0, f"{kind}: COMPLETED {t_done - t_run:.2f} s after RUNNING"
    finally:
        rn.signal(signal.SIGTERM)
        assert rn.wait(90) == 0


# ---- a Docker Engine that never finishes a pull ----------------------------------------------

class _Unix(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True


class FakeDocker:
    """Enough of the Engine API for the node to start, then a pull that hangs."""

    def __init__(self, path):
        self.path = str(path)
        self.seen = []
        self.stop_ev = threading.Event()
        outer = self

        class H(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def address_string(self):
                return "unix"

            def _json(self, code, obj):
                body = json.dumps(obj).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Connection", "close")
                self.end_headers()
                self.wfile.write(body)

            def _hang(self, first_line=b""):
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                if first_line:
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(first_line), first_line))
                self.wfile.flush()
                while not outer.stop_ev.wait(0.2):
                    pass

            def _route(self):
                p = self.path
                if p.startswith("/v1."):
                    p = "/" + p.split("/", 2)[2]
                n = int(self.headers.get("Content-Length") or 0)
                if n:
                    self.rfile.read(n)
                outer.seen.append((self.command, p))
                if p == "/version":
                    return self._json(200, {"ApiVersion": "1.43", "Version": "24.0.7"})
                if p == "/info":
                    return self._json(200, {"NCPU": 2})
                if p.startswith("/containers/json"):
                    return self._json(200, [])
                if p.startswith("/images/") and p.endswith("/json"):
                    return self._json(404, {"message": "No such image"})
                if p.startswith("/images/create"):
                    return self._hang(b'{"status":"Pulling fs layer"}\n')
                if p.startswith("/events"):
                    return self._hang()
                return self._json(404, {"message": "not here"})

            do_GET = do_POST = do_DELETE = _route

        self.server = _Unix(self.path, H)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def start(self):
        self.thread.start()
        return self

    def stop(self):
        self.stop_ev.set()
        self.server.shutdown()
        self.server.server_close()


def test_shutdown_during_a_pull(node, world, tmp_path):
    _, m, o = world
    sock = tmp_path / "docker.sock"
    dk = FakeDocker(sock).start()
    try:
        containers = f'[containers]\nruntime = "docker"\ndocker_socket = "unix://{sock}"\n' \
                     'pull_timeout = 600\n'
        node.write_config("default", node_config(TOKEN, m.port, containers=containers))
        rn = RunningNode(node)
        rn.wait_line("✓ Ready to execute tasks")
        try:
            send(o, "deploy_task", mqtt_task(1, sleeper(1), image="example.invalid/slow:1"))
            wait_for(lambda: any(p.startswith("/images/create") for _, p in dk.seen), 20,
                     what="the pull")
            time.sleep(0.5)  # the step is inside the pull now
            t0 = time.monotonic()
            rn.signal(signal.SIGTERM)
            assert rn.wait(30) == 0
            took = time.monotonic() - t0
        except BaseException:
            rn.signal(signal.SIGKILL)
            raise
        assert took < 15, f"the stop took {took:.1f} s: the pull was not cancelled"
        assert "AddressSanitizer" not in rn.stderr() and "runtime error" not in rn.stderr()
        log = (node.home / ".manta/logs/nodes/default.log").read_text()
        assert "not started: the node is stopping" in log, log[-2000:]
        assert "Node stopped" in log
    finally:
        dk.stop()
