"""Validation results out of fairseq's `--log-format json` output: one line per epoch while
a run goes, and the whole curve from its log file afterwards."""
from __future__ import annotations

import json
import time
from typing import Callable, List, Optional, Tuple


def valid_stats(line: str) -> Optional[dict]:
    """The stats of a validation line of fairseq's json log format, else None.

    Such a line is `{"epoch": 3, "valid_loss": "0.51", "valid_rmse": "1.02", ...}`, written
    after a `... | valid | ` prefix on stdout and alone in --log-file."""
    start = line.find("{")
    if start < 0 or '"valid_' not in line:
        return None
    try:
        stats = json.loads(line[start:])
    except json.JSONDecodeError:
        return None
    return stats if isinstance(stats, dict) else None


def read_valid_curve(log_file: str, metric: str) -> Tuple[List[int], List[int], List[float]]:
    """(epochs, updates, values) of valid_<metric> in a fairseq json log file."""
    epochs, updates, values = [], [], []
    try:
        with open(log_file, encoding="utf-8") as f:
            lines = f.readlines()
    except FileNotFoundError:
        return epochs, updates, values
    seen = set()
    for line in lines:
        stats = valid_stats(line)
        if stats and f"valid_{metric}" in stats:
            # logs written without the plugin's fix repeat epoch k's record k times (log_file_once)
            key = (stats.get("epoch"), stats.get("valid_num_updates"))
            if key in seen:
                continue
            seen.add(key)
            epochs.append(int(stats.get("epoch", 0)))
            updates.append(int(stats.get("valid_num_updates", 0)))
            values.append(float(stats[f"valid_{metric}"]))
    return epochs, updates, values


class EpochProgress:
    """Prints `epoch 3/50: valid rmse 1.0200 (best 0.9800), 12 s` (or `update ...`) for each validation line fed."""

    def __init__(self, metric: str, total: int, say: Callable[[str], None], unit: str = "epoch",
                 step_key: str = "epoch"):
        self.metric, self.total, self.say = metric, total, say
        self.unit, self.step_key = unit, step_key
        self.started = time.monotonic()

    def feed(self, line: str) -> None:
        stats = valid_stats(line)
        if not stats or f"valid_{self.metric}" not in stats:
            return
        value = float(stats[f"valid_{self.metric}"])
        best = stats.get(f"valid_best_{self.metric}")
        best_text = f" (best {float(best):.4f})" if best is not None else ""
        self.say(f"{self.unit} {stats.get(self.step_key, '?')}/{self.total}: valid {self.metric} {value:.4f}{best_text}, "
                 f"{time.monotonic() - self.started:.0f} s")
