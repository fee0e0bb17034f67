"""Host memory for tensor work: glibc's malloc tuned so that freed activations stay in the process.

By default glibc gives memory back to the kernel as soon as it is freed: blocks above a dynamic
mmap threshold are unmapped, and the top of the heap is trimmed once more than twice that
threshold is free. A UNet call on the CPU frees most of what it allocated, so the next call
faults the same activations in again, page by page, zero-filled by the kernel. Measured on the
CPU benchmark (medium UNet, 14 frames at 128x224): about 85,000 page faults per matched editing
step and up to 8 % of a run's CPU time in the kernel, more for the editing loop than for the
diffusers pipeline run before it in the same process, because how much is trimmed depends on what
else lives in the heap. Fixing both thresholds keeps up to `TRIM_THRESHOLD` of freed memory for the
next call: no page faults after the first call.

Values do not depend on this: torch allocates every CPU tensor 64-byte aligned (c10's alloc_cpu)
whatever malloc returns, so the kernels and their rounding are the same.
"""

from __future__ import annotations

import ctypes
import logging
import sys

log = logging.getLogger(__name__)

M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # <malloc.h>
MMAP_THRESHOLD = 32 * 2**20  # glibc's largest: blocks up to 32 MiB come from the heap
TRIM_THRESHOLD = 256 * 2**20  # free memory kept at the top of the heap

_tuned = False


def tune_host_allocator() -> bool:
    """Fix glibc's mmap and trim thresholds for this process (once); False where malloc is not
    glibc's (macOS, Windows, musl), where nothing is changed."""
    global _tuned
    if _tuned:
        return True
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.gnu_get_libc_version  # noqa: B018 - glibc only
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    _tuned = mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD) == 1
    _tuned = mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD) == 1 and _tuned
    log.debug("glibc malloc thresholds %s", "fixed" if _tuned else "left as they were")
    return _tuned
