"""manta_manager's user services (core.user_services, what the Manta SDK calls), driven with
grpcio clients built from proto/: every method registered, users and user tokens, SignIn /
Logout / GetUser, token separation from node tokens, --no-token, user_listen, the one cluster
and its (real) nodes. The SDK behaviour replayed here is user-api.md sections 1, 2, 9 and 10."""
import re
import subprocess

import grpc
import pytest

from manager_env import LocalSwarm
from pbgen import client, pb
from wire_env import free_port, wait_for

system_pb2 = pb("common.system_pb2")
us_pb2 = pb("core.user_services_pb2")

SERVICES = ["UserManagement", "ClusterManagement", "SwarmManagement", "ModuleManagement"]
IMPLEMENTED = {
    "UserManagement": {"IsAvailable", "SignIn", "Logout", "GetUser"},
    "ClusterManagement": {"IsAvailable", "ListClusterIds", "StreamClusters", "GetCluster",
                          "ListNodeIds", "StreamNodes", "GetNode", "GetNodeResources",
                          "StreamNodeResources", "ListAvailableNodeIds", "CollectErrors"},
}
PASSWORD = "correct horse battery"
# The SDK's channel options do not matter to the server; these mirror a grpclib client:
# no receive limit.
OPTS = [("grpc.max_receive_message_length", -1), ("grpc.max_send_message_length", -1)]


def stubs(port):
    ch = grpc.insecure_channel(f"127.0.0.1:{port}", options=OPTS)
    return ch, {s: client(ch, f"core.user_services.{s}") for s in SERVICES}


def md(token):
    return [("authorization", token)]


def make_user(sw, name="alice", password=PASSWORD):
    pw = sw.tmp / f"{name}.pw"
    pw.write_text(password + "\n")
    p = sw.manager("user", "create", name, "--password-file", str(pw), "--store", str(sw.store))
    assert f"user {name} created" in p.stdout


def user_token(sw, name="alice", *extra):
    p = sw.manager("token", "create", "--user", name, "--store", str(sw.store), *extra)
    lines = p.stdout.splitlines()
    assert len(lines) == 1 and len(lines[0]) > 10, p.stdout
    return lines[0]


@pytest.fixture
def served(tmp_path, node_bin):
    sw = LocalSwarm(tmp_path, node_bin, nodes=2)
    make_user(sw)
    sw.start_serve()
    yield sw
    sw.close()


def test_every_method_registered(served):
    ch, s = stubs(served.port)
    tok = user_token(served)
    svc_desc = {name: pb("core.user_services_pb2").DESCRIPTOR.services_by_name[name]
                for name in SERVICES}
    total = sum(len(d.methods) for d in svc_desc.values())
    assert total == 58
    for name, d in svc_desc.items():
        for m in d.methods:
            if m.name in IMPLEMENTED.get(name, set()):
                continue
            path = f"/core.user_services.{name}/{m.name}"
            # An empty request is a valid message of any type.
            if m.client_streaming:
                fn = ch.stream_unary(path) if not m.server_streaming else ch.stream_stream(path)
                arg = iter([b""])
            else:
                fn = ch.unary_unary(path) if not m.server_streaming else ch.unary_stream(path)
                arg = b""
            try:
                r = fn(arg, metadata=md(tok), timeout=10)
                if m.server_streaming:
                    list(r)
                code = grpc.StatusCode.OK
                msg = ""
            except grpc.RpcError as e:
                code, msg = e.code(), e.details()
            # Registered: never the transport's "method not found" (which is also
            # UNIMPLEMENTED, but without our sentence).
            if code == grpc.StatusCode.UNIMPLEMENTED:
                assert "manta_manager supports" in msg, (path, msg)
            assert code not in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.INTERNAL,
                                grpc.StatusCode.UNKNOWN), (path, code, msg)
    ch.close()


def test_sign_in_get_user_logout(served):
    ch, s = stubs(served.port)
    um = s["UserManagement"]
    # SignIn carries no authorization metadata (AsyncUserAPI.sign_in).
    user = um.SignIn(us_pb2.SignInRequest(username="alice", password=PASSWORD), timeout=10)
    assert user.HasField("token") and len(user.token) >= 10
    assert user.username == "alice" and re.fullmatch(r"[0-9a-f]{32}", user.user_id)
    tok = user.token
    for name in SERVICES:
        assert s[name].IsAvailable(system_pb2.Empty(), metadata=md(tok), timeout=10) is not None
    me = um.GetUser(us_pb2.GetUserRequest(), metadata=md(tok), timeout=10)
    assert me.username == "alice" and me.user_id == user.user_id and not me.HasField("token")
    # The token exactly as given, no "Bearer " prefix needed.
    r = um.Logout(system_pb2.Empty(), metadata=md(tok), timeout=10)
    assert "signed out" in r.message
    with pytest.raises(grpc.RpcError) as e:
        um.GetUser(us_pb2.GetUserRequest(), metadata=md(tok), timeout=10)
    assert e.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert "Logout" in e.value.details()
    # A fresh sign-in works again.
    tok2 = um.SignIn(us_pb2.SignInRequest(username="alice", password=PASSWORD), timeout=10).token
    assert um.GetUser(us_pb2.GetUserRequest(), metadata=md(tok2), timeout=10).username == "alice"
    ch.close()


def test_wrong_password_and_unknown_user(served):
    ch, s = stubs(served.port)
    for u, p in (("alice", "wrong password"), ("bob", PASSWORD), ("", ""), ("a" * 500, "x")):
        with pytest.raises(grpc.RpcError) as e:
            s["UserManagement"].SignIn(us_pb2.SignInRequest(username=u, password=p), timeout=10)
        assert e.value.code() == grpc.StatusCode.UNAUTHENTICATED
        assert "user name or the password is wrong" in e.value.details()
    ch.close()


def test_token_separation(served):
    ch, s = stubs(served.port)
    node_tok = served.manager("token", "create", "--node", "node0").stdout.strip()
    with pytest.raises(grpc.RpcError) as e:
        s["ClusterManagement"].ListClusterIds(system_pb2.Empty(), metadata=md(node_tok),
                                              timeout=10)
    assert e.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert "node token" in e.value.details()
    # No token at all on a non-open method.
    with pytest.raises(grpc.RpcError) as e:
        s["ClusterManagement"].ListClusterIds(system_pb2.Empty(), timeout=10)
    assert e.value.code() == grpc.StatusCode.UNAUTHENTICATED
    # A user token on the node service.
    utok = user_token(served)
    node = client(ch, "node.node_service.Node")
    with pytest.raises(grpc.RpcError) as e:
        node.IsAvailable(system_pb2.Empty(), metadata=md(utok), timeout=10)
    assert e.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert "user token" in e.value.details()
    # The user token works on the user services.
    assert s["ClusterManagement"].ListClusterIds(system_pb2.Empty(), metadata=md(utok),
                                                 timeout=10).ids
    ch.close()


def test_user_cli(served):
    sw = served
    p = sw.manager("user", "list", "--store", str(sw.store))
    assert "alice" in p.stdout
    p = subprocess.run([sw.mgr, "user", "create", "dave", "--store", str(sw.store)],
                       stdin=subprocess.DEVNULL, capture_output=True, text=True, env=sw.env,
                       timeout=30)
    assert p.returncode == 2 and "No password on standard input" in p.stderr
    pw = sw.tmp / "pw"
    pw.write_text(PASSWORD + "\n")
    p = sw.manager("user", "create", "alice", "--password-file", str(pw), "--store",
                   str(sw.store), check=False)
    assert p.returncode == 1 and "already exists" in p.stderr
    p = sw.manager("user", "create", "bad name", "--password-file", str(pw), "--store",
                   str(sw.store), check=False)
    assert p.returncode == 2 and "spaces" in p.stderr
    p = sw.manager("token", "create", "--user", "nobody", "--store", str(sw.store), check=False)
    assert p.returncode == 2 and "no user 'nobody'" in p.stderr
    # Password on standard input (not a terminal).
    p = subprocess.run([sw.mgr, "user", "create", "carol", "--store", str(sw.store)],
                       input=PASSWORD + "\n", capture_output=True, text=True, env=sw.env,
                       timeout=30)
    assert p.returncode == 0, p.stderr
    tok = user_token(sw, "carol")
    ch, s = stubs(sw.port)
    assert s["UserManagement"].GetUser(us_pb2.GetUserRequest(), metadata=md(tok),
                                       timeout=10).username == "carol"
    sw.manager("user", "delete", "carol", "--store", str(sw.store))
    with pytest.raises(grpc.RpcError) as e:
        s["UserManagement"].GetUser(us_pb2.GetUserRequest(), metadata=md(tok), timeout=10)
    assert e.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert "no longer exists" in e.value.details()
    # The hash is slow and salted: never the password in the store.
    assert PASSWORD.encode() not in sw.store.read_bytes()
    ch.close()


def test_cluster_and_nodes(served):
    sw = served
    sw.start_nodes()
    ch, s = stubs(sw.port)
    tok = user_token(sw)
    cm = s["ClusterManagement"]
    ids = cm.ListClusterIds(system_pb2.Empty(), metadata=md(tok), timeout=10).ids
    assert len(ids) == 1 and re.fullmatch(r"[0-9a-f]{32}", ids[0])
    cid = ids[0]
    clusters = list(cm.StreamClusters(system_pb2.Empty(), metadata=md(tok), timeout=10))
    assert len(clusters) == 1 and clusters[0].cluster_id == cid and clusters[0].status == 1
    assert clusters[0].node_port == sw.port
    assert cm.GetCluster(system_pb2.StrId(id=cid), metadata=md(tok), timeout=10).cluster_id == cid
    with pytest.raises(grpc.RpcError) as e:
        cm.GetCluster(system_pb2.StrId(id="f" * 32), metadata=md(tok), timeout=10)
    assert e.value.code() == grpc.StatusCode.NOT_FOUND and cid in e.value.details()

    def two():
        return len(cm.ListAvailableNodeIds(system_pb2.StrId(id=cid), metadata=md(tok),
                                           timeout=10).ids) == 2
    wait_for(two, timeout=60, what="2 nodes available")
    nids = cm.ListNodeIds(system_pb2.StrId(id=cid), metadata=md(tok), timeout=10).ids
    assert len(nids) == 2 and all(re.fullmatch(r"[0-9a-f]{32}", n) for n in nids)
    nodes = list(cm.StreamNodes(system_pb2.StrId(id=cid), metadata=md(tok), timeout=10))
    assert sorted(n.node_id for n in nodes) == sorted(nids)
    for n in nodes:
        assert n.status == 1 and n.platform_info.hostname and n.platform_info.system
    one = cm.GetNode(us_pb2.NodeRequest(cluster_id=cid, node_id=nids[0]), metadata=md(tok),
                     timeout=10)
    assert one.node_id == nids[0]
    # Node ids match by value: upper case and without leading zeros too.
    assert cm.GetNode(us_pb2.NodeRequest(cluster_id=cid, node_id=nids[0].upper()),
                      metadata=md(tok), timeout=10).node_id == nids[0]

    def metrics():
        r = cm.GetNodeResources(us_pb2.NodeRequest(cluster_id=cid, node_id=nids[0]),
                                metadata=md(tok), timeout=10)
        return r.HasField("timestamp")
    wait_for(metrics, timeout=60, what="a metrics snapshot")
    with pytest.raises(grpc.RpcError) as e:
        cm.GetNode(us_pb2.NodeRequest(cluster_id=cid, node_id="0" * 31 + "1"), metadata=md(tok),
                   timeout=10)
    assert e.value.code() == grpc.StatusCode.NOT_FOUND
    with pytest.raises(grpc.RpcError) as e:
        cm.GetNode(us_pb2.NodeRequest(cluster_id=cid, node_id="\xff not an id"),
                   metadata=md(tok), timeout=10)
    assert e.value.code() == grpc.StatusCode.NOT_FOUND
    ch.close()


def test_cluster_id_stable_and_no_token(tmp_path, node_bin):
    sw = LocalSwarm(tmp_path, node_bin, nodes=0)
    try:
        sw.start_serve("--no-token")
        ch, s = stubs(sw.port)
        cid = s["ClusterManagement"].ListClusterIds(system_pb2.Empty(), timeout=10).ids[0]
        ch.close()
        sw.proc.terminate()
        sw.proc.communicate(timeout=30)
        sw.start_serve("--no-token")
        ch, s = stubs(sw.port)
        assert s["ClusterManagement"].ListClusterIds(system_pb2.Empty(), timeout=10).ids == [cid]
        ch.close()
    finally:
        sw.close()


def test_user_listen(tmp_path, node_bin):
    sw = LocalSwarm(tmp_path, node_bin, nodes=0)
    uport = free_port()
    try:
        make_user(sw)
        sw.start_serve("--user-listen", f"127.0.0.1:{uport}")
        tok = user_token(sw)
        ch, s = stubs(uport)

        def up():
            try:
                s["UserManagement"].IsAvailable(system_pb2.Empty(), timeout=2)
                return True
            except grpc.RpcError:
                return False
        wait_for(up, timeout=20, what="user services")
        assert s["ClusterManagement"].ListClusterIds(system_pb2.Empty(), metadata=md(tok),
                                                     timeout=10).ids
        node = client(ch, "node.node_service.Node")
        with pytest.raises(grpc.RpcError) as e:
            node.IsAvailable(system_pb2.Empty(), timeout=10)
        assert e.value.code() == grpc.StatusCode.UNIMPLEMENTED
        assert "nodes connect" in e.value.details()
        ch.close()
        ch, s = stubs(sw.port)
        with pytest.raises(grpc.RpcError) as e:
            s["ClusterManagement"].ListClusterIds(system_pb2.Empty(), metadata=md(tok),
                                                  timeout=10)
        assert e.value.code() == grpc.StatusCode.UNIMPLEMENTED
        assert "user_listen" in e.value.details()
        ch.close()
    finally:
        sw.close()
