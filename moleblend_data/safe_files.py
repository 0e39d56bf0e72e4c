"""Files a build writes, created without following links: a symbolic link planted at a
temporary path (or at the journal) must never make a build write through it."""
from __future__ import annotations

import os


class UnsafePath(OSError):
    """A path a build writes to is a symbolic link or not a regular file."""


def refuse_link(path: str) -> None:
    """UnsafePath when `path` exists as a symbolic link."""
    if os.path.islink(path):
        raise UnsafePath(f"{path} is a symbolic link; a build does not write through links (remove it)")


def create_new(path: str, mode: str = "w", **open_kwargs):
    """Open `path` for writing as a new regular file: whatever is there (a file, a link) is
    removed first (the link, never its target), then the file is created exclusively,
    without following links, so a link planted in between fails the call."""
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o644)
    return os.fdopen(fd, mode, **open_kwargs)


def open_regular(path: str, mode: str, **open_kwargs):
    """Open an existing-or-new file (e.g. the journal, appended to across resumed builds),
    refusing a symbolic link at `path`."""
    flags = {"ab": os.O_WRONLY | os.O_APPEND | os.O_CREAT, "rb": os.O_RDONLY,
             "r+b": os.O_RDWR}[mode]
    try:
        fd = os.open(path, flags | getattr(os, "O_NOFOLLOW", 0), 0o644)
    except OSError as error:
        if os.path.islink(path):
            raise UnsafePath(f"{path} is a symbolic link; a build does not write through links (remove it)") from None
        raise error
    return os.fdopen(fd, mode, **open_kwargs)
