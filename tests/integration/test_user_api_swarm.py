"""Swarms through the user services against real nodes (process runtime, the python/ task
runtime): the SDK's UserAPI flow and notebook flow of user-api.md section 13, replayed with
grpcio clients (sdk_replay.py); the same swarm shown by the manta_manager CLI; bad graphs
refused without a trace; StopSwarm; RemoveSwarm."""
import re
import time

import grpc
import pytest

from manager_env import LocalSwarm, module_dir
from sdk_replay import Api, oid, scheduling, select_results, collect_logs, system_pb2, us_pb2, \
    swarms_pb2, tasks_pb2, task_id_of
from wire_env import wait_for

PASSWORD = "correct horse battery"

MODULES = {
    "ping.py": (
        "from manta.light.task import Task\n"
        "class Ping(Task):\n"
        "    def run(self):\n"
        "        print('ping at', self.world.globals['round'])\n"
        "        self.world.results.add('ping', 1)\n"
        "def main():\n    Ping().run()\n"),
    "boss.py": (
        "from manta.light.task import Task\n"
        "class Boss(Task):\n"
        "    def run(self):\n"
        "        pings = self.world.results.select('ping')\n"
        "        self.world.results.add('seen', sorted(pings))\n"
        "        r = self.world.globals['round'] + 1\n"
        "        self.world.globals['round'] = r\n"
        "        print('round', r)\n"
        "        if r >= 3:\n"
        "            self.world.stop_swarm()\n"
        "            return\n"
        "        self.world.schedule_next_iter(node_ids=sorted(pings),\n"
        "                                      task_to_schedule_alias='ping')\n"
        "def main():\n    Boss().run()\n"),
}


def swarm_parts(d):
    modules = {"ping": (d / "ping.py", "manta-task:none", []),
               "boss": (d / "boss.py", "manta-task:none", [])}
    tasks = [("ping", "ping", scheduling("all"), [], None),
             ("boss", "boss", scheduling("any", True, 1), ["ping"], None)]
    return modules, tasks


@pytest.fixture
def env(tmp_path, node_bin):
    sw = LocalSwarm(tmp_path, node_bin, nodes=2)
    pw = tmp_path / "pw"
    pw.write_text(PASSWORD + "\n")
    sw.manager("user", "create", "alice", "--password-file", str(pw), "--store", str(sw.store))
    sw.start_serve()
    sw.start_nodes()
    d = module_dir(tmp_path, MODULES)
    yield sw, d
    sw.close()


def token(sw):
    return sw.manager("token", "create", "--user", "alice", "--store",
                      str(sw.store)).stdout.strip()


def wait_nodes(api, cid, n):
    wait_for(lambda: len(api.unary("ClusterManagement", "ListAvailableNodeIds",
                                   system_pb2.StrId(id=cid)).ids) == n,
             timeout=60, what=f"{n} nodes available")


def test_userapi_flow(env):
    sw, d = env
    api = Api(sw.port, token(sw))
    try:
        for s in ("UserManagement", "ClusterManagement", "SwarmManagement", "ModuleManagement"):
            api.unary(s, "IsAvailable", system_pb2.Empty())
        cid = api.unary("ClusterManagement", "ListClusterIds", system_pb2.Empty()).ids[0]
        clusters = api.stream("ClusterManagement", "StreamClusters", system_pb2.Empty())
        assert [c.status for c in clusters] == [1]
        api.unary("ClusterManagement", "GetCluster", system_pb2.StrId(id=cid))
        wait_nodes(api, cid, 2)
        nids = api.unary("ClusterManagement", "ListNodeIds", system_pb2.StrId(id=cid)).ids
        assert len(api.stream("ClusterManagement", "StreamNodes", system_pb2.StrId(id=cid))) == 2
        api.unary("ClusterManagement", "GetNodeResources",
                  us_pb2.NodeRequest(cluster_id=cid, node_id=nids[0]))
        modules, tasks = swarm_parts(d)
        swarm = api.deploy(cid, modules, tasks, globals_=[("round", b"\x00")])
        assert re.fullmatch(r"[0-9a-f]{32}", swarm.swarm_id)
        assert swarm.status in (1, 3) and swarm.cluster_id == cid and swarm.name == "Swarm"
        assert swarm.HasField("iteration") and swarm.owner_id
        sid = swarm.swarm_id

        def stopped():
            return api.unary("SwarmManagement", "GetSwarm", system_pb2.StrId(id=sid)).status == 3
        wait_for(stopped, timeout=180, what="the swarm to stop")
        got = api.unary("SwarmManagement", "GetSwarm", system_pb2.StrId(id=sid))
        assert got.iteration == 2 and got.HasField("last_stop")
        seen = api.stream("SwarmManagement", "SelectResults",
                          us_pb2.ResultsRequest(swarm_id=sid, tag="seen"))
        res = select_results(seen)
        assert list(res) == [0, 1, 2] and all(len(v) == 1 for v in res.values())
        pings = select_results(api.stream("SwarmManagement", "SelectResults",
                                          us_pb2.ResultsRequest(swarm_id=sid, tag="ping")))
        assert list(pings) == [0, 1, 2] and all(sorted(v) == sorted(nids)
                                               for v in pings.values())
        assert all(r[n]["ping"] == b"\x01" for r in pings.values() for n in r)
        logs = collect_logs(api.stream("SwarmManagement", "CollectLogs",
                                       us_pb2.LogQuery(swarm_id=sid)))
        # ping ran 3 times on 2 nodes, boss 3 times (the last one's output may be cut by the
        # stop it asked for)
        assert len(logs) in (8, 9), logs
        assert sum(e["alias"] == "ping" for e in logs) == 6
        assert {e["alias"] for e in logs} == {"ping", "boss"}
        assert sum("round 2" in e["message"] for e in logs) == 1
        assert all(re.fullmatch(r"[0-9a-f]{32}", e["module_id"]) for e in logs)
        rtags = api.unary("SwarmManagement", "ListResultTags", system_pb2.StrId(id=sid))
        assert sorted(rtags.gb_usage_per_tag) == ["ping", "seen"]
        gtags = api.unary("SwarmManagement", "ListGlobalTags", system_pb2.StrId(id=sid))
        assert list(gtags.gb_usage_per_tag) == ["round"]
        g = api.stream("SwarmManagement", "SelectGlobal",
                       us_pb2.GlobalRequest(swarm_id=sid, tag="round"))
        assert b"".join(x.data for x in g) == b"\x03"
        tasks_ = api.stream("SwarmManagement", "StreamSwarmTasks", system_pb2.StrId(id=sid))
        assert [t.alias for t in tasks_] == ["ping", "boss"]
        assert tasks_[1].method == "any" and tasks_[1].fixed
        assert tasks_[0].next_tasks == [tasks_[1].task_id]
        r = api.unary("SwarmManagement", "StopSwarm", us_pb2.StopSwarmRequest(swarm_id=sid))
        assert "already ended" in r.message
        # The CLI shows the SDK's swarm like any other.
        rows = sw.admin_json("swarms")["swarms"]
        assert any(int(s["id"], 16) == int(sid, 16) and s["status"] == "STOPPED" for s in rows)
        st = sw.admin("status", sid).stdout
        assert "STOPPED" in st
        assert len(sw.admin_json("results", sid, "--tag", "seen")["results"]) == 3
        assert "round 2" in sw.admin("logs", sid).stdout
        # No retryable status anywhere in the flow.
        assert api.calls.count("SwarmManagement/StartSwarm") == 1
        assert api.calls.count("ModuleManagement/SendModule") == 2
    finally:
        api.close()


def test_notebook_flow(env):
    sw, d = env
    signin = Api(sw.port)
    user = signin.unary("UserManagement", "SignIn",
                        us_pb2.SignInRequest(username="alice", password=PASSWORD))
    signin.close()
    api = Api(sw.port, user.token)
    try:
        for s in ("UserManagement", "ClusterManagement", "SwarmManagement", "ModuleManagement"):
            api.unary(s, "IsAvailable", system_pb2.Empty())
        cl = [c for c in api.stream("ClusterManagement", "StreamClusters", system_pb2.Empty())
              if c.status == 1][0]
        wait_nodes(api, cl.cluster_id, 2)
        modules, tasks = swarm_parts(d)
        swarm = api.deploy(cl.cluster_id, modules, tasks, globals_=[("round", b"\x00")])
        assert swarm.status == 1
        sid = swarm.swarm_id
        # StreamResults replays, follows live and ends when the swarm leaves ACTIVE.
        t0 = time.monotonic()
        rows = list(api.s["SwarmManagement"].StreamResults(
            us_pb2.ResultsRequest(swarm_id=sid, tag="seen"), metadata=api.md, timeout=180))
        assert [r.iteration for r in rows] == [0, 1, 2], rows
        assert api.unary("SwarmManagement", "GetSwarm",
                         system_pb2.StrId(id=sid)).status == 3
        assert time.monotonic() - t0 < 180
        logs = list(api.s["SwarmManagement"].StreamLogs(system_pb2.StrId(id=sid),
                                                        metadata=api.md, timeout=60))
        assert len(logs) in (8, 9) and all(l.severity in ("INFO", "ERROR") for l in logs)
        assert len({(l.node_id, l.task_id, l.iteration, l.timestamp.seconds,
                     l.timestamp.nanos) for l in logs}) == len(logs)
        assert all(l.alias in ("ping", "boss") and l.content.decode() for l in logs)
        # A second StreamResults on the ended swarm replays and ends at once.
        again = list(api.s["SwarmManagement"].StreamResults(
            us_pb2.ResultsRequest(swarm_id=sid, tag="seen"), metadata=api.md, timeout=30))
        assert len(again) == 3
        api.unary("UserManagement", "Logout", system_pb2.Empty())
    finally:
        api.close()


def test_stop_and_remove(env):
    sw, d = env
    api = Api(sw.port, token(sw))
    try:
        cid = api.unary("ClusterManagement", "ListClusterIds", system_pb2.Empty()).ids[0]
        wait_nodes(api, cid, 2)
        slow = d / "slow.py"
        slow.write_text("import time\ndef main():\n    print('sleeping')\n    time.sleep(120)\n")
        modules = {"slow": (slow, "manta-task:none", [])}
        swarm = api.deploy(cid, modules, [("slow", "slow", scheduling("all"), [], None)])
        sid = swarm.swarm_id
        with pytest.raises(grpc.RpcError) as e:
            api.unary("SwarmManagement", "RemoveSwarm", system_pb2.StrId(id=sid))
        assert e.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        r = api.unary("SwarmManagement", "StopSwarm", us_pb2.StopSwarmRequest(swarm_id=sid))
        assert r.message == f"Swarm {sid} has stopped."
        assert api.unary("SwarmManagement", "GetSwarm", system_pb2.StrId(id=sid)).status == 3
        with pytest.raises(grpc.RpcError) as e:
            api.unary("SwarmManagement", "StartSwarm", system_pb2.StrId(id=sid))
        assert e.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert "runs once" in e.value.details()
        # The CLI stops an SDK swarm like any other.
        s3 = api.deploy(cid, modules, [("slow", "slow", scheduling("all"), [], None)])
        assert s3.status == 1
        sw.admin("stop", s3.swarm_id)
        assert api.unary("SwarmManagement", "GetSwarm",
                         system_pb2.StrId(id=s3.swarm_id)).status == 3
        # StopSwarm of a swarm sent but never started, then remove it.
        s2, _ = api.send_swarm(cid, modules, [("slow", "slow", scheduling("all"), [], None)])
        assert s2.status == 0
        api.unary("SwarmManagement", "StopSwarm",
                  us_pb2.StopSwarmRequest(swarm_id=s2.swarm_id))
        r = api.unary("SwarmManagement", "RemoveSwarm", system_pb2.StrId(id=s2.swarm_id))
        assert "removed" in r.message
        ids = api.unary("SwarmManagement", "ListSwarmIds", system_pb2.Empty()).ids
        assert sid in ids and s3.swarm_id in ids and s2.swarm_id not in ids
        assert len(api.stream("SwarmManagement", "StreamSwarms", system_pb2.Empty())) == 2
        # Modules: list, get (the zip back, byte-exact), remove.
        mids = api.unary("ModuleManagement", "ListModuleIds", system_pb2.Empty()).ids
        assert len(mids) == 3
        m = api.unary("ModuleManagement", "GetModule", system_pb2.StrId(id=mids[0]))
        assert m.module.name == "slow" and m.module.python_program[:2] == b"PK"
        api.unary("ModuleManagement", "RemoveModule", system_pb2.StrId(id=mids[0]))
        assert len(api.stream("ModuleManagement", "StreamModules", system_pb2.Empty())) == 2
    finally:
        api.close()


def test_bad_graphs_change_nothing(tmp_path, node_bin):
    sw = LocalSwarm(tmp_path, node_bin, nodes=0)
    try:
        sw.start_serve("--no-token")
        api = Api(sw.port)
        cid = api.unary("ClusterManagement", "ListClusterIds", system_pb2.Empty()).ids[0]
        mid = api.unary("ModuleManagement", "SendModule",
                        tasks_pb2.Module(python_program=b"PK..", image="img", name="ping")).id
        a, b = task_id_of("a"), task_id_of("b")

        def task(tid, alias, prev=(), nxt=(), mod=mid, net=None, conds=None, method="all"):
            t = tasks_pb2.Task(task_id=tid, alias=alias, module_id=oid(mod),
                               scheduling=scheduling(method))
            t.previous_tasks.extend(prev)
            t.next_tasks.extend(nxt)
            t.conditions.extend(conds if conds is not None else
                                ["Condition.FINISHED"] * len(nxt))
            if net:
                t.network = net
            return t

        cases = [
            ([], grpc.StatusCode.INVALID_ARGUMENT, "1 to 256 tasks"),
            ([task(a, "a", nxt=[b]), task(b, "b", nxt=[a])], grpc.StatusCode.INVALID_ARGUMENT,
             "cycle"),
            ([task(a, "a", mod="0" * 31 + "7")], grpc.StatusCode.NOT_FOUND, "SendModule"),
            ([task(a, "a", nxt=[task_id_of("zz")])], grpc.StatusCode.INVALID_ARGUMENT,
             "not in the graph"),
            ([task(a, "a"), task(b, "a")], grpc.StatusCode.INVALID_ARGUMENT, "alias"),
            ([task(a, "\x01bad")], grpc.StatusCode.INVALID_ARGUMENT, "alias"),
            ([task(a, "a" * 300)], grpc.StatusCode.INVALID_ARGUMENT, "alias"),
            ([task(a, "a", nxt=[b], conds=["Condition.MAYBE"]), task(b, "b", prev=[a])],
             grpc.StatusCode.INVALID_ARGUMENT, "Condition"),
            ([task(a, "a", method="best")], grpc.StatusCode.INVALID_ARGUMENT, "method"),
        ]
        for tasks, code, words in cases:
            g = swarms_pb2.Graph(tasks=tasks)
            with pytest.raises(grpc.RpcError) as e:
                api.unary("SwarmManagement", "SendSwarm",
                          us_pb2.SendSwarmRequest(graph=g, name="x", cluster_id=cid))
            assert e.value.code() == code and words in e.value.details(), (words, e.value)
        with pytest.raises(grpc.RpcError) as e:
            api.unary("SwarmManagement", "SendSwarm",
                      us_pb2.SendSwarmRequest(graph=swarms_pb2.Graph(tasks=[task(a, "a")]),
                                              name="x", cluster_id="f" * 32))
        assert e.value.code() == grpc.StatusCode.NOT_FOUND
        # non-UTF-8 names never reach the manager from protobuf (strings are checked by the
        # client library); an oversized swarm name is refused
        with pytest.raises(grpc.RpcError) as e:
            api.unary("SwarmManagement", "SendSwarm",
                      us_pb2.SendSwarmRequest(graph=swarms_pb2.Graph(tasks=[task(a, "a")]),
                                              name="n" * 1000, cluster_id=cid))
        assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert api.unary("SwarmManagement", "ListSwarmIds", system_pb2.Empty()).ids == []
        # Non-UTF-8 text, sent as raw bytes (a protobuf library would not encode it): refused.
        raw = api.ch.unary_unary("/core.user_services.ModuleManagement/SendModule")
        bad_name = (b"\x0a\x02PK" + b"\x12\x03img" + b"\x1a\x03a\xffb")
        with pytest.raises(grpc.RpcError) as e:
            raw(bad_name, timeout=10)
        assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "UTF-8" in e.value.details()
        with pytest.raises(grpc.RpcError) as e:
            raw(b"\x0a\x02PK\x12\x03img\x1a\xac\x02" + b"n" * 300, timeout=10)
        assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert api.unary("ModuleManagement", "ListModuleIds", system_pb2.Empty()).ids == [mid]
        # A task naming a network the swarm lacks: refused at StartSwarm, nothing started.
        s = api.unary("SwarmManagement", "SendSwarm", us_pb2.SendSwarmRequest(
            graph=swarms_pb2.Graph(tasks=[task(a, "a", net="p2p")]), name="x", cluster_id=cid))
        api.unary("SwarmManagement", "InitializeNetworks", system_pb2.Networks(
            swarm_id=oid(s.swarm_id)))
        with pytest.raises(grpc.RpcError) as e:
            api.unary("SwarmManagement", "StartSwarm", system_pb2.StrId(id=s.swarm_id))
        assert e.value.code() == grpc.StatusCode.FAILED_PRECONDITION and "p2p" in e.value.details()
        assert api.unary("SwarmManagement", "GetSwarm",
                         system_pb2.StrId(id=s.swarm_id)).status == 0
        with pytest.raises(grpc.RpcError) as e:
            api.unary("SwarmManagement", "InitializeNetworks", system_pb2.Networks(
                swarm_id=oid(s.swarm_id), networks=[system_pb2.Network(name="p2p",
                                                                       driver="tunnel")]))
        assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        api.unary("SwarmManagement", "InitializeNetworks", system_pb2.Networks(
            swarm_id=oid(s.swarm_id), networks=[system_pb2.Network(name="p2p", driver="host")]))
        # Now it would start, but there is no node: FAILED_PRECONDITION, and it has ended.
        with pytest.raises(grpc.RpcError) as e:
            api.unary("SwarmManagement", "StartSwarm", system_pb2.StrId(id=s.swarm_id))
        assert e.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        # Unknown ids everywhere: NOT_FOUND, one call.
        for method, req in (("GetSwarm", system_pb2.StrId(id="ab" * 16)),
                            ("StartSwarm", system_pb2.StrId(id="not hex")),
                            ("SelectResults", us_pb2.ResultsRequest(swarm_id="1", tag="t")),
                            ("StreamLogs", system_pb2.StrId(id="")),
                            ("StopSwarm", us_pb2.StopSwarmRequest(swarm_id="2"))):
            with pytest.raises(grpc.RpcError) as e:
                r = getattr(api.s["SwarmManagement"], method)(req, timeout=10)
                list(r) if hasattr(r, "__iter__") and not hasattr(r, "message") else None
            assert e.value.code() == grpc.StatusCode.NOT_FOUND, method
        api.close()
    finally:
        sw.close()


def test_300mib_global_through_a_node(env):
    """A 300 MiB global sent with InitializeGlobal (one message, as the SDK sends it) is read
    whole by a task on a real node; the task reports its hash as a result."""
    import hashlib
    sw, d = env
    api = Api(sw.port, token(sw))
    try:
        cid = api.unary("ClusterManagement", "ListClusterIds", system_pb2.Empty()).ids[0]
        wait_nodes(api, cid, 2)
        reader = d / "reader.py"
        reader.write_text(
            "import hashlib\n"
            "from manta.light.task import Task\n"
            "class Reader(Task):\n"
            "    def run(self):\n"
            "        v = self.world.globals['big']\n"
            "        self.world.results.add('digest', [len(v), hashlib.sha256(v).hexdigest()])\n"
            "def main():\n    Reader().run()\n")
        payload = hashlib.sha256(b"seed").digest() * (300 * (1 << 20) // 32)
        want = hashlib.sha256(payload).hexdigest()
        # msgpack bin 32: what the SDK's set_global makes of a bytes value
        packed = b"\xc6" + len(payload).to_bytes(4, "big") + payload
        del payload
        swarm, _ = api.send_swarm(cid, {"reader": (reader, "manta-task:none", [])},
                                  [("reader", "reader", scheduling("any", False, 1), [], None)],
                                  globals_=[("big", packed)])
        del packed
        sid = swarm.swarm_id
        api.unary("SwarmManagement", "StartSwarm", system_pb2.StrId(id=sid))
        wait_for(lambda: api.unary("SwarmManagement", "GetSwarm",
                                   system_pb2.StrId(id=sid)).status == 3,
                 timeout=300, what="the reader to finish")
        rows = api.stream("SwarmManagement", "SelectResults",
                          us_pb2.ResultsRequest(swarm_id=sid, tag="digest"))
        assert len(rows) == 1, sw.admin("status", sid).stdout
        # msgpack of [314572800, "<64 hex>"]: fixarray(2), uint32, str8
        data = rows[0].data
        assert data[:6] == b"\x92\xce" + (300 << 20).to_bytes(4, "big")
        assert data[-64:].decode() == want
    finally:
        api.close()
