"""framerelay's client for host plugins: the daemon's HTTP/JSON API with the standard library only.

Vendored into each plugin (`scripts/vendor-client`); it imports nothing but the standard library
and itself (relatively), so it runs in Blender's, Resolve's or any Python 3.11–3.13.

    from framerelay_client import Client, job_spec, JobView, reduce

    client = Client.discover()
    job = client.submit(job_spec("/clips/a.mov", ["/edits/a.png"], in_frame=0, out_frame=48,
                                 fps="24000/1001"))["job"]
    view = JobView.from_job(job)
    for event in client.watch(job["id"]):
        view = reduce(view, event)
"""

from .api import DaemonApi, is_terminal
from .discovery import Discovery, config_dir, read_discovery
from .errors import (
    Busy,
    Cancelled,
    ClientError,
    DaemonNotRunning,
    DaemonUnreachable,
    DiskFull,
    EditUnreadable,
    Forbidden,
    Internal,
    InvalidSpec,
    ModelMissing,
    NotFound,
    OutOfMemory,
    SourceUnreadable,
    Unauthenticated,
    Unavailable,
    error_from_reply,
)
from .events import JobView, PresetChoice, describe, reduce
from .fake import CacheEntry, FakeDaemon, Script, Stalled
from .http import Client
from .spec import job_defaults, job_spec

__version__ = "0.1.0"
__all__ = [
    "Busy",
    "CacheEntry",
    "Cancelled",
    "Client",
    "ClientError",
    "DaemonApi",
    "DaemonNotRunning",
    "DaemonUnreachable",
    "Discovery",
    "DiskFull",
    "EditUnreadable",
    "FakeDaemon",
    "Forbidden",
    "Internal",
    "InvalidSpec",
    "JobView",
    "ModelMissing",
    "NotFound",
    "OutOfMemory",
    "PresetChoice",
    "Script",
    "SourceUnreadable",
    "Stalled",
    "Unauthenticated",
    "Unavailable",
    "config_dir",
    "describe",
    "error_from_reply",
    "is_terminal",
    "job_defaults",
    "job_spec",
    "read_discovery",
    "reduce",
]
