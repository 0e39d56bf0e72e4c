"""Keep freed memory in the process on CPUs (glibc's malloc).

glibc hands a block above 32 MB back to the system as soon as it is freed, and trims the
top of its heap past a threshold; a training step's tensors of the same sizes then come
back the next step as fresh pages, each faulted in on first touch. A `moleblend_small`
step (batch 128, 26 atoms) took tens of thousands of page faults, and the step ran 0.85x
as long once they were gone (docs/pretraining.md, "Speed"). `keep_freed_memory` asks
glibc to serve every allocation from its heap and never to trim it, as a GPU's caching
allocator keeps its blocks: the process's resident memory stays at its peak.
"""
import ctypes
import logging
import platform

logger = logging.getLogger(__name__)

# glibc's mallopt parameters (malloc.h)
M_TRIM_THRESHOLD = -1
M_MMAP_MAX = -4
# the largest trim threshold mallopt takes (an int): 2 GiB
NEVER_TRIM = (1 << 31) - 1


def keep_freed_memory() -> bool:
    """Set glibc's malloc to keep what is freed; False where the C library is not glibc."""
    if platform.system() != "Linux":
        return False
    try:
        mallopt = ctypes.CDLL("libc.so.6").mallopt
    except (OSError, AttributeError):  # musl and other C libraries
        return False
    mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    return bool(mallopt(M_MMAP_MAX, 0)) and bool(mallopt(M_TRIM_THRESHOLD, NEVER_TRIM))
