"""Third-party code carried by the extension: the framerelay client package, copied verbatim
from `daemon/framerelay_client/` by `scripts/vendor-client` (never edit it here)."""
