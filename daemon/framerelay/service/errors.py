"""Catalogue errors over the wire: one translator for every servicer method, and its inverse.

The public message and hint travel as an ErrorInfo in the trailing metadata key
`framerelay-error-bin`; the status code comes from the catalogue. Unexpected exceptions are
logged with their traceback and reach the client only as INTERNAL with the catalogue's hint.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import grpc
import grpc.aio

from framerelay.errors import (
    CATALOG,
    DiskFullError,
    ErrorCode,
    FramerelayError,
    InternalError,
    UnauthenticatedError,
    UnavailableError,
    error_for_code,
    is_disk_full,
)
from framerelay.proto.v1 import errors_pb2

log = logging.getLogger(__name__)

ERROR_METADATA_KEY = "framerelay-error-bin"


def code_to_proto(code: ErrorCode) -> errors_pb2.ErrorCode.ValueType:
    return errors_pb2.ErrorCode.Value(f"ERROR_CODE_{code.value.upper()}")


def code_from_proto(value: errors_pb2.ErrorCode.ValueType) -> ErrorCode:
    name = errors_pb2.ErrorCode.Name(value).removeprefix("ERROR_CODE_").lower()
    return ErrorCode(name) if name in ErrorCode._value2member_map_ else ErrorCode.internal


def error_to_proto(error: FramerelayError) -> errors_pb2.ErrorInfo:
    return errors_pb2.ErrorInfo(
        code=code_to_proto(error.code), message=error.message, hint=error.hint
    )


def status_code(code: ErrorCode) -> grpc.StatusCode:
    return getattr(grpc.StatusCode, CATALOG[code].grpc_status)


async def abort(context: grpc.aio.ServicerContext, error: FramerelayError) -> None:
    info = error_to_proto(error)
    await context.abort(
        status_code(error.code),
        error.message,
        trailing_metadata=((ERROR_METADATA_KEY, info.SerializeToString()),),
    )


def public_error(error: Exception, where: str) -> FramerelayError:
    """The error a client may see; logs the traceback of anything unexpected."""
    if isinstance(error, FramerelayError):
        log.info("%s: %s", where, error.message)
        return error
    if is_disk_full(error):
        log.warning("%s: the disk is full (%s)", where, error)
        return DiskFullError(f"{where} failed: the disk is full.")
    log.exception("%s failed", where)
    return InternalError(f"{where} failed with an internal error ({type(error).__name__}).")


@asynccontextmanager
async def rpc_errors(context: grpc.aio.ServicerContext, where: str) -> AsyncIterator[None]:
    try:
        yield
    except grpc.aio.AbortError:
        raise
    except Exception as error:
        await abort(context, public_error(error, where))


def error_from_rpc(error: grpc.RpcError) -> FramerelayError:
    """The catalogue error behind a failed call (client side)."""
    call: grpc.Call = error
    for key, value in call.trailing_metadata() or ():
        if key == ERROR_METADATA_KEY:
            info = errors_pb2.ErrorInfo.FromString(value)
            return error_for_code(code_from_proto(info.code), info.message, info.hint or None)
    code, details = call.code(), call.details() or ""
    if code == grpc.StatusCode.UNAVAILABLE:
        return UnavailableError(f"cannot reach the daemon: {details}.")
    if code == grpc.StatusCode.UNAUTHENTICATED:
        return UnauthenticatedError(details)
    return InternalError(f"the call failed with {code.name}: {details}")
