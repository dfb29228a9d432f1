"""The user services under the SDK's retry rules and with what nodes really send (user-api.md
sections 1, 7, 8 and 14): empty streams asked 4 times change nothing; a retried (empty)
InitializeGlobal is refused; results with gaps come out contiguous; logs with ill-formed UTF-8
and identical timestamps come out as text with distinct timestamps; id conversions; TLS for
users without client certificates; a 300 MiB global in through InitializeGlobal and back
through the node service and SelectGlobal. Results and logs are injected through the node
service of a manager started with --no-token (a node's calls, without running tasks)."""
import hashlib
import struct
import time
import zlib

import grpc
import pytest

from manager_env import LocalSwarm
from pbgen import client, pb
from sdk_replay import Api, oid, scheduling, collect_logs, select_results, system_pb2, \
    tasks_pb2, swarms_pb2, us_pb2, results_pb2, task_id_of
from wire_env import free_port

ts_pb2 = pb("google.protobuf.timestamp_pb2")
OPTS = [("grpc.max_receive_message_length", -1), ("grpc.max_send_message_length", -1)]


def pair_int(p):
    return (p.head << 64) | p.tail


@pytest.fixture
def mgr(tmp_path, node_bin):
    sw = LocalSwarm(tmp_path, node_bin, nodes=0)
    sw.start_serve("--no-token")
    yield sw
    sw.close()


def pending_swarm(api, cid):
    mid = api.unary("ModuleManagement", "SendModule",
                    tasks_pb2.Module(python_program=b"PK", image="img", name="t")).id
    t = tasks_pb2.Task(task_id=task_id_of("t"), alias="t", module_id=oid(mid),
                       scheduling=scheduling())
    s = api.unary("SwarmManagement", "SendSwarm", us_pb2.SendSwarmRequest(
        graph=swarms_pb2.Graph(tasks=[t]), name="s", cluster_id=cid))
    return s.swarm_id, mid


def node_client(port):
    ch = grpc.insecure_channel(f"127.0.0.1:{port}", options=OPTS)
    return ch, client(ch, "node.node_service.Node")


def test_empty_streams_and_retried_global(mgr):
    api = Api(mgr.port)
    cid = api.unary("ClusterManagement", "ListClusterIds", system_pb2.Empty()).ids[0]
    sid, _ = pending_swarm(api, cid)
    # A stream answered empty: the SDK asks 4 times; each answer is OK and empty, quickly.
    t0 = time.monotonic()
    assert api.stream("SwarmManagement", "SelectResults",
                      us_pb2.ResultsRequest(swarm_id=sid, tag="metrics")) == []
    assert api.calls.count("SwarmManagement/SelectResults") == 4
    assert api.stream("SwarmManagement", "CollectLogs", us_pb2.LogQuery(swarm_id=sid)) == []
    assert api.stream("ClusterManagement", "StreamNodes", system_pb2.StrId(id=cid)) == []
    assert time.monotonic() - t0 < 20
    # The retry of a failed InitializeGlobal arrives with no message: refused, not retried,
    # nothing stored.
    with pytest.raises(grpc.RpcError) as e:
        api.s["SwarmManagement"].InitializeGlobal(iter([]), timeout=10)
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "no message" in e.value.details()
    tags = api.unary("SwarmManagement", "ListGlobalTags", system_pb2.StrId(id=sid))
    assert dict(tags.gb_usage_per_tag) == {}
    # Two messages are concatenated; an unknown swarm is NOT_FOUND (not retryable).
    g = [results_pb2.Global(swarm_id=oid(sid), tag="h", data=b"ab"),
         results_pb2.Global(swarm_id=oid(sid), tag="h", data=b"cd")]
    api.s["SwarmManagement"].InitializeGlobal(iter(g), timeout=10)
    got = list(api.s["SwarmManagement"].SelectGlobal(us_pb2.GlobalRequest(swarm_id=sid, tag="h"),
                                                     timeout=10))
    assert b"".join(x.data for x in got) == b"abcd"
    with pytest.raises(grpc.RpcError) as e:
        api.s["SwarmManagement"].InitializeGlobal(
            iter([results_pb2.Global(swarm_id=oid("f" * 32), tag="h", data=b"x")]), timeout=10)
    assert e.value.code() == grpc.StatusCode.NOT_FOUND
    with pytest.raises(grpc.RpcError) as e:
        api.s["SwarmManagement"].InitializeGlobal(
            iter([results_pb2.Global(swarm_id=oid(sid), tag="", data=b"x")]), timeout=10)
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    api.close()


def test_id_conversions(mgr):
    """Ids are 32 lower-case hex digits; the manager matches PairIds and strings by value."""
    api = Api(mgr.port)
    cid = api.unary("ClusterManagement", "ListClusterIds", system_pb2.Empty()).ids[0]
    mids = [api.unary("ModuleManagement", "SendModule",
                      tasks_pb2.Module(python_program=b"PK", image="i", name=f"m{i}")).id
            for i in range(40)]
    assert all(len(m) == 32 and m == m.lower() and int(m, 16) < 1 << 128 for m in mids)
    # A graph naming every module by its PairId value (ids with leading zeros included).
    tasks = [tasks_pb2.Task(task_id=task_id_of(f"m{i}"), alias=f"m{i}", module_id=oid(m),
                            scheduling=scheduling()) for i, m in enumerate(mids)]
    s = api.unary("SwarmManagement", "SendSwarm", us_pb2.SendSwarmRequest(
        graph=swarms_pb2.Graph(tasks=tasks), name="ids", cluster_id=cid.upper()))
    sid = s.swarm_id
    assert len(sid) == 32 and s.status == 0 and s.cluster_id == cid
    stripped = sid.lstrip("0") or "0"
    for form in (sid, sid.upper(), stripped):
        assert api.unary("SwarmManagement", "GetSwarm", system_pb2.StrId(id=form)).swarm_id == sid
    got = api.stream("SwarmManagement", "StreamSwarmTasks", system_pb2.StrId(id=sid))
    assert [t.module_id for t in got] == mids
    assert [int(t.task_id, 16) for t in got] == [pair_int(task_id_of(f"m{i}"))
                                                 for i in range(40)]
    api.close()


def test_results_with_gaps_and_logs(mgr):
    api = Api(mgr.port)
    cid = api.unary("ClusterManagement", "ListClusterIds", system_pb2.Empty()).ids[0]
    sid, mid = pending_swarm(api, cid)
    ch, node = node_client(mgr.port)
    n1, n2 = oid("0" * 30 + "a1"), oid("b2" * 16)
    tid = task_id_of("t")

    def add(nid, it, tag, data):
        node.AddTaskResult(iter([results_pb2.Result(swarm_id=oid(sid), task_id=tid, node_id=nid,
                                                    iteration=it, tag=tag, data=data)]),
                           timeout=10)
    # Results only in iterations 1 and 3, and a replaced value.
    add(n1, 1, "metrics", b"one")
    add(n2, 1, "metrics", b"one-b")
    add(n1, 3, "metrics", b"three-old")
    add(n1, 3, "metrics", b"three")
    add(n1, 3, "other", b"x")
    rows = api.stream("SwarmManagement", "SelectResults",
                      us_pb2.ResultsRequest(swarm_id=sid, tag="metrics"))
    assert len(rows) == 3  # one message per (iteration, node, tag)
    res = select_results(rows)
    assert list(res) == [0, 1]  # contiguous from 0: no round dropped by the SDK
    assert res[0] == {"%032x" % pair_int(n1): {"metrics": b"one"},
                      "%032x" % pair_int(n2): {"metrics": b"one-b"}}
    assert res[1] == {"%032x" % pair_int(n1): {"metrics": b"three"}}
    assert all(r.swarm_id == sid and r.task_id == "%032x" % pair_int(tid) for r in rows)
    # DeleteResults with the iteration the user sees.
    r = api.unary("SwarmManagement", "DeleteResults",
                  us_pb2.DeleteResultsRequest(swarm_id=sid, tag="metrics", iteration=1))
    assert "Deleted 2 results" in r.message
    rows = api.stream("SwarmManagement", "SelectResults",
                      us_pb2.ResultsRequest(swarm_id=sid, tag="metrics"))
    assert [r.data for r in rows] == [b"one", b"one-b"]

    # Logs: ill-formed UTF-8, identical timestamps, an error keyword.
    def blob(nid, it, text):
        hdr = struct.pack("<6QHH", oid(sid).head, oid(sid).tail, nid.head, nid.tail, tid.head,
                          tid.tail, it, 0)
        return hdr + zlib.compress(text, 9)
    stamp = ts_pb2.Timestamp(seconds=1_800_000_000, nanos=5_000_000)
    node.AddTaskLogs(iter([
        system_pb2.Logs(content=blob(n1, 0, b"hello \xff\xfe world\n"), timestamp=stamp),
        system_pb2.Logs(content=blob(n1, 0, b"second record\n"), timestamp=stamp),
        system_pb2.Logs(content=blob(n1, 0, b"Traceback (most recent call last)\n"),
                        timestamp=stamp),
        system_pb2.Logs(content=blob(n2, 1, "caf\u00e9 \u2713\n".encode()), timestamp=stamp),
    ]), timeout=10)
    raw = api.stream("SwarmManagement", "CollectLogs", us_pb2.LogQuery(swarm_id=sid))
    assert len(raw) == 4
    entries = collect_logs(raw)  # strict UTF-8 as the SDK: must not raise
    assert len(entries) == 4  # distinct timestamps: no two records merged
    msgs = [e["message"] for e in entries]
    assert msgs[0] == "hello \ufffd\ufffd world\n" and msgs[1] == "second record\n"
    assert msgs[3] == "caf\u00e9 \u2713\n"
    assert [e["severity"] for e in entries] == ["INFO", "INFO", "ERROR", "INFO"]
    assert all(e["alias"] == "t" and e["module_id"] == mid for e in entries)
    assert raw[0].timestamp.seconds == 1_800_000_000
    # Filters: node, iteration, severity, limit, order.
    q = us_pb2.LogQuery(swarm_id=sid, node_ids=["%032x" % pair_int(n2)])
    assert [r.iteration for r in api.stream("SwarmManagement", "CollectLogs", q)] == [1]
    q = us_pb2.LogQuery(swarm_id=sid, severity=["ERROR"])
    assert len(api.stream("SwarmManagement", "CollectLogs", q)) == 1
    q = us_pb2.LogQuery(swarm_id=sid, limit=2, sort_order="desc")
    got = api.stream("SwarmManagement", "CollectLogs", q)
    assert [r.iteration for r in got] == [1, 0]
    # StreamLogs on a swarm that never started follows it; stopping it ends the stream.
    it = api.s["SwarmManagement"].StreamLogs(system_pb2.StrId(id=sid), timeout=60)
    first = [next(it) for _ in range(4)]
    assert [r.content for r in first] == [r.content for r in raw]
    api.unary("SwarmManagement", "StopSwarm", us_pb2.StopSwarmRequest(swarm_id=sid))
    assert list(it) == []
    ch.close()
    api.close()


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    import subprocess
    d = tmp_path_factory.mktemp("pki")

    def openssl(*a):
        subprocess.run(["openssl", *a], cwd=d, check=True, capture_output=True, timeout=60)
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out",
            "ca.crt", "-days", "2", "-subj", "/CN=manta-test-ca")
    (d / "san.ext").write_text("subjectAltName=DNS:localhost,IP:127.0.0.1\n")
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server.key", "-out",
            "server.csr", "-subj", "/CN=localhost")
    openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
            "-CAcreateserial", "-out", "server.crt", "-days", "2", "-extfile", "san.ext")
    return d


def test_tls_users_without_client_certificate(tmp_path, node_bin, pki):
    sw = LocalSwarm(tmp_path, node_bin, nodes=0)
    uport = free_port()
    cfg = tmp_path / "mgr.toml"
    cfg.write_text(f'tls_cert = "{pki}/server.crt"\ntls_key = "{pki}/server.key"\n'
                   f'tls_client_ca = "{pki}/ca.crt"\nuser_listen = "127.0.0.1:{uport}"\n')
    try:
        sw.start_serve("--config", str(cfg), "--no-token")
        creds = grpc.ssl_channel_credentials(root_certificates=(pki / "ca.crt").read_bytes())
        ch = grpc.secure_channel(f"127.0.0.1:{uport}", creds,
                                 options=OPTS + [("grpc.ssl_target_name_override", "localhost")])
        grpc.channel_ready_future(ch).result(timeout=20)
        api = Api(uport, channel=ch)
        ids = api.unary("ClusterManagement", "ListClusterIds", system_pb2.Empty()).ids
        assert len(ids) == 1
        # Plaintext against the TLS port fails (the SDK's "Connection lost").
        plain = Api(uport)
        with pytest.raises(grpc.RpcError) as e:
            plain.s["UserManagement"].IsAvailable(system_pb2.Empty(), timeout=5)
        assert e.value.code() == grpc.StatusCode.UNAVAILABLE
        plain.close()
        # The node port still demands a client certificate.
        nch = grpc.secure_channel(f"127.0.0.1:{sw.port}", creds,
                                  options=OPTS + [("grpc.ssl_target_name_override", "localhost")])
        with pytest.raises(grpc.RpcError):
            client(nch, "node.node_service.Node").IsAvailable(system_pb2.Empty(), timeout=5)
        nch.close()
        api.close()
    finally:
        sw.close()


def test_300mib_global(mgr):
    api = Api(mgr.port)
    cid = api.unary("ClusterManagement", "ListClusterIds", system_pb2.Empty()).ids[0]
    sid, _ = pending_swarm(api, cid)
    big = hashlib.sha256(b"seed").digest() * (300 * (1 << 20) // 32)
    want = hashlib.sha256(big).hexdigest()
    r = api.global_(sid, "big", big)
    assert "314572800 bytes" in r.message
    del big
    # Back through a node (GetGlobal, in chunks) ...
    ch, node = node_client(mgr.port)
    h = hashlib.sha256()
    total = 0
    for part in node.GetGlobal(results_pb2.GlobalTag(swarm_id=oid(sid), tag="big"), timeout=300):
        h.update(part.data)
        total += len(part.data)
    assert total == 300 << 20 and h.hexdigest() == want
    ch.close()
    # ... and to the user (SelectGlobal, concatenated).
    h = hashlib.sha256()
    for part in api.s["SwarmManagement"].SelectGlobal(us_pb2.GlobalRequest(swarm_id=sid,
                                                                          tag="big"),
                                                     timeout=300):
        h.update(part.data)
    assert h.hexdigest() == want
    api.close()


def test_per_user_call_cap(tmp_path, node_bin):
    """8 calls in progress per user; the 9th is refused before anything is read (so the SDK's
    retry of it is harmless); another caller is not affected; cancelled streams free their
    slots."""
    sw = LocalSwarm(tmp_path, node_bin, nodes=0)
    try:
        pw = tmp_path / "pw"
        pw.write_text("long password\n")
        sw.manager("user", "create", "al", "--password-file", str(pw), "--store", str(sw.store))
        sw.start_serve()
        tok = sw.manager("token", "create", "--user", "al", "--store",
                         str(sw.store)).stdout.strip()
        api = Api(sw.port, tok)
        cid = api.unary("ClusterManagement", "ListClusterIds", system_pb2.Empty()).ids[0]
        sid, _ = pending_swarm(api, cid)
        streams = [api.s["SwarmManagement"].StreamResults(
            us_pb2.ResultsRequest(swarm_id=sid, tag="t"), metadata=api.md, timeout=60)
            for _ in range(8)]
        time.sleep(1.5)
        with pytest.raises(grpc.RpcError) as e:
            list(api.s["SwarmManagement"].StreamResults(
                us_pb2.ResultsRequest(swarm_id=sid, tag="t"), metadata=api.md, timeout=10))
        assert e.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "nothing of this call was read" in e.value.details()
        # ... except InitializeGlobal: the SDK's retry of a client stream would be empty
        with pytest.raises(grpc.RpcError) as e:
            api.s["SwarmManagement"].InitializeGlobal(
                iter([results_pb2.Global(swarm_id=oid(sid), tag="g", data=b"\x01")]),
                metadata=api.md, timeout=10)
        assert e.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert "nothing of this call was read" in e.value.details()
        # Another user is not affected.
        other = Api(sw.port)
        assert other.s["UserManagement"].IsAvailable(system_pb2.Empty(), timeout=10)
        other.close()
        # Streams the client cancels give their slots back.
        for s in streams:
            s.cancel()
        time.sleep(1.5)
        r = api.unary("SwarmManagement", "StopSwarm", us_pb2.StopSwarmRequest(swarm_id=sid))
        assert "stopped" in r.message
        api.close()
    finally:
        sw.close()
