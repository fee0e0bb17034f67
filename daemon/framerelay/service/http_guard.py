"""What every HTTP request must pass before its token is even looked at.

* `Host` names a loopback address (or `localhost`) with the daemon's port. A web page that
  rebinds its own DNS name to 127.0.0.1 still sends its own name, and is refused.
* A request with an `Origin` header comes from a web page: refused unless that exact origin is
  listed in `allowed_origins` (config.toml). Nothing ever answers with a wildcard CORS header.
* No query string: the token belongs in the `Authorization` header, never in a URL (URLs end up
  in histories, proxies and logs).
* The JSON body nests at most `MAX_JSON_DEPTH` levels, so parsing cannot exhaust the stack.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

from framerelay.errors import ForbiddenError, InvalidSpecError
from framerelay.service.config import is_loopback

MAX_JSON_DEPTH = 32
_JSON_TOKENS = re.compile(r'"(?:[^"\\]|\\.)*"?|[\[\]{}]', re.DOTALL)
_QUERY = re.compile(r"\?\S*")
HOST_HINT = (
    "Call the daemon by its loopback address, as in the discovery file's http_url. A web page "
    "that renamed itself to 127.0.0.1 (DNS rebinding) lands here."
)


def is_ip_literal(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def split_host(value: str) -> tuple[str, int]:
    """`name:port` or `[v6]:port` -> (name, port); port 80 when absent."""
    value = value.strip().lower()
    if value.startswith("["):
        end = value.find("]")
        if end < 0:
            raise ValueError(value)
        host, rest = value[1:end], value[end + 1 :]
        if rest and not rest.startswith(":"):
            raise ValueError(value)
        port = rest[1:]
    else:
        host, _, port = value.partition(":")
    if port and not (port.isascii() and port.isdigit()):
        raise ValueError(value)
    return host, int(port) if port else 80


def json_depth(text: str, limit: int = MAX_JSON_DEPTH) -> int:
    """How deep `text` nests arrays and objects, counting up to `limit + 1` at most."""
    depth = deepest = 0
    for match in _JSON_TOKENS.finditer(text):
        token = match.group()
        if token in "[{":
            depth += 1
            deepest = max(deepest, depth)
            if deepest > limit:
                break
        elif token in "]}":
            depth -= 1
    return deepest


def without_query(text: str) -> str:
    """`text` with any URL query string cut out, for logs."""
    return _QUERY.sub("?…", text)


@dataclass(frozen=True)
class HttpGuard:
    port: int
    allowed_origins: frozenset[str] = frozenset()
    allowed_hosts: frozenset[str] = frozenset()  # names, lower case
    remote: bool = False  # --allow-remote: any IP address is a valid Host too

    def check_host(self, header: str | None) -> None:
        if not header:
            raise ForbiddenError("the request has no single Host header.", HOST_HINT)
        try:
            host, port = split_host(header)
        except ValueError:
            raise ForbiddenError("the request's Host header is malformed.", HOST_HINT) from None
        known = (
            is_loopback(host) or host in self.allowed_hosts or (self.remote and is_ip_literal(host))
        )
        if not known or port != self.port:
            raise ForbiddenError(
                f"the request's Host {header[:100]!r} is not this daemon "
                f"(127.0.0.1:{self.port} or localhost:{self.port}).",
                HOST_HINT,
            )

    def allows_origin(self, origin: str) -> bool:
        return origin.lower().rstrip("/") in self.allowed_origins

    def check_origin(self, origin: str | None) -> None:
        """No Origin: not a browser. A browser sends one with every POST."""
        if origin is not None and not self.allows_origin(origin):
            raise ForbiddenError(f"requests from the web page {origin[:100]!r} are refused.")

    @staticmethod
    def check_target(path: str) -> None:
        if "?" in path:
            raise InvalidSpecError(
                "the URL has a query string; the API takes none.",
                "POST to /v1/<Method> and send the token in the Authorization header "
                "(`Authorization: Bearer <token>`), never in the URL.",
            )

    @staticmethod
    def check_json(text: str) -> None:
        if json_depth(text) > MAX_JSON_DEPTH:
            raise InvalidSpecError(
                f"the JSON body nests deeper than {MAX_JSON_DEPTH} levels.",
                "Send the request message as the .proto files define it; none nests that deep.",
            )
