"""Python modules generated from proto/ with Debian's protoc (3.21, which knows proto3
`optional`), cached in the build tree, so the tests speak the exact wire contract the C code is
built from; plus gRPC clients and servicers built from the service descriptors (no generated
stubs needed).

    from pbgen import pb, client, servicer
    system_pb2 = pb("common.system_pb2")
    node = client(channel, "node.node_service.Node");  node.IsAvailable(system_pb2.Empty())
    server.add_generic_rpc_handlers([servicer("node.node_service.Node", impl)])
"""
import importlib
import os
import pathlib
import subprocess
import sys
import tempfile
import threading

SOURCE_DIR = pathlib.Path(os.environ.get("MANTA_SOURCE_DIR", pathlib.Path(__file__).resolve().parents[2]))
PROTO_DIR = SOURCE_DIR / "proto"
_lock = threading.Lock()
_out = None


def _generate() -> pathlib.Path:
    global _out
    with _lock:
        if _out:
            return _out
        build = os.environ.get("MANTA_BUILD_DIR")
        out = pathlib.Path(build) / "pbpy" if build else pathlib.Path(tempfile.mkdtemp(prefix="pbpy-"))
        out.mkdir(parents=True, exist_ok=True)
        protos = sorted(str(p.relative_to(PROTO_DIR)) for p in PROTO_DIR.rglob("*.proto"))
        stamp = out / ".stamp"
        newest = max(p.stat().st_mtime for p in PROTO_DIR.rglob("*.proto"))
        if not stamp.exists() or stamp.stat().st_mtime < newest:
            # Several test processes may generate at once: write privately, then move.
            tmp = pathlib.Path(tempfile.mkdtemp(prefix="gen-", dir=out))
            subprocess.run(["protoc", f"-I{PROTO_DIR}", "-I/usr/include", f"--python_out={tmp}",
                            *protos], check=True)
            for f in tmp.rglob("*.py"):
                dest = out / f.relative_to(tmp)
                dest.parent.mkdir(parents=True, exist_ok=True)
                os.replace(f, dest)
            for d in (out / "common", out / "node"):
                (d / "__init__.py").touch()
            stamp.touch()
        if str(out) not in sys.path:
            sys.path.insert(0, str(out))
        _out = out
        return out


def pb(module: str):
    """Import a generated module, e.g. pb('common.system_pb2')."""
    _generate()
    return importlib.import_module(module)


def _service(full_name: str):
    from google.protobuf import symbol_database
    pkg = full_name.rsplit(".", 1)[0]  # node.node_service
    pb(pkg + "_pb2")
    pool = symbol_database.Default().pool
    return pool.FindServiceByName(full_name)


def _cls(desc):
    from google.protobuf import symbol_database
    return symbol_database.Default().GetSymbol(desc.full_name)


class _Client:
    pass


def client(channel, full_name: str):
    """An object with one callable per RPC of the service (grpc multi-callables)."""
    svc = _service(full_name)
    c = _Client()
    for m in svc.methods:
        path = f"/{full_name}/{m.name}"
        req, resp = _cls(m.input_type), _cls(m.output_type)
        kind = {(False, False): channel.unary_unary, (False, True): channel.unary_stream,
                (True, False): channel.stream_unary, (True, True): channel.stream_stream}[
            (m.client_streaming, m.server_streaming)]
        setattr(c, m.name, kind(path, request_serializer=req.SerializeToString,
                                response_deserializer=resp.FromString))
    return c


def servicer(full_name: str, impl):
    """A generic handler serving every RPC that `impl` has a method for (same name)."""
    import grpc
    svc = _service(full_name)
    handlers = {}
    for m in svc.methods:
        fn = getattr(impl, m.name, None)
        if fn is None:
            continue
        req, resp = _cls(m.input_type), _cls(m.output_type)
        make = {(False, False): grpc.unary_unary_rpc_method_handler,
                (False, True): grpc.unary_stream_rpc_method_handler,
                (True, False): grpc.stream_unary_rpc_method_handler,
                (True, True): grpc.stream_stream_rpc_method_handler}[
            (m.client_streaming, m.server_streaming)]
        handlers[m.name] = make(fn, request_deserializer=req.FromString,
                                response_serializer=resp.SerializeToString)
    return grpc.method_handlers_generic_handler(full_name, handlers)
