"""What the Manta SDK (0.5b0) does on the wire, replayed with grpcio clients built from proto/
(the SDK itself cannot be installed here): the module zip, id conversions, the retry rules and
the call sequences of user-api.md sections 1, 6 and 13.

    api = Api(port, token)             # the 4 service clients, `authorization: <token>`
    sid = api.deploy(cluster_id, modules, tasks, globals_, networks)
"""
import hashlib
import io
import pathlib
import time
import zipfile

import grpc

from pbgen import client, pb

system_pb2 = pb("common.system_pb2")
tasks_pb2 = pb("common.tasks_pb2")
swarms_pb2 = pb("common.swarms_pb2")
results_pb2 = pb("common.results_pb2")
us_pb2 = pb("core.user_services_pb2")

SERVICES = ["UserManagement", "ClusterManagement", "SwarmManagement", "ModuleManagement"]
RETRYABLE = {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.RESOURCE_EXHAUSTED,
             grpc.StatusCode.ABORTED, grpc.StatusCode.DEADLINE_EXCEEDED}
OPTS = [("grpc.max_receive_message_length", -1), ("grpc.max_send_message_length", -1),
        ("grpc.enable_retries", 0)]


def zip_module(path: pathlib.Path) -> bytes:
    """The SDK's module archive: the file (or folder) under its own name plus __main__.py,
    deflate, every entry dated 2023-01-01 00:00:00."""
    buf = io.BytesIO()
    stem = path.stem if path.is_file() else path.name
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        def add(name, data):
            info = zipfile.ZipInfo(name, date_time=(2023, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            z.writestr(info, data)
        add("__main__.py", f"# -*- coding: utf-8 -*-\nimport {stem}\n{stem}.main()\n")
        if path.is_file():
            add(path.name, path.read_bytes())
        else:
            for f in sorted(path.rglob("*")):
                if f.is_file() and "pycache" not in str(f):
                    add(f"{path.name}/{f.relative_to(path)}", f.read_bytes())
    return buf.getvalue()


def oid(text: str):
    """The SDK's ID(text).oid as a PairId: hex below 2^128 is the number itself."""
    v = int(text, 16)
    assert v < 1 << 128
    return system_pb2.PairId(head=v >> 64, tail=v & ((1 << 64) - 1))


def task_id_of(name: str):
    """A stable 128-bit task id for a module name (the SDK uses BLAKE3; the manager takes the
    ids as given, so any derivation does for the tests)."""
    v = int.from_bytes(hashlib.sha256(name.encode()).digest()[:16], "big")
    return system_pb2.PairId(head=v >> 64, tail=v & ((1 << 64) - 1))


def scheduling(method="all", fixed=False, maximum=-1):
    return tasks_pb2.Scheduling(method=method, fixed=fixed,
                                maximum=maximum.to_bytes(4, "little", signed=True),
                                max_type=tasks_pb2.MaximumType.Value("INT"))


class Api:
    """The SDK's service clients; every call retried as the SDK does (user-api.md 1)."""

    def __init__(self, port, token=None, channel=None):
        self.ch = channel or grpc.insecure_channel(f"127.0.0.1:{port}", options=OPTS)
        self.md = [("authorization", token)] if token else []
        self.s = {n: client(self.ch, f"core.user_services.{n}") for n in SERVICES}
        self.calls = []

    def close(self):
        self.ch.close()

    def unary(self, svc, method, req, attempts=3):
        for i in range(attempts):
            self.calls.append(f"{svc}/{method}")
            try:
                return getattr(self.s[svc], method)(req, metadata=self.md, timeout=60)
            except grpc.RpcError as e:
                if e.code() not in RETRYABLE or i == attempts - 1:
                    raise
                time.sleep(0.2 * 2 ** i)

    def stream(self, svc, method, req, follow_timeout=60):
        """A server stream as the SDK reads it: repeated while it ends empty (4 calls)."""
        for i in range(4):
            self.calls.append(f"{svc}/{method}")
            out = list(getattr(self.s[svc], method)(req, metadata=self.md,
                                                    timeout=follow_timeout))
            if out or i == 3:
                return out
            time.sleep(0.2 * 2 ** min(i, 2))

    def global_(self, sid, tag, data):
        """InitializeGlobal: one message per global; a retry re-sends the consumed (empty)
        generator."""
        gen = iter([results_pb2.Global(swarm_id=oid(sid), tag=tag, data=data)])
        for i in range(3):
            self.calls.append("SwarmManagement/InitializeGlobal")
            try:
                return self.s["SwarmManagement"].InitializeGlobal(gen, metadata=self.md,
                                                                  timeout=300)
            except grpc.RpcError as e:
                if e.code() not in RETRYABLE or i == 2:
                    raise

    def send_swarm(self, cid, modules, tasks, globals_=(), networks=(), name="Swarm"):
        """send_swarm: SendModule per graph task, SendSwarm, InitializeGlobal per global,
        InitializeNetworks. modules: {name: (path, image, datasets)}; tasks: list of
        (alias, module name, scheduling, [previous aliases], network or None)."""
        mids = {}
        for alias, mod, *_ in tasks:
            path, image, datasets = modules[mod]
            r = self.unary("ModuleManagement", "SendModule",
                           tasks_pb2.Module(python_program=zip_module(path), image=image,
                                            name=mod, datasets=datasets))
            mids[alias] = r.id
        ids = {alias: task_id_of(mod) for alias, mod, *_ in tasks}
        nexts = {alias: [] for alias, *_ in tasks}
        for alias, _, _, prev, _ in tasks:
            for p in prev:
                nexts[p].append(alias)
        graph = swarms_pb2.Graph()
        for alias, mod, sched, prev, net in tasks:
            t = graph.tasks.add(task_id=ids[alias], scheduling=sched, module_id=oid(mids[alias]),
                                alias=alias)
            t.previous_tasks.extend(ids[p] for p in prev)
            t.next_tasks.extend(ids[n] for n in nexts[alias])
            t.conditions.extend("Condition.FINISHED" for _ in nexts[alias])
            if net:
                t.network = net
        swarm = self.unary("SwarmManagement", "SendSwarm",
                           us_pb2.SendSwarmRequest(graph=graph, name=name, cluster_id=cid))
        for tag, data in globals_:
            self.global_(swarm.swarm_id, tag, data)
        nets = system_pb2.Networks(swarm_id=oid(swarm.swarm_id))
        for n, d in networks:
            nets.networks.add(name=n, driver=d)
        self.unary("SwarmManagement", "InitializeNetworks", nets)
        return swarm, mids

    def deploy(self, cid, modules, tasks, globals_=(), networks=(), name="Swarm"):
        swarm, _ = self.send_swarm(cid, modules, tasks, globals_, networks, name)
        self.unary("SwarmManagement", "StartSwarm", system_pb2.StrId(id=swarm.swarm_id))
        return self.unary("SwarmManagement", "GetSwarm", system_pb2.StrId(id=swarm.swarm_id))


def select_results(rows):
    """The SDK's Results of select_results: iteration -> node -> tag -> data, keeping only k
    contiguous iterations from 0 (k = number of distinct iterations)."""
    by = {}
    for r in rows:
        by.setdefault(r.iteration, {}).setdefault(r.node_id, {})[r.tag] = r.data
    k = len(by)
    return {i: by.get(i, {}) for i in range(k)}


def collect_logs(rows):
    """The SDK's collect_logs grouping: key (swarm, node, task, iteration, circular, timestamp),
    content concatenated, strict UTF-8."""
    out = {}
    for r in rows:
        key = (r.swarm_id, r.node_id, r.task_id, r.iteration, r.circular,
               r.timestamp.seconds, r.timestamp.nanos)
        e = out.setdefault(key, {"alias": r.alias, "module_id": r.module_id,
                                 "severity": r.severity, "content": b""})
        e["content"] += r.content
    for e in out.values():
        e["message"] = e["content"].decode("utf-8")  # strict, as the SDK
    return list(out.values())
