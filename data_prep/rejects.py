"""rejects.csv: one line per input row that did not become a record."""
from __future__ import annotations

import csv
import os
from collections import Counter

from moleblend_data.safe_files import create_new

REJECTS_FILE = "rejects.csv"
COLUMNS = ["row", "id", "reason", "detail", "smiles"]


def write_rejects(output_dir: str, rejects: list[dict]) -> dict[str, int]:
    """Write the rejects sorted by row (atomically); return reason -> count."""
    rejects = sorted(rejects, key=lambda r: r["row"])
    path = os.path.join(output_dir, REJECTS_FILE)
    with create_new(path + ".tmp", "w", encoding="utf-8", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=COLUMNS, lineterminator="\n")
        writer.writeheader()
        for reject in rejects:
            writer.writerow({c: reject.get(c, "") for c in COLUMNS})
    os.replace(path + ".tmp", path)
    return dict(sorted(Counter(r["reason"] for r in rejects).items()))


def read_rejects(output_dir: str) -> list[dict]:
    with open(os.path.join(output_dir, REJECTS_FILE), encoding="utf-8", newline="") as f:
        return [{**r, "row": int(r["row"])} for r in csv.DictReader(f)]
