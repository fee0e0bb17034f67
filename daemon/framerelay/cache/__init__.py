"""Content-addressed cache of engine artifacts (trained LoRAs, inversions). Torch-free.

An entry is a directory of files under `root/<key[:2]>/<key>/`, committed atomically (temp dir +
rename) with a `meta.json` written last; `cache_key` derives the key from everything that determines
the artifact.
"""

from framerelay.cache.keys import cache_key, hash_frames
from framerelay.cache.size import format_size, parse_size
from framerelay.cache.store import ArtifactCache, Entry, default_cache_root

__all__ = [
    "ArtifactCache",
    "Entry",
    "cache_key",
    "default_cache_root",
    "format_size",
    "hash_frames",
    "parse_size",
]
