"""Compile a C file of this folder into a shared library once per machine and load it.

The library goes to $MOLEBLEND_NATIVE_CACHE (default ~/.cache/moleblend/native), named by
the hash of its source and compile command, written under a temporary name and renamed,
so that processes starting together (data-parallel workers) never load a half-written
file. MOLEBLEND_NATIVE=0 turns the kernels off. Without a C compiler, or if compiling
fails, `load_library` returns None once with a logged reason, and callers use PyTorch.
"""
import ctypes
import hashlib
import logging
import os
import shutil
import subprocess
import tempfile
from typing import Dict, Optional

logger = logging.getLogger(__name__)

SOURCE_DIR = os.path.dirname(os.path.abspath(__file__))
# OpenMP: the library's threads come from the libgomp that torch has already loaded.
COMPILE_FLAGS = ("-O3", "-fopenmp", "-shared", "-fPIC", "-std=gnu11")

_loaded: Dict[str, Optional[ctypes.CDLL]] = {}


def enabled() -> bool:
    return os.environ.get("MOLEBLEND_NATIVE", "1") != "0"


def cache_dir() -> str:
    return os.environ.get("MOLEBLEND_NATIVE_CACHE") or os.path.join(
        os.path.expanduser("~"), ".cache", "moleblend", "native")


def compiler() -> Optional[str]:
    return os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")


def load_library(source_name: str) -> Optional[ctypes.CDLL]:
    """The compiled `source_name` (a .c file of this folder), or None where it cannot be had."""
    if source_name not in _loaded:
        _loaded[source_name] = _build_and_load(source_name) if enabled() else None
    return _loaded[source_name]


def _build_and_load(source_name: str) -> Optional[ctypes.CDLL]:
    cc = compiler()
    if cc is None:
        logger.warning("no C compiler (cc, gcc or $CC) found: %s runs in its PyTorch form", source_name)
        return None
    source = os.path.join(SOURCE_DIR, source_name)
    with open(source, "rb") as f:
        key = hashlib.sha256(f.read() + " ".join((cc,) + COMPILE_FLAGS).encode()).hexdigest()[:16]
    target = os.path.join(cache_dir(), f"{os.path.splitext(source_name)[0]}-{key}.so")
    try:
        if not os.path.exists(target):
            os.makedirs(cache_dir(), exist_ok=True)
            fd, partial = tempfile.mkstemp(suffix=".so", dir=cache_dir())
            os.close(fd)
            try:
                logger.info("compiling %s into %s", source_name, target)
                subprocess.run([cc, *COMPILE_FLAGS, "-o", partial, source], check=True, capture_output=True, text=True)
                os.replace(partial, target)
            finally:
                if os.path.exists(partial):
                    os.remove(partial)
        return ctypes.CDLL(target)
    except subprocess.CalledProcessError as error:
        reason = (error.stderr or "").strip().splitlines()[-1:] or [f"exit status {error.returncode}"]
        logger.warning("compiling %s failed (%s): it runs in its PyTorch form", source_name, reason[0])
    except OSError as error:
        logger.warning("building or loading %s failed (%s): it runs in its PyTorch form", source_name, error)
    return None
