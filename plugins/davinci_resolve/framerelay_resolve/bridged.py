"""`BridgeHost`: the operations of `live.LiveHost`, performed by the Lua bridge in Resolve.

Each operation is one request through the mailbox (`vendor/framerelay_client/resolve_bridge.py`);
the bridge answers with the same dicts `LiveHost` returns. Capabilities come from the version the
bridge reports (Lua has no `dir()`).
"""

from __future__ import annotations

from typing import Any

from .capabilities import Capabilities
from .vendor.framerelay_client.resolve_bridge import BridgeClient

OPERATIONS = (
    "describe",
    "items_at",
    "selected",
    "current_item",
    "find_item",
    "takes_status",
    "import_take",
    "discard_take",
    "place_take",
    "ping",
    "quit",
)


class BridgeHost:
    def __init__(self, client: BridgeClient) -> None:
        self.client = client
        self._capabilities: Capabilities | None = None

    def capabilities(self, item: Any = None) -> Capabilities:
        if self._capabilities is None:
            answer = self.client.call("ping")
            self._capabilities = Capabilities.from_version(answer["product"], answer["version"])
        return self._capabilities

    def __getattr__(self, name: str):
        if name not in OPERATIONS:
            raise AttributeError(name)

        def operation(**args: Any) -> dict[str, Any]:
            return self.client.call(name, args) or {}

        operation.__name__ = name
        return operation
