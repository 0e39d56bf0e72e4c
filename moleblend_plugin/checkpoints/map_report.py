"""What a checkpoint key map did: the report, and the errors it raises."""
from dataclasses import dataclass, field
from typing import List, Tuple


class CheckpointLayoutError(ValueError):
    """The state dict is not a layout this loader knows, or a key in it is not."""


class CheckpointMismatchError(ValueError):
    """Keys that map but cannot be loaded: mis-shaped tensors or a different depth."""

    def __init__(self, message: str, report: "MapReport"):
        super().__init__(message)
        self.report = report


@dataclass
class MapReport:
    layout: str
    matched: List[str] = field(default_factory=list)  # same name in checkpoint and model
    renamed: List[Tuple[str, str]] = field(default_factory=list)  # checkpoint key -> model key
    converted: List[Tuple[str, str, str]] = field(default_factory=list)  # checkpoint keys, model key, how
    missing: List[str] = field(default_factory=list)  # model keys nothing provided: initialised fresh
    unexpected: List[Tuple[str, str]] = field(default_factory=list)  # checkpoint key, why it was dropped
    mis_shaped: List[Tuple[str, str, tuple, tuple]] = field(default_factory=list)  # key, model key, shapes
    notes: List[str] = field(default_factory=list)  # functional differences the user should know of

    @property
    def loaded(self) -> List[str]:
        """Model keys that received a tensor from the checkpoint."""
        return self.matched + [t for _, t in self.renamed] + [t for _, t, _ in self.converted]

    def format(self, max_keys: int = 20) -> str:
        """A multi-line summary for the log; long key lists are cut after `max_keys`."""

        def block(title, rows):
            lines = [f"  {title}: {len(rows)}"]
            lines += [f"    {row}" for row in rows[:max_keys]]
            if len(rows) > max_keys:
                lines.append(f"    ... and {len(rows) - max_keys} more")
            return lines

        lines = [f"checkpoint layout '{self.layout}': {len(self.loaded)} model keys loaded, "
                 f"{len(self.unexpected)} checkpoint keys dropped"]
        lines += block("matched", self.matched)
        lines += block("renamed", [f"{s} -> {t}" for s, t in self.renamed])
        lines += block("converted", [f"{s} -> {t} ({how})" for s, t, how in self.converted])
        lines += block("missing (initialised fresh)", self.missing)
        lines += block("unexpected (dropped)", [f"{', '.join(_modules(keys))}: {why}"
                                                for why, keys in _by_reason(self.unexpected).items()])
        lines += block("mis-shaped", [f"{k} -> {t}: checkpoint {tuple(a)} vs model {tuple(b)}"
                                      for k, t, a, b in self.mis_shaped])
        lines += [f"  note: {note}" for note in self.notes]
        return "\n".join(lines)


def _by_reason(rows):
    groups = {}
    for key, why in rows:
        groups.setdefault(why, []).append(key)
    return groups


def _modules(keys):
    """Parameter keys shortened to their modules, in order, without repeats."""
    names = [k.rsplit(".", 1)[0] if k.endswith((".weight", ".bias")) else k for k in keys]
    return list(dict.fromkeys(names))
