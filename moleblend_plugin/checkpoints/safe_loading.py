"""Loading fairseq checkpoints under torch >= 2.6 without turning `weights_only` off.

torch.load now refuses pickled globals it does not know. A fairseq checkpoint holds,
besides tensors, its training configuration (an argparse Namespace for models defined
with add_args, plain containers otherwise) and a few numpy scalars in its extra state.
These classes are allow-listed, and nothing else.
"""
import argparse
import collections
import importlib
import os

import numpy as np
import torch

def _numpy_multiarray():
    """numpy's multiarray module under this numpy's own name (numpy 2 renamed `numpy.core`
    to `numpy._core` and warns on the old name)."""
    try:
        return importlib.import_module("numpy._core.multiarray")
    except ImportError:  # numpy 1.x
        return importlib.import_module("numpy.core.multiarray")


_MULTIARRAY = _numpy_multiarray()
SAFE_CHECKPOINT_GLOBALS = [
    argparse.Namespace,
    collections.OrderedDict,
    collections.defaultdict,
    np.dtype,
    np.ndarray,
    _MULTIARRAY.scalar,
    _MULTIARRAY._reconstruct,
    type(np.dtype(np.float64)),
    type(np.dtype(np.float32)),
    type(np.dtype(np.int64)),
]
# A pickle names a global by the module it was written under: numpy 1.x writes
# `numpy.core.multiarray`, numpy 2.x `numpy._core.multiarray`. Both names are allowed.
SAFE_CHECKPOINT_GLOBALS += [(function, f"numpy.{core}.multiarray.{function.__name__}")
                            for core in ("core", "_core")
                            for function in (_MULTIARRAY.scalar, _MULTIARRAY._reconstruct)]


def allow_checkpoint_globals() -> None:
    """Register the classes above with torch's weights-only unpickler (idempotent)."""
    add = getattr(torch.serialization, "add_safe_globals", None)
    if add is not None:
        add(SAFE_CHECKPOINT_GLOBALS)


def load_checkpoint_file(path: str):
    """torch.load a fairseq checkpoint on CPU with the weights-only unpickler; a missing,
    empty or truncated file is an error that names it."""
    allow_checkpoint_globals()
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path}: no such checkpoint file")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except (EOFError, RuntimeError):
        if os.path.getsize(path) == 0 or not _looks_whole(path):
            raise ValueError(f"{path}: not a whole checkpoint ({os.path.getsize(path)} bytes; empty or "
                             "truncated, e.g. by a kill while saving)") from None
        raise


def _looks_whole(path: str) -> bool:
    from .recovery import is_intact

    return is_intact(path)
