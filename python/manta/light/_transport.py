"""The connection to the node's light service: environment (task-contract.md 2), one gRPC
channel per client object (3), calls with the SDK's retry policy (10).

Transport: python3-grpcio, insecure (h2c) channel, no message size limits, no deadline, no
metadata. Retryable statuses (UNAVAILABLE, RESOURCE_EXHAUSTED, ABORTED, DEADLINE_EXCEEDED) are
tried 3 times in all (0.2 s, then 0.4 s back-off, +0-20 % jitter); a server stream that already
delivered data is never retried (its chunks would be mixed with the retry's). Client streams are
re-sent in full on a retry (the SDK would send an empty stream).
"""
import logging
import os
import random
import time
import uuid
from dataclasses import dataclass

import grpc

from manta.common.errors import MantaConnectionError, MantaGRPCError
from manta._proto.common import system_pb2

log = logging.getLogger("manta.light")

DEFAULT_HOST = "host.docker.internal"
DEFAULT_PORT = "50051"
OPTIONS = [("grpc.max_receive_message_length", -1), ("grpc.max_send_message_length", -1)]
RETRYABLE = {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.RESOURCE_EXHAUSTED,
             grpc.StatusCode.ABORTED, grpc.StatusCode.DEADLINE_EXCEEDED}
ATTEMPTS = 3
FIRST_DELAY = 0.2


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


def pair(v: int) -> system_pb2.PairId:
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
    def from_env(cls, host=None, port=None, task_id=None, swarm_id=None) -> "Config":
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


class Channel:
    """One lazily opened gRPC channel and the three call shapes the light API uses."""

    def __init__(self, config: Config):
        self.config = config
        self._channel = None
        self._calls = {}

    def _callable(self, kind: str, path: str, request_cls, response_cls):
        key = (kind, path)
        if key not in self._calls:
            if self._channel is None:
                self._channel = grpc.insecure_channel(self.config.target, options=OPTIONS)
            self._calls[key] = getattr(self._channel, kind)(
                path, request_serializer=request_cls.SerializeToString,
                response_deserializer=response_cls.FromString)
        return self._calls[key]

    def close(self):
        if self._channel is not None:
            self._channel.close()
            self._channel = None
            self._calls = {}

    def _retrying(self, path: str, attempt_fn):
        delay = FIRST_DELAY
        for attempt in range(1, ATTEMPTS + 1):
            try:
                return attempt_fn()
            except _Partial as p:
                raise _error(path, p.error) from None
            except grpc.RpcError as e:
                if e.code() in RETRYABLE and attempt < ATTEMPTS:
                    log.warning("%s: %s (%s), attempt %d of %d; retrying in %.1f s", path,
                                e.code().name, e.details(), attempt, ATTEMPTS, delay)
                    time.sleep(delay * (1 + 0.2 * random.random()))
                    delay *= 2
                    continue
                raise _error(path, e) from None

    def unary(self, path: str, request, response_cls):
        call = self._callable("unary_unary", path, type(request), response_cls)
        return self._retrying(path, lambda: call(request))

    def client_stream(self, path: str, requests: list, response_cls):
        call = self._callable("stream_unary", path, type(requests[0]), response_cls)
        return self._retrying(path, lambda: call(iter(requests)))

    def server_stream(self, path: str, request, response_cls) -> list:
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
        return self._retrying(path, attempt)


class _Partial(Exception):
    """A server stream failed after some data: not retried."""

    def __init__(self, error):
        self.error = error


def _error(path: str, e: grpc.RpcError) -> MantaGRPCError:
    cls = MantaConnectionError if e.code() == grpc.StatusCode.UNAVAILABLE else MantaGRPCError
    return cls(path, e.code(), e.details())
