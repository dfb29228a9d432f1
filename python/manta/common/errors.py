"""Errors a task sees (task-contract.md 10): MantaGRPCError carries the gRPC status (a
`grpc.StatusCode`; grpc itself is imported by the transport, at the first call)."""


class MantaError(Exception):
    """Any failure of the task runtime."""


class MantaGRPCError(MantaError):
    """A call to the node's light service ended with a non-OK gRPC status."""

    def __init__(self, method: str, status_code, details: str):
        self.method = method
        self.status_code = status_code
        self.details = details or ""
        super().__init__(f"{method} failed with gRPC status {status_code.name} "
                         f"({status_code.value[0]}): {self.details}")

    @property
    def code(self) -> int:
        return self.status_code.value[0]


class MantaConnectionError(MantaGRPCError):
    """The node's light service could not be reached (UNAVAILABLE after the retries)."""
