"""The token every call must carry: `authorization: Bearer <token>`, over gRPC and HTTP alike.

Tokens are compared in constant time (hashes of equal length, `hmac.compare_digest`). Failed
attempts are counted per peer address: each is logged (at most once per `LOG_EVERY_S` seconds per
peer, with a count) and, past `FREE_FAILURES` in `WINDOW_S` seconds, answered only after a delay
that doubles with every further failure. A right token is never delayed, so nobody can lock the
user's own clients out by failing on purpose.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import threading
import time
from collections import deque
from collections.abc import Callable

import grpc
import grpc.aio
from google.protobuf.message import DecodeError

from framerelay.errors import InvalidSpecError, UnauthenticatedError
from framerelay.proto.v1 import errors_pb2
from framerelay.service.discovery import new_token
from framerelay.service.errors import ERROR_METADATA_KEY, abort

log = logging.getLogger(__name__)

HEADER = "authorization"
SCHEME = "Bearer "
WINDOW_S = 60.0
FREE_FAILURES = 5
FIRST_DELAY_S = 0.1
MAX_DELAY_S = 2.0
LOG_EVERY_S = 10.0
MAX_PEERS = 1024  # peers remembered; the oldest are forgotten first


def bearer(token: str) -> str:
    return SCHEME + token


def digest(text: str) -> bytes:
    return hashlib.sha256(text.encode("utf-8", "surrogateescape")).digest()


def check_token(header: str | None, token: str) -> None:
    """Raises UnauthenticatedError unless `header` is `Bearer <token>`; constant time."""
    if not header:
        raise UnauthenticatedError("the call carries no token.")
    if not hmac.compare_digest(digest(header), digest(bearer(token))):
        raise UnauthenticatedError("the call's token is wrong.")


class FailureLog:
    """Failed authentications per peer: logs them sparingly and says how long to stall each."""

    def __init__(self, clock: Callable[[], float] = time.monotonic):
        self._clock = clock
        self._failures: dict[str, deque[float]] = {}
        self._logged: dict[str, float] = {}
        self._lock = threading.Lock()

    def record(self, peer: str, reason: str) -> float:
        """Counts one failure; returns the seconds to wait before answering it."""
        with self._lock:
            now = self._clock()
            times = self._failures.pop(peer, deque())
            times.append(now)
            while times[0] < now - WINDOW_S:
                times.popleft()
            self._failures[peer] = times  # most recent peers last
            if len(self._failures) > MAX_PEERS:
                oldest = next(iter(self._failures))
                del self._failures[oldest]
                self._logged.pop(oldest, None)
            count = len(times)
            if now - self._logged.get(peer, -LOG_EVERY_S) >= LOG_EVERY_S:
                self._logged[peer] = now
                log.warning(
                    "authentication failed from %s: %s (%d failure(s) in the last %.0f s)",
                    peer,
                    reason,
                    count,
                    WINDOW_S,
                )
        excess = count - FREE_FAILURES
        return 0.0 if excess <= 0 else min(MAX_DELAY_S, FIRST_DELAY_S * 2 ** min(excess - 1, 8))


class Authenticator:
    """The daemon's current token, shared by both transports; replaced when it may have leaked."""

    def __init__(self, token: str | None = None, failures: FailureLog | None = None):
        self._token = token or new_token()
        self._retired: list[str] = []
        self.failures = failures or FailureLog()

    @property
    def token(self) -> str:
        return self._token

    def secrets(self) -> tuple[str, ...]:
        """Every token this daemon has used, for scrubbing logs."""
        return (self._token, *self._retired)

    def rotate(self) -> str:
        self._retired.append(self._token)
        self._token = new_token()
        return self._token

    def check(self, header: str | None) -> None:
        check_token(header, self._token)

    def refused(self, peer: str, error: UnauthenticatedError) -> float:
        """Records a refusal; returns the seconds to wait before answering it."""
        return self.failures.record(peer, error.message)


def peer_host(peer: str) -> str:
    """The address part of a gRPC peer such as `ipv4:127.0.0.1:5050` or `ipv6:[::1]:5050`."""
    kind, _, rest = peer.partition(":")
    if kind == "ipv6" and rest.startswith("["):
        return rest[1 : rest.find("]")]
    if kind == "ipv4":
        return rest.rpartition(":")[0]
    return peer


class TokenInterceptor(grpc.aio.ServerInterceptor):
    """Refuses calls without the token, and answers undecodable requests INVALID_ARGUMENT."""

    def __init__(self, auth: Authenticator):
        self._auth = auth

    async def intercept_service(self, continuation, handler_call_details):
        handler = await continuation(handler_call_details)
        if handler is None:
            return None
        metadata = dict(handler_call_details.invocation_metadata or ())
        header = metadata.get(HEADER)
        try:
            self._auth.check(header if isinstance(header, str) else None)
        except UnauthenticatedError as error:
            return denial(handler, error, self._auth)
        return decoding(handler, handler_call_details.method.rpartition("/")[2], self._auth)


def replaced(handler: grpc.RpcMethodHandler, behavior) -> grpc.RpcMethodHandler:
    """`handler` with `behavior`, taking the request as raw bytes."""
    make = (
        grpc.unary_stream_rpc_method_handler
        if handler.response_streaming
        else grpc.unary_unary_rpc_method_handler
    )
    return make(behavior, response_serializer=handler.response_serializer)


def denial(
    handler: grpc.RpcMethodHandler, error: UnauthenticatedError, auth: Authenticator
) -> grpc.RpcMethodHandler:
    async def deny(request: bytes, context: grpc.aio.ServicerContext) -> None:
        await asyncio.sleep(auth.refused(peer_host(context.peer()), error))
        await abort(context, error)

    return replaced(handler, deny)


class ScrubbingContext:
    """A servicer context whose errors never carry a token, even one the client sent in a field
    that an error message quotes."""

    def __init__(self, context: grpc.aio.ServicerContext, auth: Authenticator):
        self._context = context
        self._auth = auth

    def __getattr__(self, name: str):
        return getattr(self._context, name)

    def _scrub(self, text: str) -> str:
        for secret in self._auth.secrets():
            text = text.replace(secret, "[token]")
        return text

    async def abort(self, code, details: str = "", trailing_metadata=()):
        trailers = []
        for key, value in trailing_metadata or ():
            if key == ERROR_METADATA_KEY:
                info = errors_pb2.ErrorInfo.FromString(value)
                info.message, info.hint = self._scrub(info.message), self._scrub(info.hint)
                value = info.SerializeToString()
            trailers.append((key, value))
        await self._context.abort(code, self._scrub(details), trailing_metadata=tuple(trailers))


def decoding(
    handler: grpc.RpcMethodHandler, method: str, auth: Authenticator
) -> grpc.RpcMethodHandler:
    """Decodes the request itself, so that bad bytes are INVALID_ARGUMENT, not UNKNOWN, and
    hands the servicer a context that scrubs tokens from errors."""
    if handler.request_streaming:
        return handler
    parse = handler.request_deserializer

    async def decode(raw: bytes, context: grpc.aio.ServicerContext):
        try:
            return parse(raw) if parse is not None else raw
        except (DecodeError, ValueError, RuntimeError) as error:
            await abort(
                context,
                InvalidSpecError(
                    f"the request is not a valid {method}Request message ({error}).",
                    "Send the message the .proto files define, serialized by protobuf.",
                ),
            )

    if handler.response_streaming:

        async def stream(raw: bytes, context: grpc.aio.ServicerContext):
            request = await decode(raw, context)
            async for response in handler.unary_stream(request, ScrubbingContext(context, auth)):
                yield response

        return replaced(handler, stream)

    async def unary(raw: bytes, context: grpc.aio.ServicerContext):
        request = await decode(raw, context)
        return await handler.unary_unary(request, ScrubbingContext(context, auth))

    return replaced(handler, unary)
