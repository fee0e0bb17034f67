"""The token every call must carry: `authorization: Bearer <token>`, over gRPC and HTTP alike."""

from __future__ import annotations

import hmac

import grpc
import grpc.aio

from framerelay.errors import UnauthenticatedError
from framerelay.service.errors import abort

HEADER = "authorization"
SCHEME = "Bearer "


def bearer(token: str) -> str:
    return SCHEME + token


def check_token(header: str | None, token: str) -> None:
    """Raises UnauthenticatedError unless `header` is `Bearer <token>`."""
    if not header:
        raise UnauthenticatedError("the call carries no token.")
    if not hmac.compare_digest(header.encode(), bearer(token).encode()):
        raise UnauthenticatedError("the call's token is wrong.")


class TokenInterceptor(grpc.aio.ServerInterceptor):
    def __init__(self, token: str):
        self._token = token

    async def intercept_service(self, continuation, handler_call_details):
        handler = await continuation(handler_call_details)
        metadata = dict(handler_call_details.invocation_metadata or ())
        try:
            check_token(metadata.get(HEADER), self._token)
        except UnauthenticatedError as error:
            return denial(handler, error) if handler is not None else None
        return handler


def denial(handler: grpc.RpcMethodHandler, error: UnauthenticatedError) -> grpc.RpcMethodHandler:
    async def deny(request, context: grpc.aio.ServicerContext) -> None:
        await abort(context, error)

    make = (
        grpc.unary_stream_rpc_method_handler
        if handler.response_streaming
        else grpc.unary_unary_rpc_method_handler
    )
    return make(
        deny,
        request_deserializer=handler.request_deserializer,
        response_serializer=handler.response_serializer,
    )
