"""Checkpoint files that survive a kill at any moment.

fairseq writes the first checkpoint of a save atomically (to a temporary name, then a
rename) but copies it to the others (`checkpoint_last.pt`, `checkpoint_best.pt`) with a
plain copy: a kill during the copy leaves a truncated file, and the same command then fails
to resume. Before fairseq loads the file it resumes from, the tasks check it and, when it
is damaged, put the newest intact checkpoint of the folder in its place (atomically).
"""
from __future__ import annotations

import glob
import logging
import os
import shutil
import zipfile

from moleblend_data.safe_files import create_new

logger = logging.getLogger(__name__)


class DamagedCheckpoint(ValueError):
    """A checkpoint file that is empty, truncated or not a checkpoint; names the file."""


def is_intact(path: str) -> bool:
    """True when `path` is a whole torch checkpoint: a zip archive whose central directory
    (written last) is readable and lists the pickled object. A file cut short by a kill
    has no central directory."""
    try:
        with zipfile.ZipFile(path) as archive:
            return any(name.endswith("data.pkl") for name in archive.namelist())
    except (OSError, zipfile.BadZipFile, EOFError, ValueError):
        return False


def repair_restore_file(save_dir: str, restore_file: str = "checkpoint_last.pt") -> str | None:
    """When the checkpoint a run resumes from exists but is damaged, replace it with the newest
    intact checkpoint of `save_dir` and return that checkpoint's path (None when nothing
    needed repair). DamagedCheckpoint when no intact checkpoint is left."""
    path = restore_file if os.path.isabs(restore_file) else os.path.join(save_dir, restore_file)
    if not os.path.exists(path) or is_intact(path):
        return None
    candidates = [p for p in glob.glob(os.path.join(save_dir, "checkpoint*.pt"))
                  if os.path.abspath(p) != os.path.abspath(path) and is_intact(p)]
    if not candidates:
        raise DamagedCheckpoint(f"{path} is damaged (a save was interrupted) and {save_dir} holds no intact "
                                "checkpoint to resume from; delete it to start over")
    newest = max(candidates, key=os.path.getmtime)
    with open(newest, "rb") as source, create_new(path + ".repair", "wb") as target:
        shutil.copyfileobj(source, target)
        target.flush()
        os.fsync(target.fileno())
    os.replace(path + ".repair", path)
    logger.warning("%s was damaged (a save was interrupted); resuming from %s, the newest intact checkpoint",
                   path, os.path.basename(newest))
    return newest
