#!/usr/bin/python3
"""Benchmark: manta_manager's user services (what the Manta SDK calls), with grpcio clients.

    bench/user_api.py --bin-dir $PWD/build/release [--runs 9]

1. SendSwarm + StartSwarm of a 4-task swarm -> the first `deploy_task` published on MQTT
   (seen by a raw MQTT subscriber on the broker); nodes are registered through the node
   service and made ready by one MQTT message each, so no task really runs.
2. SelectResults of 1,000 results of 1 KiB (stored through the node service's AddTaskResult).
3. StreamNodes with 200 registered nodes.
4. A 300 MiB InitializeGlobal: the manager's peak RSS (VmHWM) and its RSS after.
The manager runs with --no-token (the token check is one HMAC per call)."""
import argparse
import os
import pathlib
import socket
import statistics
import struct
import sys
import tempfile
import threading
import time

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests" / "integration"))
os.environ.setdefault("MANTA_SOURCE_DIR", str(HERE.parent))

import grpc  # noqa: E402

from manager_env import LocalSwarm  # noqa: E402
from pbgen import client, pb  # noqa: E402
from sdk_replay import Api, oid, scheduling, system_pb2, tasks_pb2, swarms_pb2, us_pb2, \
    results_pb2, task_id_of  # noqa: E402

info_pb2 = pb("common.informations_pb2")


class Mqtt:
    """A minimal MQTT 3.1.1 client (QoS 0): enough to watch and to publish."""

    def __init__(self, port):
        self.s = socket.create_connection(("127.0.0.1", port))
        self.arrivals = []
        cid = b"bench"
        var = b"\x00\x04MQTT\x04\x02\x00\x3c" + struct.pack(">H", len(cid)) + cid
        self._send(0x10, var)
        assert self._read()[0] >> 4 == 2  # CONNACK
        threading.Thread(target=self._loop, daemon=True).start()

    def _send(self, head, body):
        n, rem = len(body), b""
        while True:
            b = n % 128
            n //= 128
            rem += bytes([b | (0x80 if n else 0)])
            if not n:
                break
        self.s.sendall(bytes([head]) + rem + body)

    def _read(self):
        head = self.s.recv(1)
        if not head:
            return None
        mult, n = 1, 0
        while True:
            b = self.s.recv(1)[0]
            n += (b & 0x7f) * mult
            mult *= 128
            if not b & 0x80:
                break
        body = b""
        while len(body) < n:
            body += self.s.recv(n - len(body))
        return head[0], body

    def subscribe(self, topic):
        t = topic.encode()
        self._send(0x82, b"\x00\x01" + struct.pack(">H", len(t)) + t + b"\x00")

    def publish(self, topic, payload):
        t = topic.encode()
        self._send(0x30, struct.pack(">H", len(t)) + t + payload)

    def _loop(self):
        while True:
            try:
                p = self._read()
            except OSError:
                return
            if p is None:
                return
            if p[0] >> 4 == 3:
                tl = struct.unpack(">H", p[1][:2])[0]
                self.arrivals.append((p[1][2:2 + tl].decode(), time.perf_counter()))


def rss(pid, key="VmRSS"):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith(key + ":"):
            return int(line.split()[1]) / 1024
    return 0.0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin-dir", required=True)
    ap.add_argument("--runs", type=int, default=9)
    args = ap.parse_args()
    bindir = pathlib.Path(args.bin_dir).resolve()
    os.environ["MANTA_MANAGER_BIN"] = str(bindir / "manta_manager")
    work = pathlib.Path(tempfile.mkdtemp(prefix="manta-bench-user-"))
    sw = LocalSwarm(work, str(bindir / "manta_node"), nodes=0)
    try:
        sw.start_serve("--no-token")
        api = Api(sw.port)
        ch = grpc.insecure_channel(f"127.0.0.1:{sw.port}")
        node = client(ch, "node.node_service.Node")
        mq = Mqtt(sw.broker.port)
        mq.subscribe("manta/nodes/+/deploy_task")
        cid = api.unary("ClusterManagement", "ListClusterIds", system_pb2.Empty()).ids[0]

        # 200 nodes, registered and heard on MQTT (ready for commands)
        for i in range(200):
            nid = system_pb2.PairId(head=0xbe00, tail=i + 1)
            node.RegisterNode(info_pb2.NodeOverview(
                node_id=nid, platform_info=info_pb2.PlatformInfo(hostname=f"h{i}",
                                                                system="Linux")), timeout=10)
            mq.publish("manager/set_system_summary", info_pb2.SetSystemSummaryRequest(
                node_id=nid, metrics_snapshot=info_pb2.MetricsSnapshot()).SerializeToString())
        time.sleep(1)
        t = []
        for _ in range(args.runs):
            t0 = time.perf_counter()
            got = list(api.s["ClusterManagement"].StreamNodes(system_pb2.StrId(id=cid)))
            t.append((time.perf_counter() - t0) * 1000)
            assert len(got) == 200
        print(f"StreamNodes, 200 nodes: median {statistics.median(t):.1f} ms "
              f"(min {min(t):.1f}, max {max(t):.1f}, {args.runs} runs)")

        # a 4-task chain, "any" with maximum 1 so one deploy_task per start
        mids = [api.unary("ModuleManagement", "SendModule", tasks_pb2.Module(
            python_program=b"PK" + bytes(1000), image="img", name=f"t{i}")).id for i in range(4)]
        ids = [task_id_of(f"t{i}") for i in range(4)]
        t = []
        for r in range(args.runs):
            g = swarms_pb2.Graph()
            for i in range(4):
                k = g.tasks.add(task_id=ids[i], alias=f"t{i}", module_id=oid(mids[i]),
                                scheduling=scheduling("any", False, 1), order=i)
                if i:
                    k.previous_tasks.append(ids[i - 1])
                if i < 3:
                    k.next_tasks.append(ids[i + 1])
                    k.conditions.append("Condition.FINISHED")
            before = len(mq.arrivals)
            t0 = time.perf_counter()
            s = api.s["SwarmManagement"].SendSwarm(us_pb2.SendSwarmRequest(
                graph=g, name="bench", cluster_id=cid))
            api.s["SwarmManagement"].StartSwarm(system_pb2.StrId(id=s.swarm_id))
            deadline = time.monotonic() + 10
            while len(mq.arrivals) == before and time.monotonic() < deadline:
                time.sleep(0.0005)
            assert len(mq.arrivals) > before, "no deploy_task"
            t.append((mq.arrivals[before][1] - t0) * 1000)
            api.s["SwarmManagement"].StopSwarm(us_pb2.StopSwarmRequest(swarm_id=s.swarm_id))
        print(f"SendSwarm + StartSwarm (4 tasks) -> first deploy_task published: median "
              f"{statistics.median(t):.1f} ms (min {min(t):.1f}, max {max(t):.1f})")

        # 1,000 results of 1 KiB
        sid = s.swarm_id
        for i in range(1000):
            node.AddTaskResult(iter([results_pb2.Result(
                swarm_id=oid(sid), task_id=ids[0], node_id=system_pb2.PairId(head=0xbe00,
                                                                             tail=i % 200 + 1),
                iteration=i // 200, tag="metrics", data=os.urandom(1024))]), timeout=10)
        t = []
        for _ in range(args.runs):
            t0 = time.perf_counter()
            got = list(api.s["SwarmManagement"].SelectResults(
                us_pb2.ResultsRequest(swarm_id=sid, tag="metrics")))
            t.append((time.perf_counter() - t0) * 1000)
            assert len(got) == 1000
        print(f"SelectResults, 1,000 results of 1 KiB: median {statistics.median(t):.1f} ms "
              f"(min {min(t):.1f}, max {max(t):.1f})")

        # 300 MiB InitializeGlobal
        pid = sw.proc.pid
        idle = rss(pid)
        big = os.urandom(1 << 20) * 300
        t0 = time.perf_counter()
        api.global_(sid, "big", big)
        secs = time.perf_counter() - t0
        del big
        time.sleep(2)
        print(f"InitializeGlobal 300 MiB: {secs:.2f} s; manta_manager RSS {idle:.0f} MiB idle "
              f"before, peak (VmHWM) {rss(pid, 'VmHWM'):.0f} MiB, {rss(pid):.0f} MiB after "
              f"(budget: peak <= 2 x 300 + 64 = 664 MiB)")
        ch.close()
        api.close()
    finally:
        sw.close()


if __name__ == "__main__":
    main()
