"""The connection to the node's light service: environment (task-contract.md 2), one gRPC
channel per client object (3), calls with the SDK's retry policy (10), and the `async_*` forms.

Transport: python3-grpcio, insecure (h2c) channel, no message size limits, no deadline; the only
metadata is AddTaskResult's request id (below). Retryable statuses (UNAVAILABLE, RESOURCE_EXHAUSTED, ABORTED, DEADLINE_EXCEEDED) are
tried 3 times in all (0.2 s, then 0.4 s back-off, +0-20 % jitter); a server stream that already
delivered data is never retried (its chunks would be mixed with the retry's). Client streams are
re-sent in full on a retry (the SDK would send an empty stream). Better than the SDK where the
node is away (restarting, or relaying to a manager that is): a call that could not connect, or
a read cut off by a broken connection (read again from the start), is tried again for up to
NODE_AWAY seconds. So is a call that is safe to repeat (a read; SetGlobal, which overwrites)
when the node lost the manager in the middle of relaying it (a manager restart): the node
reports that with a non-retryable status (INTERNAL, DATA_LOSS) because the SDK cannot repeat a
stream, but this runtime repeats the whole call. AddTaskResult appends, so each call carries a
request id (metadata `manta-request-id`, one per call, the same on every repeat), which the node
passes on and this project's manager stores with the result: a repeat is answered Ok and stored
once. (A manager that ignores the id would keep a repeat as a second row of the same node and
round; GetTaskResult returns a node's newest row, so reads are unchanged.)

grpc and the generated protobuf modules are imported at the first call, not at
`import manta.light`: a task's start-up does not pay for them before it talks to the node
(bench/README.md, "Task start-up").
"""
import logging
import os
import random
import time
import uuid
from dataclasses import dataclass

log = logging.getLogger("manta.light")

DEFAULT_HOST = "host.docker.internal"
DEFAULT_PORT = "50051"
OPTIONS = [("grpc.max_receive_message_length", -1), ("grpc.max_send_message_length", -1),
           # the node is on this host: after a failed connection, try again within a second
           # (gRPC's default back-off grows to 2 minutes), see NODE_AWAY. Not
           # grpc.min_reconnect_backoff_ms: gRPC also takes it as the minimum time a connection
           # attempt gets (default 20 s); at 200 ms a node slow to answer the handshake (a
           # loaded machine, this process busy copying a large value) was never reached.
           ("grpc.initial_reconnect_backoff_ms", 200), ("grpc.max_reconnect_backoff_ms", 1000),
           # No retries inside gRPC (this module retries, below): grpcio 1.51's retry layer holds
           # a call forever, with no connection and no attempt to make one, when the channel went
           # idle on the node's GOAWAY (the light service closes a connection idle for 1 s) and
           # the node is then away (a restart): the call never returns (docs/faults.md).
           ("grpc.enable_retries", 0)]
# grpc.StatusCode names the SDK retries (task-contract.md 10).
RETRYABLE = ("UNAVAILABLE", "RESOURCE_EXHAUSTED", "ABORTED", "DEADLINE_EXCEEDED")
ATTEMPTS = 3
FIRST_DELAY = 0.2
# A call that could not even connect (the node is away: restarting, it adopts its running tasks
# and serves them on the same port) never reached the node, so it is safe to try again for
# longer than the SDK's 3 attempts: up to NODE_AWAY seconds, every 0.2 s doubling to 1 s.
NODE_AWAY = 30.0
NODE_AWAY_MAX_DELAY = 1.0
_first_call_logged = False


def parse_id(value, name: str) -> int:
    """A 128-bit id from the environment: int(s, 16); unset or empty -> a random uuid4 (as the
    SDK does, silently). The SDK hashes a non-hex string with BLAKE3; that fallback is not
    implemented here (a node always passes hex), such a value is refused."""
    if value is None or value == "":
        return uuid.uuid4().int
    if isinstance(value, int):
        v = value
    else:
        try:
            v = int(value, 16)
        except ValueError:
            raise ValueError(f"{name}={value!r} is not a hexadecimal id (this runtime does not "
                             "implement the SDK's BLAKE3 fallback for other strings)") from None
    if not 0 <= v < 1 << 128:
        raise ValueError(f"{name}={value!r} is not a 128-bit id")
    return v


def id_hex(v: int) -> str:
    """The SDK's formatter: lowercase hex, padded with one leading zero only (so 32 characters
    for most ids, shorter when the top byte is 0)."""
    h = format(v, "x")
    return h if len(h) == 32 else "0" + h


def pair(v: int):
    from manta._proto.common import system_pb2
    return system_pb2.PairId(head=v >> 64, tail=v & ((1 << 64) - 1))


def unpair(p) -> int:
    return (p.head << 64) | p.tail


@dataclass
class Config:
    host: str
    port: int
    task_id: int
    swarm_id: int

    @classmethod
    def from_env(cls, host=None, port=None, swarm_id=None, task_id=None) -> "Config":
        """The SDK's order of arguments: host, port, swarm_id, task_id; each falls back to
        RPC_HOST, RPC_PORT, SWARM_ID, TASK_ID."""
        if host is None:
            host = os.environ.get("RPC_HOST", DEFAULT_HOST)
        if host == "":
            host = "localhost"
        if port is None:
            port = os.environ.get("RPC_PORT", DEFAULT_PORT)
        port = int(port)  # ValueError on "" or non-numeric, as the SDK
        if task_id is None:
            task_id = os.environ.get("TASK_ID")
        if swarm_id is None:
            swarm_id = os.environ.get("SWARM_ID")
        return cls(host, port, parse_id(task_id, "TASK_ID"), parse_id(swarm_id, "SWARM_ID"))

    @property
    def target(self) -> str:
        h = self.host
        if ":" in h and not h.startswith("["):
            h = f"[{h}]"
        return f"{h}:{self.port}"

    def describe(self) -> str:
        return (f"Host: {self.host}, Port: {self.port}, Task ID: {id_hex(self.task_id)}, "
                f"Swarm ID: {id_hex(self.swarm_id)}")


# The node's words when the manager failed after part of a call was relayed (light_world.c).
MANAGER_LOST = "manager failed after data was relayed"


def _manager_lost(e) -> bool:
    """The node lost the manager in the middle of relaying the call (it restarted)."""
    d = (e.details() or "") if hasattr(e, "details") else ""
    return e.code().name in ("INTERNAL", "DATA_LOSS") and MANAGER_LOST in d


def _not_connected(e) -> bool:
    """The call failed before it reached the node: no connection could be made, or the node
    had closed the connection (GOAWAY: it closes one idle for 1 s) as the call started on it, so
    the node never saw the call (gRPC's own retries, which would repeat it, are off)."""
    d = (e.details() or "") if hasattr(e, "details") else ""
    return e.code().name == "UNAVAILABLE" and (
        "failed to connect to all addresses" in d or "Connection refused" in d
        or "GOAWAY received" in d)


class Channel:
    """One lazily opened gRPC channel and the three call shapes the light API uses. Thread-safe
    (grpcio channels are): the `async_*` methods run these calls on the event loop's executor,
    several at once on the same connection."""

    def __init__(self, config: Config):
        self.config = config
        self._channel = None
        self._calls = {}

    def _callable(self, kind: str, path: str, request_cls, response_cls):
        key = (kind, path)
        call = self._calls.get(key)
        if call is None:
            if self._channel is None:
                import grpc
                self._channel = grpc.insecure_channel(self.config.target, options=OPTIONS)
                _log_first_call()
            call = self._calls[key] = getattr(self._channel, kind)(
                path, request_serializer=request_cls.SerializeToString,
                response_deserializer=response_cls.FromString)
        return call

    def close(self):
        if self._channel is not None:
            self._channel.close()
            self._channel = None
            self._calls = {}

    def _retrying(self, path: str, attempt_fn, repeatable: bool = False):
        import grpc
        delay = FIRST_DELAY
        away_since, away_delay = None, FIRST_DELAY
        attempt = 1
        while attempt <= ATTEMPTS:
            try:
                return attempt_fn()
            except (_Partial, grpc.RpcError) as failure:
                partial = isinstance(failure, _Partial)
                e = failure.error if partial else failure
                # A read cut off by the node going away (UNAVAILABLE after data: the connection
                # broke) is read again from the start: every server stream is a read, and an
                # attempt keeps its own messages.
                if (_not_connected(e) or (partial and e.code().name == "UNAVAILABLE")
                        or (repeatable and _manager_lost(e))):
                    now = time.monotonic()
                    away_since = away_since if away_since is not None else now
                    if now - away_since < NODE_AWAY:
                        if away_delay == FIRST_DELAY:
                            log.warning("%s: the node's light service is not answering (%s); "
                                        "trying again for up to %.0f s", path, e.details(),
                                        NODE_AWAY - (now - away_since))
                        time.sleep(away_delay * (1 + 0.2 * random.random()))
                        away_delay = min(away_delay * 2, NODE_AWAY_MAX_DELAY)
                        continue
                if partial:
                    raise _error(path, e) from None
                if e.code().name in RETRYABLE and attempt < ATTEMPTS:
                    log.warning("%s: %s (%s), attempt %d of %d; retrying in %.1f s", path,
                                e.code().name, e.details(), attempt, ATTEMPTS, delay)
                    time.sleep(delay * (1 + 0.2 * random.random()))
                    delay *= 2
                    attempt += 1
                    continue
                raise _error(path, e) from None

    def unary(self, path: str, request, response_cls):
        call = self._callable("unary_unary", path, type(request), response_cls)
        return self._retrying(path, lambda: call(request))

    def client_stream(self, path: str, requests: list, response_cls, repeatable: bool = False,
                      metadata=None):
        """`repeatable`: the call may be made twice with the same effect (SetGlobal; an
        AddTaskResult with a request id in `metadata`)."""
        call = self._callable("stream_unary", path, type(requests[0]), response_cls)
        return self._retrying(path, lambda: call(iter(requests), metadata=metadata), repeatable)

    def server_stream(self, path: str, request, response_cls) -> list:
        import grpc
        call = self._callable("unary_stream", path, type(request), response_cls)

        def attempt():
            got = []
            try:
                for m in call(request):
                    got.append(m)
            except grpc.RpcError as e:
                if got:
                    raise _Partial(e) from None
                raise
            return got
        return self._retrying(path, attempt, repeatable=True)  # every server stream is a read


def process_age():
    """Seconds since this process started (/proc/self/stat, clock-tick resolution), or None."""
    try:
        with open("/proc/self/stat") as f:
            started = int(f.read().rsplit(")", 1)[1].split()[19]) / os.sysconf("SC_CLK_TCK")
        return time.clock_gettime(time.CLOCK_BOOTTIME) - started
    except (OSError, ValueError, IndexError, AttributeError):
        return None


def _log_first_call():
    """Once per process: how long the task took to reach its first light-service call (the
    interpreter, the imports, the task's own set-up); bench/torch_round.py reads it."""
    global _first_call_logged
    if _first_call_logged:
        return
    _first_call_logged = True
    age = process_age()
    if age is not None:
        log.info("first light-service call %.3f s after the process started", age)


async def run_async(fn, *args, **kwargs):
    """The `async_*` form of a synchronous call: run on the loop's default executor, so that
    several calls of one task proceed at once (on one connection per client, as the SDK)."""
    import asyncio
    import functools
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(None, functools.partial(fn, *args, **kwargs))


class _Partial(Exception):
    """A server stream failed after some data: not retried."""

    def __init__(self, error):
        self.error = error


def _error(path: str, e):
    from manta.common.errors import MantaConnectionError, MantaGRPCError
    cls = MantaConnectionError if e.code().name == "UNAVAILABLE" else MantaGRPCError
    return cls(path, e.code(), e.details())
