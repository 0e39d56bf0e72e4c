"""Compile a C file of this folder into a shared library once per machine and load it.

The library goes to $MOLEBLEND_NATIVE_CACHE (default ~/.cache/moleblend/native), named by
the hash of its source, its compile command and what the compiler builds for, written
under a temporary name and renamed, so that processes starting together (data-parallel
workers) never load a half-written file. MOLEBLEND_NATIVE=0 (or false, no, off) turns
the kernels off. Without a C compiler, or if compiling fails, `load_library` returns None
once with a logged reason, and callers use PyTorch.
"""
import ctypes
import hashlib
import logging
import os
import platform
import shlex
import shutil
import subprocess
import tempfile
from typing import Dict, List, Optional

logger = logging.getLogger(__name__)

SOURCE_DIR = os.path.dirname(os.path.abspath(__file__))
# OpenMP: where torch's wheel ships libgomp under its own soname (libgomp.so.1, as the
# x86-64 CPU wheels do), the library's threads come from the runtime torch has loaded.
# -fno-fast-math: compilers that default to fast math would fold the exp's rounding step.
COMPILE_FLAGS = ("-O3", "-fno-fast-math", "-fopenmp", "-shared", "-fPIC", "-std=gnu11")
OFF = ("0", "false", "no", "off")

_loaded: Dict[str, Optional[ctypes.CDLL]] = {}


def enabled() -> bool:
    return os.environ.get("MOLEBLEND_NATIVE", "1").strip().lower() not in OFF


def cache_dir() -> str:
    return os.environ.get("MOLEBLEND_NATIVE_CACHE") or os.path.join(
        os.path.expanduser("~"), ".cache", "moleblend", "native")


def compiler() -> Optional[List[str]]:
    """The C compiler's command ($CC may hold several words, e.g. `ccache gcc`), or None."""
    if os.environ.get("CC"):
        return shlex.split(os.environ["CC"])
    found = shutil.which("cc") or shutil.which("gcc")
    return [found] if found else None


def load_library(source_name: str) -> Optional[ctypes.CDLL]:
    """The compiled `source_name` (a .c file of this folder), or None where it cannot be had."""
    if source_name not in _loaded:
        _loaded[source_name] = _build_and_load(source_name) if enabled() else None
    return _loaded[source_name]


def _target_of(cc: List[str]) -> str:
    """What the compiler builds for (machine and version), part of the cache key: nodes of
    other architectures or compilers sharing a home folder each get their own build."""
    words = [platform.machine()]
    for flag in ("-dumpmachine", "--version"):
        try:
            result = subprocess.run([*cc, flag], capture_output=True, text=True, timeout=30)
            words.append(result.stdout.strip().splitlines()[0] if result.stdout.strip() else "")
        except (OSError, subprocess.SubprocessError):
            words.append("")
    return " ".join(words)


def _compile(cc: List[str], source: str, target: str) -> None:
    os.makedirs(os.path.dirname(target), exist_ok=True)
    fd, partial = tempfile.mkstemp(suffix=".so", dir=os.path.dirname(target))
    os.close(fd)
    try:
        logger.info("compiling %s into %s", os.path.basename(source), target)
        subprocess.run([*cc, *COMPILE_FLAGS, "-o", partial, source], check=True, capture_output=True, text=True)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(partial, 0o755 & ~umask)  # mkstemp's 0600 would keep others sharing the cache out
        os.replace(partial, target)
    finally:
        if os.path.exists(partial):
            os.remove(partial)


def _build_and_load(source_name: str) -> Optional[ctypes.CDLL]:
    cc = compiler()
    if cc is None:
        logger.warning("no C compiler (cc, gcc or $CC) found: %s runs in its PyTorch form", source_name)
        return None
    try:
        source = os.path.join(SOURCE_DIR, source_name)
        with open(source, "rb") as f:
            key = hashlib.sha256(f.read() + " ".join([*cc, *COMPILE_FLAGS, _target_of(cc)]).encode()).hexdigest()[:16]
        target = os.path.join(cache_dir(), f"{os.path.splitext(source_name)[0]}-{key}.so")
        if not os.path.exists(target):
            _compile(cc, source, target)
        try:
            return ctypes.CDLL(target)
        except OSError:  # a damaged file in the cache: built once more
            _compile(cc, source, target)
            return ctypes.CDLL(target)
    except subprocess.CalledProcessError as error:
        lines = [line for line in (error.stderr or "").splitlines() if "error" in line.lower()] or \
                (error.stderr or "").strip().splitlines() or [f"exit status {error.returncode}"]
        logger.warning("compiling %s failed (%s): it runs in its PyTorch form", source_name, lines[0].strip())
    except OSError as error:
        logger.warning("building or loading %s failed (%s): it runs in its PyTorch form", source_name, error)
    return None
