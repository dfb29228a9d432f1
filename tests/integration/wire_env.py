"""The world a node talks to, for tests: a real mosquitto broker on loopback, a fake manager
written with python3-grpcio from proto/, an MQTT observer (paho), and a running manta_node.

Everything listens on 127.0.0.1 only, picks free ports, and is stopped by the fixtures; every
wait is bounded.
"""
import os
import pathlib
import queue
import signal
import socket
import subprocess
import threading
import time
from concurrent import futures

import grpc

from pbgen import pb, servicer

system_pb2 = pb("common.system_pb2")
info_pb2 = pb("common.informations_pb2")
tasks_pb2 = pb("common.tasks_pb2")

MOSQUITTO = "/usr/sbin/mosquitto"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(pred, timeout=10.0, interval=0.02, what="condition"):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        v = pred()
        if v:
            return v
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what() if callable(what) else what}")


def xid(head: int, tail: int) -> str:
    h = format((head << 64) | tail, "x")
    return h if len(h) == 32 else "0" + h


class Broker:
    """mosquitto on 127.0.0.1:<port>; restartable on the same port, with persistence so that
    persistent sessions survive a restart."""

    def __init__(self, workdir: pathlib.Path, extra_conf: str = "", port: int = 0):
        self.dir = workdir
        self.dir.mkdir(parents=True, exist_ok=True)
        self.host = "127.0.0.1"
        self.port = port or free_port()
        self.extra = extra_conf
        self.proc = None
        self.log = self.dir / "mosquitto.log"

    def conf(self) -> pathlib.Path:
        c = self.dir / "mosquitto.conf"
        c.write_text(
            f"listener {self.port} {self.host}\n"
            # as root, mosquitto would switch to user mosquitto and could not write its
            # persistence file (sessions across a restart) into the test's private folder
            + ("user root\n" if os.geteuid() == 0 else "") +
            "allow_anonymous true\n"
            "persistence true\n"
            f"persistence_location {self.dir}/\n"
            "autosave_interval 1\n"
            f"log_dest file {self.log}\n"
            "log_type all\n"
            + self.extra)
        return c

    def start(self):
        self.proc = subprocess.Popen([MOSQUITTO, "-c", str(self.conf())],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

        def up():
            try:
                with socket.create_connection((self.host, self.port), timeout=0.2):
                    return True
            except OSError:
                return self.proc.poll() is not None and (_ for _ in ()).throw(
                    AssertionError(f"mosquitto exited: {self.log.read_text() if self.log.exists() else ''}"))
        wait_for(up, 10, what="mosquitto to listen")
        return self

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc = None

    def restart(self, down_seconds: float = 0.0):
        self.stop()
        time.sleep(down_seconds)
        self.start()


class Call:
    def __init__(self, method, request, metadata):
        self.method = method
        self.request = request
        self.metadata = metadata
        self.time = time.monotonic()


class FakeManager:
    """The manager side of node.node_service.Node, recording every call."""

    def __init__(self, broker: Broker, token: str = None, topics=None, broker_host=None,
                 broker_port=None, unavailable=False):
        self.broker = broker
        self.token = token            # if set, calls with another authorization are refused
        self.topics = topics          # None: ["manta/nodes/<xid>/+"]
        self.broker_host = broker_host
        self.broker_port = broker_port
        self.unavailable = unavailable
        self.calls = []
        self.lock = threading.Lock()
        self.server = None
        self.port = None

    # -- recording
    def _record(self, name, request, context):
        md = dict(context.invocation_metadata())
        with self.lock:
            self.calls.append(Call(name, request, md))
        if self.token is not None and md.get("authorization") != self.token:
            context.abort(grpc.StatusCode.UNAUTHENTICATED, "invalid token")
        if self.unavailable:
            context.abort(grpc.StatusCode.UNAVAILABLE, "manager is starting")

    def named(self, name):
        with self.lock:
            return [c for c in self.calls if c.method == name]

    def wait_call(self, name, count=1, timeout=10.0):
        return wait_for(lambda: len(self.named(name)) >= count and self.named(name), timeout,
                        what=f"{count} {name} call(s)")

    # -- RPCs
    def IsAvailable(self, request, context):
        self._record("IsAvailable", request, context)
        return system_pb2.Ok()

    def RegisterNode(self, request, context):
        self._record("RegisterNode", request, context)
        x = xid(request.node_id.head, request.node_id.tail)
        topics = self.topics if self.topics is not None else [f"manta/nodes/{x}/+"]
        return info_pb2.Registration(
            mqtt_broker_host=self.broker_host or self.broker.host,
            mqtt_broker_port=self.broker_port or self.broker.port,
            mqtt_topics=topics)

    def SetNodeStatus(self, request, context):
        self._record("SetNodeStatus", request, context)
        return system_pb2.Ok()

    def SetSystemSummary(self, request, context):
        self._record("SetSystemSummary", request, context)
        return system_pb2.Ok()

    def SetOverviews(self, request, context):
        self._record("SetOverviews", request, context)
        return system_pb2.Ok()

    def SendError(self, request, context):
        self._record("SendError", request, context)
        return system_pb2.Ok()

    def AddTaskLogs(self, request_iterator, context):
        chunks = list(request_iterator)
        self._record("AddTaskLogs", chunks, context)
        if getattr(self, "fail_logs", 0) > 0:
            self.fail_logs -= 1
            context.abort(grpc.StatusCode.UNAVAILABLE, "manager busy")
        if not chunks:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "empty stream")
        return system_pb2.Ok()

    def task_logs(self):
        """Every AddTaskLogs upload decoded: (header dict, text)."""
        import struct
        import zlib
        out = []
        for c in self.named("AddTaskLogs"):
            blob = b"".join(m.content for m in c.request)
            if len(blob) < 52:
                continue
            f = struct.unpack("<6QHH", blob[:52])
            hdr = {"swarm": (f[0], f[1]), "node": (f[2], f[3]), "task": (f[4], f[5]),
                   "iteration": f[6], "circular": f[7]}
            out.append((hdr, zlib.decompress(blob[52:]).decode(errors="replace")))
        return out

    def start(self, port=0, credentials=None):
        opts = [("grpc.max_receive_message_length", -1), ("grpc.max_send_message_length", -1)]
        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=8), options=opts)
        self.server.add_generic_rpc_handlers([servicer("node.node_service.Node", self)])
        addr = f"127.0.0.1:{port}"
        if credentials is not None:
            self.port = self.server.add_secure_port(addr, credentials)
        else:
            self.port = self.server.add_insecure_port(addr)
        self.server.start()
        return self

    def stop(self):
        if self.server:
            self.server.stop(0).wait(5)
            self.server = None


class Observer:
    """A paho client that records everything under manager/# and can publish commands."""

    def __init__(self, broker: Broker, client_id="observer", subscribe=("manager/#",)):
        import paho.mqtt.client as mqtt
        self.messages = []
        self.lock = threading.Lock()
        self.client = mqtt.Client(client_id=client_id, clean_session=True)
        self.client.on_message = self._on_message
        connected = threading.Event()
        self.client.on_connect = lambda c, u, f, rc: connected.set()
        self.client.connect(broker.host, broker.port, keepalive=30)
        self.client.loop_start()
        if not connected.wait(10):
            raise AssertionError("observer could not connect to the broker")
        for t in subscribe:
            self.client.subscribe(t, qos=1)
        time.sleep(0.2)

    def _on_message(self, client, userdata, msg):
        with self.lock:
            self.messages.append((msg.topic, bytes(msg.payload), time.monotonic()))

    def on(self, topic):
        with self.lock:
            return [(p, t) for (tp, p, t) in self.messages if tp == topic]

    def publish(self, topic, payload, qos=1):
        info = self.client.publish(topic, payload, qos=qos)
        info.wait_for_publish(10)

    def close(self):
        self.client.loop_stop()
        self.client.disconnect()


class RunningNode:
    """`manta_node start NAME` as a child process, its output collected line by line."""

    def __init__(self, node, name="default", args=(), env=None):
        e = dict(node.env)
        if env:
            e.update(env)
        self.proc = subprocess.Popen([node.binary, "start", name, *args], env=e, cwd=node.home,
                                     stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True)
        self.out = []
        self.err = []
        self.lines = queue.Queue()
        self._threads = [threading.Thread(target=self._pump, args=(self.proc.stdout, self.out), daemon=True),
                         threading.Thread(target=self._pump, args=(self.proc.stderr, self.err), daemon=True)]
        for t in self._threads:
            t.start()

    def _pump(self, stream, sink):
        for line in stream:
            sink.append(line.rstrip("\n"))
            self.lines.put(line.rstrip("\n"))

    def wait_line(self, text, timeout=20.0):
        return wait_for(lambda: any(text in l for l in self.out + self.err), timeout,
                        what=lambda: f"output line {text!r}; got {self.out + self.err}")

    def stdout(self):
        return "\n".join(self.out)

    def stderr(self):
        return "\n".join(self.err)

    def signal(self, sig):
        self.proc.send_signal(sig)

    def wait(self, timeout=20.0):
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
            raise AssertionError(f"node did not exit within {timeout}s; output: {self.out + self.err}")
        for t in self._threads:
            t.join(5)
        return rc

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)


def node_config(token, manager_port, alias=None, extra="", reconnect=(0.2, 1.0),
                runtime="process", containers=None, tasks=""):
    alias_line = f'alias = "{alias}"\n' if alias else ""
    return (f'[identity]\nsecured_token = "{token}"\n{alias_line}'
            f'[network]\nmanager_host = "127.0.0.1"\nmanager_port = {manager_port}\n'
            f'connect_timeout = 3\nrpc_timeout = 5\n'
            + (containers or f'[containers]\nruntime = "{runtime}"\n') +
            f'[tasks]\nstate_dir = "~/.manta/state"\n' + tasks +
            f'[mqtt]\nping_interval = 1\nreconnect_delay = {reconnect[0]}\n'
            f'reconnect_max_delay = {reconnect[1]}\n'
            + extra)
