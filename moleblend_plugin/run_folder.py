"""One training run per folder: a rerun resumes the same run or starts clean, never a mix.

fairseq resumes from `checkpoint_last.pt` in --save-dir whatever flags it is given, and
appends to the log. A folder therefore records the command that trains into it
(`run_config.json`); `prepare_run_folder` compares the command of a rerun with it:

- no checkpoint yet: "new" (a stale log or record is removed);
- a checkpoint of the same command: "resume", or "done" when the run finished;
- a checkpoint of another command: refused, naming the flags that differ;
- overwrite=True: checkpoints, logs and results removed, "new".
"""
from __future__ import annotations

import json
import os
from typing import Callable, Dict, List, Sequence

from .errors import UserError

RECORD = "run_config.json"
DONE = "run_done.json"
# What a run leaves in its folder (besides the record): removed to start clean.
RUN_FILES = ("checkpoint_last.pt", "checkpoint_best.pt", "train.log", "stdout.log", "stdout.txt", "test.json", DONE)


def _flags(command: Sequence[str]) -> Dict[str, str]:
    """{flag: value} of a command line ("" for switches, positional arguments under their position)."""
    flags, key = {}, None
    for position, word in enumerate(command):
        if word.startswith("--"):
            name, _, value = word.partition("=")
            flags[name] = value
            key = None if value else name
        elif key is not None:
            flags[key] = word
            key = None
        else:
            flags[f"argument {position}"] = word
    return flags


def differing_flags(old: Sequence[str], new: Sequence[str]) -> List[str]:
    a, b = _flags(old), _flags(new)
    return sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))


def _checkpoint_updates(path: str) -> str:
    try:
        from .checkpoints.safe_loading import load_checkpoint_file

        updates = load_checkpoint_file(path)["optimizer_history"][-1]["num_updates"]
        return f"update {updates}"
    except Exception:  # only informative
        return "update unknown"


def prepare_run_folder(run_dir: str, command: Sequence[str], overwrite: bool = False,
                       say: Callable[[str], None] = print) -> str:
    """Get `run_dir` ready for `command`; returns "new", "resume" or "done" (see the module)."""
    os.makedirs(run_dir, exist_ok=True)
    record = os.path.join(run_dir, RECORD)
    has_checkpoint = os.path.exists(os.path.join(run_dir, "checkpoint_last.pt"))
    previous = json.load(open(record, encoding="utf-8")) if os.path.exists(record) else None
    if overwrite:
        removed = [name for name in RUN_FILES if os.path.exists(os.path.join(run_dir, name))]
        for name in removed:
            os.remove(os.path.join(run_dir, name))
        if removed:
            say(f"starting clean in {run_dir} (--overwrite removed {', '.join(removed)})")
    elif has_checkpoint:
        if previous is None:
            raise UserError(f"{run_dir} holds a checkpoint_last.pt of an unknown command; fairseq would resume "
                            "from it: remove it, choose another folder, or pass --overwrite to start clean")
        if list(previous) != list(command):
            raise UserError(f"{run_dir} holds a run of another command (differing: "
                            f"{', '.join(differing_flags(previous, command))}); pass --overwrite to start clean "
                            "or another output folder")
        if os.path.exists(os.path.join(run_dir, DONE)):
            return "done"
        say(f"resuming {run_dir} from checkpoint_last.pt ({_checkpoint_updates(os.path.join(run_dir, 'checkpoint_last.pt'))})")
        return "resume"
    else:
        for name in RUN_FILES:  # a log or result without a checkpoint belongs to no run that can resume
            if os.path.exists(os.path.join(run_dir, name)):
                os.remove(os.path.join(run_dir, name))
    with open(record, "w", encoding="utf-8") as f:
        json.dump(list(command), f, indent=1)
    return "new"


def mark_done(run_dir: str) -> None:
    """Record that the run of this folder finished (a rerun of its command is then "done")."""
    with open(os.path.join(run_dir, DONE), "w", encoding="utf-8") as f:
        json.dump({"done": True}, f)
