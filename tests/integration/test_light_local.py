"""node.light_service.Local as a running task calls it: GetBinaryData, ListDir, ReadFileLines and
Exists against a node serving file and folder datasets, with the exact requests the SDK makes
(task-contract.md 6). One node and one long-running task (so its (swarm, task) is known) serve
every test of this module."""
import os
import pathlib
import re
import signal
import subprocess
import threading

import grpc
import pytest

from conftest import Node
from pbgen import client, pb
from test_node_wire import TOKEN
from test_tasks_process import SWARM, mqtt_task, send, sleeper, updates
from wire_env import Broker, FakeManager, Observer, RunningNode, node_config, system_pb2, \
    tasks_pb2, wait_for

lpb = pb("node.light_service_pb2")
TASK = 1
BLOB = os.urandom(9 * 1024 * 1024 + 12345)  # several messages of 1 to 4 MiB
TEXT = "héllo\nwörld €\r\nthird\rlast 日本語".encode()
LONG = ("€" * 40000 + "\n").encode() + "ü\n".encode()  # crosses read-buffer boundaries
LATIN = b"caf\xe9\nna\xefve\n"
BAD = b"good\n\xff\xfebad\n"
TIMEOUT = 10
NON_RETRYABLE_PATH = (grpc.StatusCode.PERMISSION_DENIED, grpc.StatusCode.INVALID_ARGUMENT)


@pytest.fixture(scope="module")
def env(node_bin, tmp_path_factory):
    base = tmp_path_factory.mktemp("light_local")
    home = base / "home"
    home.mkdir()
    data = base / "data"
    data.mkdir()
    (data / "blob.bin").write_bytes(BLOB)
    (data / "empty.bin").write_bytes(b"")
    (data / "text.txt").write_bytes(TEXT)
    (data / "long.txt").write_bytes(LONG)
    (data / "latin.txt").write_bytes(LATIN)
    (data / "bad.txt").write_bytes(BAD)
    (data / "utf16.txt").write_bytes("a€\nb\n".encode("utf-16"))
    (base / "outside.txt").write_text("secret\n")
    imgs = data / "imgs"
    imgs.mkdir()
    (imgs / "a.txt").write_text("alpha\nbeta\n")
    (imgs / "b.bin").write_bytes(b"\x00\x01")
    (imgs / "sub").mkdir()
    (imgs / "sub" / "c.txt").write_text("gamma\n")
    os.symlink(imgs / "a.txt", imgs / "link_in")
    os.symlink(base / "outside.txt", imgs / "link_out")
    os.symlink(base, imgs / "dir_out")
    maps = {"blob": data / "blob.bin", "empty": data / "empty.bin", "text": data / "text.txt",
            "long": data / "long.txt", "latin": data / "latin.txt", "bad": data / "bad.txt",
            "utf16": data / "utf16.txt", "imgs": imgs}
    extra = "[datasets]\nmappings = { " + ", ".join(f'{k} = "{v}"' for k, v in maps.items()) + " }\n"

    node = Node(node_bin, home)
    b = Broker(base / "broker").start()
    m = FakeManager(b, token=TOKEN).start()
    o = Observer(b)
    node.write_config("default", node_config(TOKEN, m.port, extra=extra))
    rn = RunningNode(node)
    ch = None
    try:
        rn.wait_line("✓ Ready to execute tasks")
        log = home / ".manta" / "logs" / "nodes" / "default.log"
        port = wait_for(lambda: re.search(r"Light service listening on 127\.0\.0\.1:([0-9]+)",
                                          log.read_text()), 10, what="the light port").group(1)
        send(o, "deploy_task", mqtt_task(TASK, sleeper(600)))
        wait_for(lambda: tasks_pb2.RUNNING in updates(o, TASK), 20, what="the task running")
        ch = grpc.insecure_channel(f"127.0.0.1:{port}")
        yield {"local": client(ch, "node.light_service.Local"), "channel": ch, "rn": rn,
               "log": log}
    finally:
        if ch is not None:
            ch.close()
        rn.signal(signal.SIGTERM)
        rc = rn.wait(60)
        o.close()
        m.stop()
        b.stop()
        assert "AddressSanitizer" not in rn.stderr() and "runtime error:" not in rn.stderr()
        assert rc == 0


def dreq(name, task=TASK, swarm=SWARM):
    return lpb.DataRequest(task_id=system_pb2.PairId(head=0, tail=task),
                           swarm_id=system_pb2.PairId(head=swarm[0], tail=swarm[1]), name=name)


def dirreq(name, path="", **kw):
    return lpb.DirRequest(data_request=dreq(name, **kw), path=path)


def text_req(name, value="", encoding="", errors="", newline="", **kw):
    # What local.read_file_lines(name, ...) sends: path=ProtoPath(name=name, value="").
    return lpb.ReadText(data_request=dreq(name, **kw), path=lpb.ProtoPath(name=name, value=value),
                        encoding=encoding, errors=errors, newline=newline)


def lines(local, req):
    # The SDK decodes every chunk separately as strict UTF-8.
    return [c.content.decode("utf-8") for c in local.ReadFileLines(req, timeout=TIMEOUT)]


def error_of(fn):
    with pytest.raises(grpc.RpcError) as ei:
        r = fn()
        if not isinstance(r, (lpb.ListDirResponse, lpb.ExistsResponse)):
            list(r)
    return ei.value.code(), ei.value.details()


# ---- GetBinaryData ------------------------------------------------------------------------------

def test_binary_data_streams_a_large_file_in_bounded_chunks(env):
    chunks = [c.content for c in env["local"].GetBinaryData(dreq("blob"), timeout=TIMEOUT)]
    assert len(chunks) >= 3
    # One chunk size (at most 4 MiB: the SDK's flow-control window) and the rest at the end.
    assert len({len(c) for c in chunks[:-1]}) == 1 and len(chunks[0]) <= 4 * 1024 * 1024
    assert 0 < len(chunks[-1]) <= len(chunks[0])
    assert b"".join(chunks) == BLOB


def test_binary_data_of_an_empty_file_is_one_empty_message(env):
    chunks = [c.content for c in env["local"].GetBinaryData(dreq("empty"), timeout=TIMEOUT)]
    assert chunks == [b""]


def test_binary_data_errors(env):
    local = env["local"]
    code, msg = error_of(lambda: local.GetBinaryData(dreq("nope"), timeout=TIMEOUT))
    assert code == grpc.StatusCode.FAILED_PRECONDITION and msg.startswith("RESOURCE_ERROR: ")
    code, msg = error_of(lambda: local.GetBinaryData(dreq("imgs"), timeout=TIMEOUT))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and msg.startswith("VALIDATION_ERROR: ")
    code, _ = error_of(lambda: local.GetBinaryData(dreq("bl\x00ob"), timeout=TIMEOUT))
    assert code in NON_RETRYABLE_PATH


def test_four_clients_stream_at_once(env):
    results = [None] * 4

    def fetch(i):
        ch = grpc.insecure_channel(env["channel"]._channel.target().decode())
        try:
            loc = client(ch, "node.light_service.Local")
            results[i] = b"".join(c.content for c in loc.GetBinaryData(dreq("blob"), timeout=30))
        finally:
            ch.close()

    threads = [threading.Thread(target=fetch, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(40)
    assert all(r == BLOB for r in results)


def light_client():
    """tools/light-client.c as built beside the node (the benchmark's C client)."""
    build = os.environ.get("MANTA_BUILD_DIR")
    tool = pathlib.Path(build) / "light-client" if build else None
    if not tool or not tool.exists():
        pytest.skip("light-client not built (MANTA_BUILD_DIR is set by CTest)")
    return str(tool)


def test_c_client_streams_the_dataset(env):
    target = env["channel"]._channel.target().decode()
    swarm = f"{(SWARM[0] << 64) | SWARM[1]:x}"
    p = subprocess.run([light_client(), "binary", target, swarm, f"{TASK:x}", "blob", "2"],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    runs = [dict(re.findall(r"(\w+)=([0-9.]+)", line)) for line in p.stdout.splitlines()]
    assert len(runs) == 2
    assert all(int(r["bytes"]) == len(BLOB) and int(r["messages"]) >= 3 for r in runs)
    # Its failures are reported (a dataset that does not exist).
    p = subprocess.run([light_client(), "binary", target, swarm, f"{TASK:x}", "nope"],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 1 and "FAILED_PRECONDITION" in p.stderr


# ---- authorisation ------------------------------------------------------------------------------

def test_unknown_task_or_swarm_is_refused(env):
    local = env["local"]
    for kw in ({"task": 999}, {"swarm": (1, 2)}):
        code, msg = error_of(lambda: local.GetBinaryData(dreq("blob", **kw), timeout=TIMEOUT))
        assert code == grpc.StatusCode.FAILED_PRECONDITION
        assert msg.startswith("RESOURCE_ERROR: ") and "not a task of this node" in msg
        code, _ = error_of(lambda: local.ListDir(dirreq("imgs", **kw), timeout=TIMEOUT))
        assert code == grpc.StatusCode.FAILED_PRECONDITION
        code, _ = error_of(lambda: local.ReadFileLines(text_req("text", **kw), timeout=TIMEOUT))
        assert code == grpc.StatusCode.FAILED_PRECONDITION
        assert local.Exists(dirreq("blob", **kw), timeout=TIMEOUT).value is False
    # a request without any ids (PairId{0,0})
    code, _ = error_of(lambda: local.GetBinaryData(lpb.DataRequest(name="blob"), timeout=TIMEOUT))
    assert code == grpc.StatusCode.FAILED_PRECONDITION


def test_unknown_method_is_unimplemented(env):
    call = env["channel"].unary_unary("/node.light_service.Local/Nope")
    with pytest.raises(grpc.RpcError) as ei:
        call(b"", timeout=TIMEOUT)
    assert ei.value.code() == grpc.StatusCode.UNIMPLEMENTED


# ---- ListDir / Exists ---------------------------------------------------------------------------

def test_list_dir_of_a_folder_dataset(env):
    local = env["local"]
    r = local.ListDir(dirreq("imgs"), timeout=TIMEOUT)
    got = {p.value: p.is_file for p in r.paths}
    assert all(p.name == "" for p in r.paths)
    assert got == {"a.txt": True, "b.bin": True, "sub": False, "link_in": True,
                   "link_out": False, "dir_out": False}
    r = local.ListDir(dirreq("imgs", "sub/../sub//."), timeout=TIMEOUT)
    assert [(p.name, p.value, p.is_file) for p in r.paths] == [("", "c.txt", True)]


def test_list_dir_errors(env):
    local = env["local"]
    for name, path in (("nope", ""), ("imgs", "missing"), ("blob", "")):
        code, msg = error_of(lambda: local.ListDir(dirreq(name, path), timeout=TIMEOUT))
        assert code == grpc.StatusCode.FAILED_PRECONDITION, (name, path, msg)
    for path in ("../", "..", "sub/../../", "/etc", "/", "sub\x00/x", "dir_out"):
        code, msg = error_of(lambda: local.ListDir(dirreq("imgs", path), timeout=TIMEOUT))
        assert code in NON_RETRYABLE_PATH, (path, code, msg)


def test_exists(env):
    local = env["local"]
    yes = [("blob", ""), ("imgs", ""), ("imgs", "sub/c.txt"), ("imgs", "./sub"),
           ("imgs", "link_in")]
    no = [("nope", ""), ("imgs", "missing"), ("imgs", "../blob.bin"), ("imgs", "/etc/hostname"),
          ("imgs", "a.txt\x00x"), ("imgs", "link_out"), ("imgs", "dir_out"), ("blob", "x")]
    for name, path in yes:
        assert local.Exists(dirreq(name, path), timeout=TIMEOUT).value is True, (name, path)
    for name, path in no:
        assert local.Exists(dirreq(name, path), timeout=TIMEOUT).value is False, (name, path)


# ---- ReadFileLines ------------------------------------------------------------------------------

def test_read_file_lines_utf8_default_universal_newlines(env):
    got = lines(env["local"], text_req("text"))
    assert got == ["héllo\n", "wörld €\r\n", "third\r", "last 日本語"]
    got = lines(env["local"], text_req("text", newline="\n"))
    assert got == ["héllo\n", "wörld €\r\n", "third\rlast 日本語"]
    got = lines(env["local"], text_req("text", encoding="utf-8", errors="strict", newline="\r\n"))
    assert got == ["héllo\nwörld €\r\n", "third\rlast 日本語"]


def test_read_file_lines_multibyte_across_buffers(env):
    got = lines(env["local"], text_req("long"))
    assert "".join(got) == LONG.decode() and got[-1] == "ü\n"
    assert len(got) >= 2


def test_read_file_lines_other_encodings(env):
    local = env["local"]
    assert lines(local, text_req("latin", encoding="latin-1")) == ["café\n", "naïve\n"]
    assert lines(local, text_req("latin", encoding="ISO-8859-1")) == ["café\n", "naïve\n"]
    assert lines(local, text_req("utf16", encoding="utf-16")) == ["a€\n", "b\n"]
    code, msg = error_of(lambda: local.ReadFileLines(text_req("latin"), timeout=TIMEOUT))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and msg.startswith("VALIDATION_ERROR: ")
    code, _ = error_of(lambda: local.ReadFileLines(text_req("text", encoding="klingon"),
                                                   timeout=TIMEOUT))
    assert code == grpc.StatusCode.INVALID_ARGUMENT


def test_read_file_lines_decode_errors(env):
    local = env["local"]
    # strict: the good line may already have been sent; the status is non-retryable
    it = local.ReadFileLines(text_req("bad"), timeout=TIMEOUT)
    got = []
    with pytest.raises(grpc.RpcError) as ei:
        for c in it:
            got.append(c.content.decode())
    assert ei.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert ei.value.details().startswith("VALIDATION_ERROR: ")
    assert got in ([], ["good\n"])
    assert lines(local, text_req("bad", errors="replace")) == ["good\n", "\ufffd\ufffdbad\n"]
    assert lines(local, text_req("bad", errors="ignore")) == ["good\n", "bad\n"]


def test_read_file_lines_in_a_folder_and_errors(env):
    local = env["local"]
    assert lines(local, text_req("imgs", "sub/c.txt")) == ["gamma\n"]
    assert lines(local, text_req("imgs", "link_in")) == ["alpha\n", "beta\n"]
    for name, value in (("nope", ""), ("imgs", "missing.txt"), ("imgs", ""), ("imgs", "sub")):
        code, msg = error_of(lambda: local.ReadFileLines(text_req(name, value), timeout=TIMEOUT))
        assert code == grpc.StatusCode.FAILED_PRECONDITION, (name, value, msg)
    for value in ("../outside.txt", "../../outside.txt", "/etc/hostname", "a.txt\x00",
                  "link_out", "dir_out/outside.txt"):
        code, msg = error_of(lambda: local.ReadFileLines(text_req("imgs", value), timeout=TIMEOUT))
        assert code in NON_RETRYABLE_PATH, (value, code, msg)
    code, _ = error_of(lambda: local.ReadFileLines(text_req("text", newline="x"), timeout=TIMEOUT))
    assert code == grpc.StatusCode.INVALID_ARGUMENT


# ---- MantaPath("dataset/inside/it") (task-contract.md 6: extensions of the reference) ----------

def test_manta_path_inside_a_folder_dataset(env):
    local = env["local"]
    # this runtime's MantaPath: GetBinaryData names the whole path
    got = b"".join(c.content for c in local.GetBinaryData(dreq("imgs/b.bin"), timeout=TIMEOUT))
    assert got == b"\x00\x01"
    got = b"".join(c.content for c in local.GetBinaryData(dreq("imgs/sub/c.txt"),
                                                         timeout=TIMEOUT))
    assert got == b"gamma\n"
    # the SDK's MantaPath: an empty dataset name, the whole path in the path field
    assert sorted(p.value for p in local.ListDir(dirreq("", "imgs/sub"), timeout=TIMEOUT).paths) \
        == ["c.txt"]
    assert local.Exists(dirreq("", "imgs/a.txt"), timeout=TIMEOUT).value is True
    assert local.Exists(dirreq("", "imgs/zzz"), timeout=TIMEOUT).value is False
    assert lines(local, text_req("", value="imgs/sub/c.txt")) == ["gamma\n"]
    # a dataset named as given wins; the same resolution and refusals as any path inside
    assert lines(local, text_req("imgs", value="a.txt")) == ["alpha\n", "beta\n"]
    code, _ = error_of(lambda: local.GetBinaryData(dreq("imgs/../../outside.txt"),
                                                    timeout=TIMEOUT))
    assert code in NON_RETRYABLE_PATH
    code, _ = error_of(lambda: local.GetBinaryData(dreq("imgs/link_out"), timeout=TIMEOUT))
    assert code in NON_RETRYABLE_PATH
    code, details = error_of(lambda: local.GetBinaryData(dreq("imgs/sub"), timeout=TIMEOUT))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "'sub' in dataset 'imgs' is a folder" \
        in details, details
    code, details = error_of(lambda: local.GetBinaryData(dreq("blob/x"), timeout=TIMEOUT))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "is a file: it has no 'x' inside" in \
        details, details
    code, details = error_of(lambda: local.GetBinaryData(dreq("nope/x"), timeout=TIMEOUT))
    assert code == grpc.StatusCode.FAILED_PRECONDITION and "Dataset 'nope/x' not found" in details
    code, _ = error_of(lambda: local.GetBinaryData(dreq("/imgs/b.bin"), timeout=TIMEOUT))
    assert code == grpc.StatusCode.FAILED_PRECONDITION
