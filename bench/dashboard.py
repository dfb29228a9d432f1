#!/usr/bin/python3
"""Benchmark: the web dashboard of `manta_manager serve --http` (docs/dashboard.md) with 200 nodes
and a swarm of 100 rounds. The issue's requirement: the dashboard loads in <= 300 ms and its
live updates cost the manager <= 1 % of a core per open page.

    bench/dashboard.py [--bin-dir build/rel] [--runs 10] [--window 60] [--pages 5]
                       [--nodes 200] [--rounds 100] [--pace 3] [--history-wait 600]

What runs (everything on loopback, every process started here is ended here):
  * mosquitto and `manta_manager serve --http` with node tokens required; one dashboard user
    (`manta_manager user create`), one SDK user token.
  * N fake nodes, each with its own node token (`token create --node nodeI`): RegisterNode over
    gRPC (platform, dataset "mnist"), then a heartbeat every --heartbeat s
    (SetSystemSummaryRequest with CPU and memory on manager/set_system_summary, as manta_node
    sends it), so they stay CONNECTED.
  * One swarm sent and started through the user services as the SDK does (SendModule of the
    four examples/fedavg modules, SendSwarm, StartSwarm): worker (all) -> aggregator (any) ->
    worker_test (all) -> scheduler (any). The swarm is really run by the manager's runner: the
    fake nodes take each deploy_task from MQTT, report RUNNING, send what the example's task
    would (AddTaskResult "train_metrics" {loss, n_samples} from worker, "metrics" {val_acc,
    loss} from worker_test, msgpack as the SDK stores them; AddTaskLogs of its output), report
    COMPLETED; the scheduler opens the next round with ScheduleTask, and ends the swarm with
    StopSwarm after the last. Nothing is written into the store behind the manager's back.
  * Rounds 0 .. R-2 run as fast as the manager takes them; in the last round (R-1) the
    worker_test instances (RUNNING at once) report at a pace: one change every --pace s, a
    tester's result, then its logs and its end, then the next tester's result... (each a
    `change` event), so the swarm keeps changing while the live cost is measured.

Measured:
  1. Load, API: every call the page makes on load (session, nodes with history, swarms, the
     swarm, keys, series of metrics.val_acc, logs), one keep-alive connection, signed in;
     median and max over --runs; and all of them at once over 6 connections (as a browser).
  2. Load, page (when the built-in page is the real one, app.js > 1 KiB): headless Chromium
     (selenium), signed in once through the form, then each run a fresh load of `#/swarms/ID`,
     timed from navigationStart until `#training-chart svg[data-iterations=R]` is drawn (and
     /api/nodes has answered and `#nodes-table` holds N rows, if the route asks for or shows
     them: web/app.js's swarm view does neither); and of `#/nodes` until `#nodes-table` holds N
     `tr[data-node-id]`.
  3. Live cost: the manager's CPU (utime + stime of /proc/PID/stat; and the schedstat time of
     its web threads, `MHD-*`, where every request and stream is served) over --window s with
     no page open, then with --pages pages open: --pages headless Chromium windows on
     `#/swarms/ID` (the real page), and --pages Python clients of `GET /api/events` with the
     session cookie that refetch on each `change` either series and logs with after=SEQ, or
     what web/app.js does (the swarm, its keys, series and logs since SEQ). Per open page:
     (CPU with K pages - CPU with 0) / K, each pair of windows --repeat times.
  4. Last (it ends the swarm): the page's one write, POST /api/swarms/ID/stop with X-Manta-Csrf.
The nodes' load history (one sample per 5 s for 10 minutes) is full only after 10 minutes of
heartbeats: the load is measured once --history-wait s of heartbeats have passed (the live
windows run first). Everything the answers should hold (200 CONNECTED nodes with load, 100
iterations, the keys, series and logs after=SEQ...) is checked once; problems are listed.
"""
import argparse
import http.client
import json
import math
import os
import pathlib
import queue
import random
import shutil
import signal
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time
import uuid
import zlib

HERE = pathlib.Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT / "tests" / "integration"))
os.environ.setdefault("MANTA_SOURCE_DIR", str(ROOT))

from wire_env import Broker, free_port, wait_for  # noqa: E402

USER, PASSWORD = "bench", "dashboard-bench-password"
LOAD_BUDGET_MS, LIVE_BUDGET_PCT = 300.0, 1.0
HZ = os.sysconf("SC_CLK_TCK")


def log(msg):
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


class QuietBroker(Broker):
    """wire_env's mosquitto without `log_type all` (hundreds of heartbeats a second)."""

    def conf(self):
        c = self.dir / "mosquitto.conf"
        c.write_text(f"listener {self.port} {self.host}\n"
                     + ("user root\n" if os.geteuid() == 0 else "")
                     + "allow_anonymous true\npersistence false\n"
                     f"log_dest file {self.log}\nlog_type error\nlog_type warning\n"
                     "max_queued_messages 100000\n")
        return c


# ---- MessagePack (what msgpack.packb(value, use_bin_type=True) gives; no msgpack here) ---------

def mp(v):
    if isinstance(v, dict):
        out = bytes([0x80 | len(v)]) if len(v) < 16 else b"\xde" + struct.pack(">H", len(v))
        return out + b"".join(mp(k) + mp(x) for k, x in v.items())
    if isinstance(v, (list, tuple)):
        return bytes([0x90 | len(v)]) + b"".join(mp(x) for x in v)
    if isinstance(v, str):
        b = v.encode()
        return (bytes([0xa0 | len(b)]) if len(b) < 32 else b"\xd9" + bytes([len(b)])) + b
    if isinstance(v, bool):
        return b"\xc3" if v else b"\xc2"
    if isinstance(v, int):
        return bytes([v]) if 0 <= v < 128 else b"\xce" + struct.pack(">I", v)
    return b"\xcb" + struct.pack(">d", float(v))


# ---- a minimal MQTT 3.1.1 client: publishes QoS 0/1, subscribes QoS 1 (acks what it gets) -----

class Mqtt:
    def __init__(self, port, on_publish):
        self.s = socket.create_connection(("127.0.0.1", port))
        self.s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.on_publish = on_publish
        self.lock = threading.Lock()
        self.mid = 0
        self.closed = False
        cid = b"bench-dashboard-fleet"
        self._send(0x10, b"\x00\x04MQTT\x04\x02\x00\x3c" + struct.pack(">H", len(cid)) + cid)
        assert self._read()[0] >> 4 == 2, "no CONNACK"
        self.t = threading.Thread(target=self._loop, daemon=True)
        self.t.start()

    def _send(self, head, body):
        n, rem = len(body), b""
        while True:
            b, n = n % 128, n // 128
            rem += bytes([b | (0x80 if n else 0)])
            if not n:
                break
        with self.lock:
            self.s.sendall(bytes([head]) + rem + body)

    def _recv(self, n):
        buf = b""
        while len(buf) < n:
            c = self.s.recv(n - len(buf))
            if not c:
                raise EOFError
            buf += c
        return buf

    def _read(self):
        head = self._recv(1)[0]
        mult, n = 1, 0
        for _ in range(4):
            b = self._recv(1)[0]
            n += (b & 0x7f) * mult
            mult *= 128
            if not b & 0x80:
                break
        return head, self._recv(n) if n else b""

    def _next_mid(self):
        with self.lock:
            self.mid = self.mid % 65535 + 1
            return self.mid

    def subscribe(self, topic):
        t = topic.encode()
        self._send(0x82, struct.pack(">H", self._next_mid()) + struct.pack(">H", len(t)) + t
                   + b"\x01")

    def publish(self, topic, payload, qos=0):
        t = topic.encode()
        var = struct.pack(">H", len(t)) + t
        if qos:
            var += struct.pack(">H", self._next_mid())
        self._send(0x30 | (qos << 1), var + payload)

    def _loop(self):
        while not self.closed:
            try:
                head, body = self._read()
            except (OSError, EOFError):
                return
            if head >> 4 != 3:
                continue  # SUBACK, PUBACK, PINGRESP
            qos = (head >> 1) & 3
            tl = struct.unpack(">H", body[:2])[0]
            topic = body[2:2 + tl].decode()
            off = 2 + tl
            if qos:
                self._send(0x40, body[off:off + 2])
                off += 2
            self.on_publish(topic, body[off:])

    def close(self):
        self.closed = True
        try:
            self._send(0xe0, b"")
        except OSError:
            pass
        try:
            self.s.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.s.close()


# ---- the fake nodes ---------------------------------------------------------------------------

class Fleet:
    """N nodes as the manager sees them: registered over gRPC with their own tokens, heartbeats
    on MQTT, and the swarm's task instances run (reported) as the example's tasks would."""

    def __init__(self, pbs, port, broker_port, tokens, rounds, pace, heartbeat):
        self.pb = pbs
        self.tokens = tokens
        self.n = len(tokens)
        self.rounds, self.pace, self.heartbeat = rounds, pace, heartbeat
        rnd = random.Random(2026)  # node ids as manta_node makes them: random 128 bits
        self.ids = [(rnd.getrandbits(64), rnd.getrandbits(64)) for _ in range(self.n)]
        self.index = {h << 64 | t: i for i, (h, t) in enumerate(self.ids)}
        import grpc
        self.grpc = grpc
        self.ch = grpc.insecure_channel(f"127.0.0.1:{port}", options=[
            ("grpc.max_receive_message_length", -1), ("grpc.max_send_message_length", -1)])
        self.node = pbs.client(self.ch, "node.node_service.Node")
        self.stop = threading.Event()
        self.q = queue.Queue()
        self.slow = queue.Queue()   # the last round's worker_test instances, released at pace
        self.slow_total = 0
        self.done = {}              # (alias, iteration) -> instances reported COMPLETED
        self.reported = 0           # slow instances reported
        self.steps = 0              # changes the slow instances made (a result; logs and end)
        self.errors = []
        self.lock = threading.Lock()
        self.swarm = None
        self.load = [random.uniform(5, 60) for _ in range(self.n)]
        self.mq = Mqtt(broker_port, self._on_mqtt)
        self.mq.subscribe("manta/nodes/+/deploy_task")
        self.threads = []

    def md(self, i, request=False):
        m = [("authorization", self.tokens[i])]
        if request:
            m.append(("manta-request-id", uuid.uuid4().hex))
        return m

    def pid(self, i):
        h, t = self.ids[i]
        return self.pb.system.PairId(head=h, tail=t)

    def register(self):
        info, system = self.pb.info, self.pb.system
        for i in range(self.n):
            self.node.RegisterNode(info.NodeOverview(
                node_id=self.pid(i),
                platform_info=info.PlatformInfo(system="Linux", release="6.1.0-28-amd64",
                                                version="#1 SMP Debian 6.1.119-1",
                                                machine="x86_64", processor="",
                                                hostname=f"worker-{i:03d}"),
                dataset_overviews=info.Overviews(content=[info.Overview(
                    name="mnist", description="Fashion-MNIST partition", dtype="npz")])),
                metadata=self.md(i), timeout=30)
        self._beat_all()

    def _summary(self, i):
        info = self.pb.info
        self.load[i] = min(100.0, max(0.5, self.load[i] + random.uniform(-4, 4)))
        total = 16 << 30
        mem = 30 + self.load[i] / 3
        snap = info.MetricsSnapshot(
            cpu=info.CpuMetrics(usage_percent=self.load[i], count=8, physical_count=4,
                                per_cpu_percent=[self.load[i]] * 8),
            memory=info.MemoryMetrics(total_bytes=total, used_bytes=int(total * mem / 100),
                                      available_bytes=int(total * (100 - mem) / 100),
                                      percent_used=mem))
        return info.SetSystemSummaryRequest(node_id=self.pid(i),
                                            metrics_snapshot=snap).SerializeToString()

    def _beat_all(self):
        for i in range(self.n):
            self.mq.publish("manager/set_system_summary", self._summary(i))

    def _heartbeats(self):
        """Each node once per heartbeat interval, spread over it (nodes are not in step)."""
        step = self.heartbeat / self.n
        nxt = time.monotonic()
        i = 0
        while not self.stop.is_set():
            nxt += step
            try:
                self.mq.publish("manager/set_system_summary", self._summary(i))
            except OSError:
                return
            i = (i + 1) % self.n
            delay = nxt - time.monotonic()
            if delay > 0:
                self.stop.wait(delay)
            elif delay < -5:
                nxt = time.monotonic()  # fell behind (a busy machine): do not burst

    def start(self, workers=4):
        for fn in [self._heartbeats, self._pacer] + [self._worker] * workers:
            t = threading.Thread(target=fn, daemon=True)
            t.start()
            self.threads.append(t)

    def _on_mqtt(self, topic, payload):
        parts = topic.split("/")
        if len(parts) == 4 and parts[3] == "deploy_task":
            t = self.pb.tasks.MqttTask.FromString(payload)
            node = self.index.get(int(parts[2], 16))
            if node is None:
                return
            if t.alias == "worker_test" and t.iteration == self.rounds - 1:
                self._update(node, t, 2)   # RUNNING at once, as a node does; the end comes later
                self.slow.put((node, t))
                with self.lock:
                    self.slow_total += 1
            else:
                self.q.put((node, t))

    def _update(self, i, t, status):
        u = self.pb.tasks.TaskUpdate(swarm_id=t.swarm_id, node_id=self.pid(i), task_id=t.task_id,
                                     iteration=t.iteration, circular=0, task_status=status)
        self.mq.publish("manager/update_task_status", u.SerializeToString(), qos=1)

    def _result(self, i, t, tag, value):
        r = self.pb.results.Result(swarm_id=t.swarm_id, task_id=t.task_id, node_id=self.pid(i),
                                   iteration=t.iteration, tag=tag, data=mp(value))
        self.node.AddTaskResult(iter([r]), metadata=self.md(i, True), timeout=60)

    def _logs(self, i, t, text):
        h, tl = self.ids[i]
        blob = struct.pack("<6QHH", t.swarm_id.head, t.swarm_id.tail, h, tl, t.task_id.head,
                           t.task_id.tail, t.iteration, 0) + zlib.compress(text.encode(), 9)
        now = time.time()
        ts = self.pb.ts.Timestamp(seconds=int(now), nanos=int(now % 1 * 1e9))
        self.node.AddTaskLogs(iter([self.pb.system.Logs(content=blob, timestamp=ts)]),
                              metadata=self.md(i), timeout=60)

    @staticmethod
    def acc(i, it):
        rnd = random.Random(i * 7919 + it)
        return min(0.95, 0.84 - 0.62 * math.exp(-it / 14) + rnd.uniform(-0.03, 0.03))

    def run_task(self, i, t, between=None):
        """What the example's task reports for this instance, then its outcome. between (paced
        testers): called after the result, before the logs (the task's output is uploaded when
        it exits); RUNNING was sent when the deploy came."""
        RUNNING, COMPLETED = 2, 3
        it, alias = t.iteration, t.alias
        if not between:
            self._update(i, t, RUNNING)
        if alias == "worker":
            loss = 0.45 + 1.9 * math.exp(-it / 12) + random.uniform(0, 0.05)
            self._result(i, t, "train_metrics", {"loss": [loss], "n_samples": 3000})
            load_ms, send_ms = random.randint(20, 60), random.randint(10, 19)
            self._logs(i, t, f"INFO worker: loaded 3000 training images in 0.0{load_ms} s\n"
                             f"INFO worker: round {it + 1}: epoch 1/1 loss {loss:.4f}\n"
                             f"INFO worker: sent model_params (31400 bytes) in 0.0{send_ms} s\n")
        elif alias == "aggregator":
            self._logs(i, t, f"INFO aggregator: round {it + 1}: averaged {self.n} models "
                             f"({self.n * 3000} samples)\nINFO aggregator: global_model_params "
                             "updated (31400 bytes)\n")
        elif alias == "worker_test":
            a = self.acc(i, it)
            loss = 0.4 + 1.6 * (0.95 - a)
            self._result(i, t, "metrics", {"val_acc": a, "loss": loss})
            if between:
                between()
            self._logs(i, t, f"INFO worker_test: 1000 test images: val_acc {a:.4f} "
                             f"loss {loss:.4f}\n")
        elif alias == "scheduler":
            accs = ", ".join(f"{self.ids[k][0] >> 32:08x} {self.acc(k, it):.3f}"
                             for k in range(self.n))
            last = it + 1 >= self.rounds
            self._logs(i, t, f"INFO scheduler: round {it + 1}: val_acc {accs}\n"
                             + (f"INFO scheduler: stopping the swarm: round limit {self.rounds} "
                                "reached\n" if last else
                                f"INFO scheduler: next round on {self.n} node(s)\n"))
            if last:
                self.node.StopSwarm(self.pb.tasks.TaskUpdate(
                    swarm_id=t.swarm_id, node_id=self.pid(i), task_id=t.task_id, iteration=it,
                    task_status=COMPLETED), metadata=self.md(i), timeout=30)
            else:
                self.node.ScheduleTask(self.pb.tasks.TaskScheduling(
                    node_ids=[self.pid(k) for k in range(self.n)], task_id=t.task_id,
                    task_to_schedule_alias="worker", swarm_id=t.swarm_id),
                    metadata=self.md(i), timeout=30)
        self._update(i, t, COMPLETED)
        with self.lock:
            self.done[(alias, it)] = self.done.get((alias, it), 0) + 1

    def _worker(self):
        while not self.stop.is_set():
            try:
                i, t = self.q.get(timeout=0.2)
            except queue.Empty:
                continue
            try:
                self.run_task(i, t)
            except self.grpc.RpcError as e:
                self.errors.append(f"{t.alias} it {t.iteration} node {i}: {e.code()} {e.details()}")

    def _pacer(self):
        """The last round's testers, one change every `pace` s: a tester's result, then (a pace
        later) its logs and its end, then the next tester. The last tester is kept back, so that
        the swarm is still running (and changing) however long the bench takes."""
        t0 = [time.monotonic()]

        def step():
            self.steps += 1
            self.stop.wait(max(0.0, self.pace - (time.monotonic() - t0[0])))
            t0[0] = time.monotonic()
        while not self.stop.is_set():
            if self.reported >= self.n - 1:
                self.stop.wait(0.2)
                continue
            try:
                i, t = self.slow.get(timeout=0.2)
            except queue.Empty:
                continue
            try:
                self.run_task(i, t, between=step)
                with self.lock:
                    self.reported += 1
            except self.grpc.RpcError as e:
                self.errors.append(f"slow {t.alias} node {i}: {e.code()} {e.details()}")
            if not self.stop.is_set():
                step()

    def close(self):
        self.stop.set()
        for t in self.threads:
            t.join(5)
        self.mq.close()
        self.ch.close()


# ---- the dashboard's HTTP API -----------------------------------------------------------------

class Web:
    """One keep-alive HTTP/1.1 connection, as one of a browser's, with the session cookie."""

    def __init__(self, port, cookie=None):
        self.port = port
        self.cookie = cookie
        self.c = None

    def _conn(self):
        if self.c is None:
            self.c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        return self.c

    def request(self, method, path, body=None, headers=None):
        hdrs = {"Accept": "application/json", **(headers or {})}
        if self.cookie:
            hdrs["Cookie"] = self.cookie
        if body is not None:
            hdrs["Content-Type"] = "application/json"
        for attempt in range(2):
            c = self._conn()
            try:
                t0 = time.perf_counter()
                c.request(method, path, body=body, headers=hdrs)
                r = c.getresponse()
                data = r.read()
                ms = (time.perf_counter() - t0) * 1000
                return r.status, r, data, ms
            except (http.client.HTTPException, OSError):
                self.close()  # the server closed an idle keep-alive connection: once more
                if attempt:
                    raise
        raise AssertionError("unreachable")

    def get(self, path):
        return self.request("GET", path)

    def json(self, path):
        st, r, data, ms = self.get(path)
        if st != 200:
            raise AssertionError(f"GET {path}: {st} {data[:300]!r}")
        return json.loads(data), ms, len(data), r

    def login(self, user, password):
        st, r, data, _ = self.request("POST", "/api/login",
                                      json.dumps({"user": user, "password": password}))
        if st != 200:
            raise AssertionError(f"sign-in refused: {st} {data!r}")
        sc = r.getheader("Set-Cookie", "")
        self.cookie = sc.split(";", 1)[0]
        return json.loads(data)

    def close(self):
        if self.c:
            self.c.close()
        self.c = None


def load_paths(sid):
    return [("session", "/api/session"),
            ("nodes (with history)", "/api/nodes"),
            ("swarms", "/api/swarms"),
            ("swarm", f"/api/swarms/{sid}"),
            ("keys", f"/api/swarms/{sid}/keys"),
            ("series metrics.val_acc", f"/api/swarms/{sid}/series?key=metrics.val_acc"),
            ("logs", f"/api/swarms/{sid}/logs")]


def check_answers(port, cookie, sid, nodes, rounds):
    """What the page relies on, checked once: problems as sentences."""
    w = Web(port, cookie)
    probs = []
    try:
        for name, path in load_paths(sid):
            st, r, data, _ = w.get(path)
            if st != 200:
                probs.append(f"{path}: status {st}")
                continue
            if not (r.getheader("Content-Type", "")).startswith("application/json"):
                probs.append(f"{path}: Content-Type {r.getheader('Content-Type')}")
            if "no-store" not in r.getheader("Cache-Control", ""):
                probs.append(f"{path}: Cache-Control {r.getheader('Cache-Control')}")
        nd = w.json("/api/nodes")[0]["nodes"]
        if len(nd) != nodes:
            probs.append(f"/api/nodes lists {len(nd)} nodes, {nodes} registered")
        bad = [n["alias"] for n in nd if n["status"] != "CONNECTED"]
        if bad:
            probs.append(f"{len(bad)} node(s) not CONNECTED: {bad[:5]}")
        if any(not n.get("cpu") or not n.get("memory") for n in nd):
            probs.append("a node has no cpu/memory although it sent heartbeats")
        sw = w.json(f"/api/swarms/{sid}")[0]
        if len(sw["graph"]["tasks"]) != 4 or len(sw["graph"]["edges"]) != 3:
            probs.append(f"swarm graph: {len(sw['graph']['tasks'])} tasks, "
                         f"{len(sw['graph']['edges'])} edges (want 4, 3)")
        if len(sw["history"]) != rounds:
            probs.append(f"swarm history has {len(sw['history'])} iterations, want {rounds}")
        keys = w.json(f"/api/swarms/{sid}/keys")[0]["keys"]
        for k in ("metrics.val_acc", "metrics.loss", "train_metrics.n_samples"):
            if k not in keys:
                probs.append(f"keys lacks {k}: {keys}")
        s = w.json(f"/api/swarms/{sid}/series?key=metrics.val_acc")[0]
        if len(s["nodes"]) != nodes or len(s["mean"]) != rounds:
            probs.append(f"series: {len(s['nodes'])} node lines, {len(s['mean'])} mean points "
                         f"(want {nodes}, {rounds})")
        again = w.json(f"/api/swarms/{sid}/series?key=metrics.val_acc&after={s['seq']}")[0]
        if again["nodes"] or again["seq"] < s["seq"]:
            probs.append(f"series after=seq returned {len(again['nodes'])} lines, "
                         f"seq {again['seq']}")
        lg = w.json(f"/api/swarms/{sid}/logs")[0]
        total = w.json(f"/api/swarms/{sid}/logs?limit=2000")[0]["logs"]
        if len(lg["logs"]) != min(200, len(total)) or (
                lg["logs"] and lg["logs"][-1]["seq"] != total[-1]["seq"]):
            probs.append(f"logs: {len(lg['logs'])} entries, want the newest 200")
        lg2 = w.json(f"/api/swarms/{sid}/logs?after={lg['seq']}")[0]
        if lg2["logs"] and min(x["seq"] for x in lg2["logs"]) <= lg["seq"]:
            probs.append("logs after=seq returned older entries")
    finally:
        w.close()
    return probs


def measure_api(port, cookie, sid, runs):
    """{name: [ms]} over runs, one keep-alive connection; sizes; and the wall time of all the
    calls at once over 6 connections."""
    w = Web(port, cookie)
    times, sizes = {}, {}
    try:
        w.get("/api/session")  # connect
        for _ in range(runs):
            for name, path in load_paths(sid):
                st, _, data, ms = w.get(path)
                assert st == 200, (path, st, data[:200])
                times.setdefault(name, []).append(ms)
                sizes[name] = len(data)
    finally:
        w.close()
    conns = [Web(port, cookie) for _ in range(6)]
    for c in conns:
        c.get("/api/session")
    par = []
    try:
        for _ in range(runs):
            paths = [p for _, p in load_paths(sid)]
            todo = queue.Queue()
            for p in paths:
                todo.put(p)

            def go(c):
                while True:
                    try:
                        p = todo.get_nowait()
                    except queue.Empty:
                        return
                    c.get(p)
            t0 = time.perf_counter()
            ts = [threading.Thread(target=go, args=(c,)) for c in conns]
            for t in ts:
                t.start()
            for t in ts:
                t.join()
            par.append((time.perf_counter() - t0) * 1000)
    finally:
        for c in conns:
            c.close()
    return times, sizes, par


# ---- live streams -----------------------------------------------------------------------------

class Stream(threading.Thread):
    """One open page's live updates: GET /api/events read continuously; on each `change`, the
    refetches of the page, on a second keep-alive connection: series and logs since their seq
    (app=False); or what web/app.js's swarm view does (app=True): the swarm again (throttled to
    one a second there, leading and trailing: for the pairs of changes a report makes, as many
    as here), the keys again, series since seq, logs since seq with limit=2000."""

    def __init__(self, port, cookie, sid, app):
        super().__init__(daemon=True)
        self.port, self.cookie, self.sid, self.app = port, cookie, sid, app
        self.stopping = threading.Event()
        self.counts = {"hello": 0, "change": 0, "nodes": 0, "keep-alive": 0, "requests": 0,
                       "bytes": 0}
        self.error = None
        self.sock = None
        self.ready = threading.Event()

    def run(self):
        api = Web(self.port, self.cookie)
        sid = self.sid
        try:
            seq_s = api.json(f"/api/swarms/{sid}/series?key=metrics.val_acc")[0]["seq"]
            seq_l = api.json(f"/api/swarms/{sid}/logs")[0]["seq"]
            c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=120)
            c.request("GET", "/api/events", headers={"Cookie": self.cookie,
                                                     "Accept": "text/event-stream"})
            r = c.getresponse()
            if r.status != 200:
                raise AssertionError(f"/api/events: {r.status}")
            self.sock = c.sock
            self.ready.set()
            event = None
            while not self.stopping.is_set():
                line = r.readline()
                if not line:
                    break
                self.counts["bytes"] += len(line)
                line = line.rstrip(b"\r\n")
                if line.startswith(b":"):
                    self.counts["keep-alive"] += 1
                elif line.startswith(b"event:"):
                    event = line[6:].strip().decode()
                elif line == b"" and event:
                    self.counts[event] = self.counts.get(event, 0) + 1
                    if event == "change" and not self.stopping.is_set():
                        if self.app:
                            api.json(f"/api/swarms/{sid}")
                            api.json(f"/api/swarms/{sid}/keys")
                            self.counts["requests"] += 2
                        s = api.json(f"/api/swarms/{sid}/series?key=metrics.val_acc"
                                     f"&after={seq_s}")[0]
                        seq_s = max(seq_s, s["seq"])
                        lg = api.json(f"/api/swarms/{sid}/logs?after={seq_l}"
                                      + ("&limit=2000" if self.app else ""))[0]
                        seq_l = max(seq_l, lg["seq"])
                        self.counts["requests"] += 2
                    event = None
        except Exception as e:  # noqa: BLE001 - reported with the figures
            if not self.stopping.is_set():
                self.error = repr(e)
        finally:
            self.ready.set()
            api.close()

    def close(self):
        self.stopping.set()
        if self.sock:
            try:
                self.sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self.join(10)


def cpu_ticks(pid):
    f = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return int(f[11]) + int(f[12])


def threads_of(pid):
    return len(os.listdir(f"/proc/{pid}/task"))


def thread_ns(pid):
    """{tid: (comm, on-CPU ns)} from /proc/PID/task/*/schedstat."""
    out = {}
    for t in os.listdir(f"/proc/{pid}/task"):
        try:
            ns = int(open(f"/proc/{pid}/task/{t}/schedstat").read().split()[0])
            out[t] = (open(f"/proc/{pid}/task/{t}/comm").read().strip(), ns)
        except (OSError, ValueError, IndexError):
            pass
    return out


def cpu_window(pid, secs, fleet):
    """Over secs: CPU % of one core of the whole process (utime + stime, which keeps the time of
    threads that ended), of its web threads (libmicrohttpd's, `MHD-*`: every dashboard request
    and live stream runs on one) and of its main loop (schedstat, ns); and the swarm changes made
    meanwhile."""
    r0 = fleet.steps
    t0, c0, s0 = time.monotonic(), cpu_ticks(pid), thread_ns(pid)
    time.sleep(secs)
    t1, c1, s1 = time.monotonic(), cpu_ticks(pid), thread_ns(pid)
    span = t1 - t0

    def pct(pick):
        return sum(ns - (s0[t][1] if t in s0 else 0) for t, (comm, ns) in s1.items()
                   if pick(t, comm)) / 1e9 / span * 100
    return {"all": (c1 - c0) / HZ / span * 100,
            "web": pct(lambda t, comm: comm.startswith("MHD-")),
            "main": pct(lambda t, comm: t == str(pid)),
            "changes": fleet.steps - r0}


# ---- the page in Chromium ---------------------------------------------------------------------

READY_JS = r"""
(function () {
  const want = %(iters)d, nodes = %(nodes)d, route = %(route)s;
  function nodesDone() {   // /api/nodes answered, if the page asked for it
    const e = performance.getEntriesByType('resource')
                         .filter(e => /\/api\/nodes(\?|$)/.test(e.name));
    return e.every(x => x.responseEnd > 0);
  }
  function painted(name) {   // the time once the frame with what is checked is painted
    window['__bench_' + name + '_dom'] = performance.now();
    requestAnimationFrame(() => setTimeout(() => {
      window['__bench_' + name] = performance.now();
    }, 0));
  }
  function all() {          // everything the route draws: the tables and logs below the chart
    if (route === '#/nodes') return true;
    return document.querySelector('#history-table tbody tr') &&
           document.querySelector('#placement-table tbody tr') &&
           document.querySelector('#logs-list .log-entry');
  }
  function check() {
    if (location.hash !== route) return;
    if (window.__bench_ready_dom && !window.__bench_all_dom && all()) painted('all');
    if (window.__bench_ready_dom) return;
    const rows = document.querySelectorAll('#nodes-table tr[data-node-id]').length;
    let ok;
    if (route === '#/nodes') {
      ok = rows >= nodes;
    } else {
      const svg = document.querySelector('#training-chart svg[data-iterations]');
      ok = svg && Number(svg.getAttribute('data-iterations')) === want && nodesDone();
      const table = document.querySelector('#nodes-table');
      if (ok && table && table.offsetParent !== null) ok = rows >= nodes;  // shown on this route
    }
    if (ok) painted('ready');
    if (ok && all()) painted('all');
  }
  new MutationObserver(check).observe(document, {subtree: true, childList: true,
                                                  attributes: true});
  (function poll() { check(); if (!window.__bench_all_dom) requestAnimationFrame(poll); })();
})();
"""


class Browser:
    def __init__(self, base):
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
        o = webdriver.ChromeOptions()
        o.binary_location = "/usr/bin/chromium"
        for a in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                  "--disable-gpu", "--window-size=1400,1000", "--no-first-run",
                  "--disable-background-networking", "--disable-extensions",
                  # a page left for about:blank must not stay alive in the back/forward cache
                  # with its live stream open: six of them take every connection Chromium
                  # allows to one host, and the next load waits for one
                  "--disable-features=BackForwardCache"):
            o.add_argument(a)
        self.d = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=o)
        self.base = base
        self.script_id = None

    def sign_in(self, user, password):
        from selenium.webdriver.common.by import By
        from selenium.webdriver.support.ui import WebDriverWait
        self.d.get(self.base + "/")
        WebDriverWait(self.d, 20).until(lambda d: d.find_elements(By.CSS_SELECTOR, "#login-user"))
        self.d.find_element(By.CSS_SELECTOR, "#login-user").send_keys(user)
        self.d.find_element(By.CSS_SELECTOR, "#login-password").send_keys(password)
        self.d.find_element(By.CSS_SELECTOR, "#login-submit").click()
        WebDriverWait(self.d, 20).until(
            lambda d: any(c["name"] == "manta_session" for c in d.get_cookies()))

    def timed_load(self, route, iters, nodes, timeout=30):
        """A fresh load of base/route: ms from navigationStart until the chart (or the node
        rows) is in the page, until that frame is painted, and until the frame with everything
        below it (tables, logs) is painted; and the API requests the page made meanwhile."""
        from selenium.webdriver.support.ui import WebDriverWait
        if self.script_id:
            self.d.execute_cdp_cmd("Page.removeScriptToEvaluateOnNewDocument",
                                   {"identifier": self.script_id})
        src = READY_JS % {"iters": iters, "nodes": nodes, "route": json.dumps(route)}
        self.script_id = self.d.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument",
                                                {"source": src})["identifier"]
        self.d.get("about:blank")
        self.d.get(f"{self.base}/{route}")
        WebDriverWait(self.d, timeout, poll_frequency=0.05).until(
            lambda d: d.execute_script("return window.__bench_all || null"))
        ms = self.d.execute_script(
            "return [window.__bench_ready_dom, window.__bench_ready, window.__bench_all]")
        reqs = self.d.execute_script(
            "return performance.getEntriesByType('resource').map(e => "
            "[e.name.replace(location.origin, ''), Math.round(e.startTime), "
            "Math.round(e.responseEnd)])")
        return ms, reqs

    def open_windows(self, k, url):
        if self.script_id:  # the load timer is for timed_load only
            self.d.execute_cdp_cmd("Page.removeScriptToEvaluateOnNewDocument",
                                   {"identifier": self.script_id})
            self.script_id = None
        handles = []
        for i in range(k):
            if i:
                self.d.switch_to.new_window("window")
            self.d.get(url)
            self.d.execute_script("performance.setResourceTimingBufferSize(100000)")
            handles.append(self.d.current_window_handle)
        return handles

    def marks(self, handles):
        out = []
        for h in handles:
            self.d.switch_to.window(h)
            out.append(self.d.execute_script("return performance.now()"))
        return out

    def since(self, handles, marks):
        """Per window: its visibility, and the API requests it made since its mark."""
        out = []
        for h, m in zip(handles, marks):
            self.d.switch_to.window(h)
            out.append(self.d.execute_script(
                "return [document.visibilityState, performance.getEntriesByType('resource')"
                ".filter(e => e.name.includes('/api/') && e.startTime > arguments[0]).length]",
                m))
        return out

    def close_others(self, handles):
        for h in handles[1:]:
            self.d.switch_to.window(h)
            self.d.close()
        self.d.switch_to.window(handles[0])
        self.d.get("about:blank")

    def quit(self):
        try:
            self.d.quit()
        except Exception:  # noqa: BLE001
            pass


# ---- main -------------------------------------------------------------------------------------

class PB:
    def __init__(self):
        from pbgen import client, pb
        self.client = client
        self.system = pb("common.system_pb2")
        self.info = pb("common.informations_pb2")
        self.tasks = pb("common.tasks_pb2")
        self.results = pb("common.results_pb2")
        self.ts = pb("google.protobuf.timestamp_pb2")


def stats(v):
    return statistics.median(v), max(v)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    default_bin = next((d for d in ("build/rel", "build/gcc")
                        if (ROOT / d / "manta_manager").exists()), "build/rel")
    ap.add_argument("--bin-dir", default=default_bin,
                    help="where manta_manager is (default %(default)s)")
    ap.add_argument("--runs", type=int, default=10, help="loads measured (default 10)")
    ap.add_argument("--window", type=float, default=60.0,
                    help="seconds per CPU window (default 60)")
    ap.add_argument("--pages", type=int, default=5, help="open pages / live streams (default 5)")
    ap.add_argument("--nodes", type=int, default=200)
    ap.add_argument("--rounds", type=int, default=100)
    ap.add_argument("--pace", type=float, default=3.0,
                    help="seconds between two reports of the last round (default 3)")
    ap.add_argument("--heartbeat", type=float, default=1.0,
                    help="seconds between a node's heartbeats (manta_node's default: 1)")
    ap.add_argument("--repeat", type=int, default=2, help="(0, K streams) window pairs per variant")
    ap.add_argument("--history-wait", type=float, default=600.0,
                    help="seconds of heartbeats before the load is measured (default 600: the "
                         "nodes' 10-minute load history is full)")
    ap.add_argument("--browser", choices=("auto", "on", "off"), default="auto",
                    help="the page in Chromium: auto = when the built-in page is the real one")
    ap.add_argument("--keep", action="store_true", help="keep the work folder (store, logs)")
    a = ap.parse_args()
    for name in ("runs", "pages", "nodes", "rounds", "repeat"):
        if getattr(a, name) < 1:
            ap.error(f"--{name} must be at least 1")
    if a.rounds < 2 or a.window <= 0 or a.pace <= 0 or a.heartbeat <= 0:
        ap.error("--rounds >= 2, --window, --pace and --heartbeat > 0")

    bindir = (ROOT / a.bin_dir) if not os.path.isabs(a.bin_dir) else pathlib.Path(a.bin_dir)
    mgr = str(bindir / "manta_manager")
    if not os.access(mgr, os.X_OK):
        raise SystemExit(f"{mgr} is not built (cmake --build {a.bin_dir} --target manta_manager)")
    command = "/usr/bin/python3 bench/dashboard.py " + " ".join(sys.argv[1:])
    work = pathlib.Path(tempfile.mkdtemp(prefix="manta-bench-dash-"))
    os.environ["MANTA_BUILD_DIR"] = str(work)  # pbgen's generated modules, removed at the end
    env = {"MANTA_HOME": str(work / "home" / ".manta"), "HOME": str(work / "home"),
           "PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C.UTF-8"}
    (work / "home").mkdir()
    store, admin = work / "store.db", work / "admin.sock"
    broker = proc = fleet = browser = None
    streams = []
    mlog = open(work / "manager.log", "w")

    def cli(*args):
        p = subprocess.run([mgr, *args], capture_output=True, text=True, env=env, timeout=60)
        if p.returncode:
            raise SystemExit(f"manta_manager {' '.join(args)}: {p.returncode}\n{p.stderr}")
        return p.stdout.strip()

    def end(signum, frame):  # SIGTERM/SIGHUP: clean up as for Ctrl-C
        raise SystemExit(f"signal {signum}: stopping")
    signal.signal(signal.SIGTERM, end)
    signal.signal(signal.SIGHUP, end)
    try:
        pbs = PB()
        from sdk_replay import Api, scheduling
        broker = QuietBroker(work / "broker").start()
        pw = work / "pw"
        pw.write_text(PASSWORD + "\n")
        cli("user", "create", USER, "--password-file", str(pw), "--store", str(store))
        log(f"minting {a.nodes} node tokens")
        tokens = [cli("token", "create", "--node", f"node{i}") for i in range(a.nodes)]
        port, http_port = free_port(), free_port()
        proc = subprocess.Popen(
            [mgr, "serve", "--listen", f"127.0.0.1:{port}", "--broker",
             f"127.0.0.1:{broker.port}", "--store", str(store), "--admin", str(admin),
             "--http", f"127.0.0.1:{http_port}"],
            env=env, stdout=mlog, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)

        def listening(p):
            def up():
                if proc.poll() is not None:
                    raise SystemExit(f"manta_manager exited ({proc.returncode}); "
                                     f"see {work}/manager.log")
                try:
                    with socket.create_connection(("127.0.0.1", p), timeout=0.2):
                        return True
                except OSError:
                    return False
            return up
        wait_for(listening(port), 30, what="manta_manager's node service")
        wait_for(listening(http_port), 30, what="the dashboard")
        utoken = cli("token", "create", "--user", USER, "--store", str(store))

        log(f"registering {a.nodes} nodes")
        fleet = Fleet(pbs, port, broker.port, tokens, a.rounds, a.pace, a.heartbeat)
        t_reg = time.monotonic()
        fleet.register()
        fleet.start()
        beats_since = time.monotonic()
        log(f"registered in {time.monotonic() - t_reg:.1f} s; heartbeats every {a.heartbeat} s")

        api = Api(port, utoken)
        sysp = pbs.system
        cid = api.unary("ClusterManagement", "ListClusterIds", sysp.Empty()).ids[0]
        wait_for(lambda: len(api.unary("ClusterManagement", "ListAvailableNodeIds",
                                       sysp.StrId(id=cid)).ids) >= a.nodes,
                 timeout=60, what=f"{a.nodes} nodes available")
        ex = ROOT / "examples" / "fedavg"
        modules = {m: (ex / f"{m}.py", "manta-task:bookworm",
                       ["mnist"] if m.startswith("worker") else [])
                   for m in ("worker", "aggregator", "worker_test", "scheduler")}
        tasks = [("worker", "worker", scheduling("all"), [], None),
                 ("aggregator", "aggregator", scheduling("any", True, 1), ["worker"], None),
                 ("worker_test", "worker_test", scheduling("all"), ["aggregator"], None),
                 ("scheduler", "scheduler", scheduling("any", True, 1), ["worker_test"], None)]
        hp = {"epochs": 1, "batch_size": 32, "optimizer": "SGD", "optimizer_params": {"lr": 0.1},
              "val_acc_threshold": 0.99, "max_rounds": a.rounds, "reschedule": "all"}
        swarm, _ = api.send_swarm(cid, modules, tasks, [("hyperparameters", mp(hp)),
                                                        ("round", mp(0))], name="fedavg")
        sid = swarm.swarm_id
        fleet.swarm = sid
        t_run = time.monotonic()
        api.unary("SwarmManagement", "StartSwarm", sysp.StrId(id=sid))
        log(f"swarm {sid} started: running rounds 0..{a.rounds - 2} at full speed")
        last_note = 0
        deadline = time.monotonic() + 60 * a.rounds
        while fleet.slow_total < a.nodes:
            if time.monotonic() > deadline or proc.poll() is not None:
                raise SystemExit(f"the swarm did not reach its last round (errors: "
                                 f"{fleet.errors[:3]}); see {work}/manager.log")
            if fleet.errors:
                raise SystemExit(f"a node's call failed: {fleet.errors[:3]}")
            done = [it for (al, it) in fleet.done if al == "scheduler"]
            if done and max(done) >= last_note + 10:
                last_note = max(done)
                log(f"  round {last_note} done, {time.monotonic() - t_run:.0f} s")
            time.sleep(0.2)
        setup_s = time.monotonic() - t_run
        log(f"{a.rounds - 1} rounds in {setup_s:.0f} s; round {a.rounds - 1}: one change "
            f"every {a.pace} s")
        wait_for(lambda: fleet.reported >= 1, timeout=30 + 2 * a.pace,
                 what="the first live report")
        api.close()

        base = f"http://127.0.0.1:{http_port}"
        web = Web(http_port)
        web.login(USER, PASSWORD)
        cookie = web.cookie
        st, _, page_js, _ = web.get("/app.js")
        real_page = st == 200 and len(page_js) > 1024
        use_browser = a.browser == "on" or (a.browser == "auto" and real_page)
        if a.browser == "on" and not real_page:
            log("warning: the built-in page looks like a placeholder (app.js <= 1 KiB)")
        web.close()
        pid = proc.pid
        problems = check_answers(http_port, cookie, sid, a.nodes, a.rounds)

        # ---- live cost ----
        load_avg = [os.getloadavg()[0]]
        live = []   # (variant, window with 0 pages, window with K pages, per-stream counts)

        def stream_window(app):
            ss = [Stream(http_port, cookie, sid, app) for _ in range(a.pages)]
            streams.extend(ss)
            for s in ss:
                s.start()
            for s in ss:
                s.ready.wait(30)
            time.sleep(1.0)  # the initial fetches and `hello` are part of the load, not of this
            w = cpu_window(pid, a.window, fleet)
            for s in ss:
                s.close()
                streams.remove(s)
            errs = [s.error for s in ss if s.error]
            counts = {k: sum(s.counts.get(k, 0) for s in ss) / len(ss)
                      for k in ("change", "nodes", "requests", "bytes")}
            return w, counts, errs

        if use_browser:
            browser = Browser(base)
            browser.sign_in(USER, PASSWORD)
            for rep in range(a.repeat):
                log(f"live window: 0 pages (browser, pair {rep + 1}/{a.repeat})")
                w0 = cpu_window(pid, a.window, fleet)
                log(f"live window: {a.pages} browser windows on #/swarms/{sid}")
                handles = browser.open_windows(a.pages, f"{base}/#/swarms/{sid}")
                time.sleep(3.0)  # loaded: what follows is the live updates only
                marks = browser.marks(handles)
                wk = cpu_window(pid, a.window, fleet)
                seen = browser.since(handles, marks)
                browser.close_others(handles)
                hidden = [v for v, _ in seen if v != "visible"]
                if hidden:
                    problems.append(f"browser windows not visible ({hidden}): the page defers "
                                    "its refetches while hidden")
                live.append(("browser windows (web/app.js)", w0, wk,
                             {"change": None, "nodes": None,
                              "requests": sum(n for _, n in seen) / len(seen)}))

        variants = [("streams: series+logs", False),
                    ("streams: as app.js (swarm, keys, series, logs)", True)]
        for rep in range(a.repeat):
            for label, app in variants:
                log(f"live window: 0 pages ({label}, pair {rep + 1}/{a.repeat})")
                w0 = cpu_window(pid, a.window, fleet)
                log(f"live window: {a.pages} streams ({label})")
                wk, counts, errs = stream_window(app)
                if errs:
                    problems.append(f"live stream failed: {errs[0]}")
                live.append((label, w0, wk, counts))
        if any(wk["changes"] == 0 for _, _, wk, _ in live):
            problems.append("a window with pages open saw no change of the swarm (the paced "
                            "round ran out: raise --pace)")

        # ---- load ----
        wait_more = a.history_wait - (time.monotonic() - beats_since)
        if wait_more > 0:
            log(f"waiting {wait_more:.0f} s more for the nodes' load history to fill")
            time.sleep(wait_more)
        probe = Web(http_port, cookie)
        hist = [len(n["history"]) for n in probe.json("/api/nodes")[0]["nodes"]]
        series = probe.json(f"/api/swarms/{sid}/series?key=metrics.val_acc")[0]
        iters = len(series["mean"])
        nlogs = probe.json(f"/api/swarms/{sid}/logs?limit=1")[0]["seq"]
        probe.close()
        log(f"load: {a.runs} runs (history {min(hist)}-{max(hist)} samples per node, "
            f"{iters} iterations drawn)")
        load_avg.append(os.getloadavg()[0])
        threads_before = threads_of(pid)
        times, sizes, par = measure_api(http_port, cookie, sid, a.runs)
        page = {}
        if use_browser:
            if browser is None:
                browser = Browser(base)
                browser.sign_in(USER, PASSWORD)
            for route, key in ((f"#/swarms/{sid}", "page #/swarms/ID"),
                               ("#/nodes", "page #/nodes")):
                browser.timed_load(route, iters, a.nodes)  # warm: the page's files cached
                v = []
                for _ in range(a.runs):
                    ms, reqs = browser.timed_load(route, iters, a.nodes)
                    v.append(ms)
                page[key] = (v, reqs)
        threads_after = threads_of(pid)
        load_avg.append(os.getloadavg()[0])

        # ---- the page's one write, last (it ends the swarm): POST /api/swarms/ID/stop ----
        w = Web(http_port, cookie)
        csrf = w.json("/api/session")[0]["csrf"]
        st, _, data, _ = w.request("POST", f"/api/swarms/{sid}/stop")
        if st != 403:
            problems.append(f"stop without X-Manta-Csrf answered {st}, not 403: {data[:200]!r}")
        st, _, data, stop_ms = w.request("POST", f"/api/swarms/{sid}/stop",
                                         headers={"X-Manta-Csrf": csrf})
        if st != 200:
            problems.append(f"stop answered {st}: {data[:200]!r}")
        after_stop = w.json(f"/api/swarms/{sid}")[0]["status"]
        if after_stop != "STOPPED":
            problems.append(f"the swarm is {after_stop} after a stop")
        w.close()

        # ---- report ----
        print()
        print(f"dashboard: {a.nodes} nodes (CONNECTED, heartbeat every {a.heartbeat} s), swarm "
              f"{sid} of {a.rounds} rounds ({iters} iterations of metrics.val_acc, {nlogs} task "
              f"logs stored); {a.rounds - 1} rounds run through the manager in {setup_s:.0f} s")
        print(f"load average (1 min) before the live windows / after them / after the load "
              f"runs: "
              f"{load_avg[0]:.1f} / {load_avg[1]:.1f} / {load_avg[2]:.1f} (2 cores: above ~0.5 "
              "other work competed with the manager)")
        print(f"node load history: {min(hist)}-{max(hist)} samples per node "
              f"({'full' if min(hist) >= 120 else 'not full: --history-wait'})")
        print()
        print(f"Load, API, signed in, {a.runs} runs (one keep-alive connection):")
        print()
        print("| call | median ms | max ms | bytes |")
        print("|---|---|---|---|")
        total = [sum(times[n][r] for n, _ in load_paths(sid)) for r in range(a.runs)]
        for name, _ in load_paths(sid):
            md, mx = stats(times[name])
            print(f"| {name} | {md:.1f} | {mx:.1f} | {sizes[name]:,} |")
        md, mx = stats(total)
        print(f"| all 7, one after another | {md:.1f} | {mx:.1f} | {sum(sizes.values()):,} |")
        md2, mx2 = stats(par)
        print(f"| all 7 at once, 6 connections | {md2:.1f} | {mx2:.1f} | |")
        print()
        if page:
            print(f"Load, page in headless Chromium, {a.runs} runs: navigationStart -> the "
                  f"chart with data-iterations={iters} (nodes answered) or the node rows in the "
                  "page; -> that frame painted; -> the frame with the tables and logs below "
                  "it painted:")
            print()
            print("| route | in page, median | painted, median | max | all painted, median "
                  "| max | budget (painted) |")
            print("|---|---|---|---|---|---|---|")
            for key, (v, reqs) in page.items():
                md0, _ = stats([x[0] for x in v])
                md, mx = stats([x[1] for x in v])
                mda, mxa = stats([x[2] for x in v])
                print(f"| {key} | {md0:.0f} | {md:.0f} | {mx:.0f} | {mda:.0f} | {mxa:.0f} "
                      f"| <= {LOAD_BUDGET_MS:.0f} ms "
                      f"{'ok' if md <= LOAD_BUDGET_MS else 'OVER'} (median) |")
            print()
            for key, (v, reqs) in page.items():
                api_reqs = [f"{n} ({s}-{e} ms)" for n, s, e in reqs if n.startswith("/api/")]
                print(f"{key}: requests {', '.join(api_reqs)}")
            print()
        else:
            print("Load, page: not measured (the built-in page is a placeholder; "
                  "--browser on forces it)")
            print()
        print(f"Live updates: manager CPU (% of one core) over {a.window:.0f} s windows, "
              f"{a.pages} pages; the swarm changes every {a.pace} s. Per page: "
              "(whole process with K - with 0) / K; web: the dashboard's own threads (MHD-*) "
              "with K pages / K:")
        print()
        print("| variant | 0 pages: all (main loop) | K pages: all (main loop, web) | per page | "
              "per page, web threads | budget | changes made 0/K | per page: change events, "
              "nodes events, requests |")
        print("|---|---|---|---|---|---|---|---|")
        per_page = {}
        for label, w0, wk, counts in live:
            per = (wk["all"] - w0["all"]) / a.pages
            web_pp = wk["web"] / a.pages
            per_page.setdefault(label, []).append((per, web_pp))
            extra = ", ".join("—" if counts[k] is None else f"{counts[k]:.0f}"
                              for k in ("change", "nodes", "requests"))
            print(f"| {label} | {w0['all']:.2f} ({w0['main']:.2f}) | {wk['all']:.2f} "
                  f"({wk['main']:.2f}, {wk['web']:.2f}) | {per:.3f} % | {web_pp:.3f} % | "
                  f"<= {LIVE_BUDGET_PCT} % "
                  f"{'ok' if max(per, web_pp) <= LIVE_BUDGET_PCT else 'OVER'}"
                  f" | {w0['changes']}/{wk['changes']} | {extra} |")
        print()
        for label, v in per_page.items():
            print(f"{label}: per page, median of {len(v)} pair(s): "
                  f"{statistics.median(x for x, _ in v):.3f} % (difference), "
                  f"{statistics.median(y for _, y in v):.3f} % (web threads)")
        print()
        print(f"stopping the swarm from the dashboard (POST /api/swarms/ID/stop): answered "
              f"{st} in {stop_ms:.0f} ms; the swarm is then {after_stop}")
        print(f"manager threads: {threads_before} before the load runs, {threads_after} after; "
              f"the last round: {fleet.reported} of {a.nodes} testers reported")
        if fleet.reported >= a.nodes - 1:
            print("note: every tester but the last had reported before the measurements ended: "
                  "the swarm stopped changing (raise --pace)")
        if problems:
            print()
            print("problems seen in the answers:")
            for p in problems:
                print(f"  - {p}")
        print()
        print(f"command: {command}")
        return 0
    finally:
        for s in list(streams):
            s.close()
        if browser:
            browser.quit()
        if fleet:
            fleet.close()
        if proc and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
        if broker:
            broker.stop()
        mlog.close()
        if a.keep:
            print(f"kept: {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
