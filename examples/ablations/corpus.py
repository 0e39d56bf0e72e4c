"""The pretraining corpus of the ablation study: a fixed subset of MOSES with RDKit conformers.

    bash examples/ablations/build_corpus.sh DEST [DATA]
    python examples/ablations/corpus.py DEST [DATA] [--rows N] [--workers N] [--dry-run]

DATA is the folder `scripts/fetch_datasets.sh` fills (default $MOLEBLEND_DATA, else
~/.cache/moleblend/datasets); the input is DATA/moses/train.csv.gz (MOSES' training
SMILES, one column `SMILES`, 1,584,663 rows, in the file's own order).

The corpus: the first 50,000 rows of that file (the file's own order, not a sample:
nothing to seed, and MOSES' order is already mixed), featurized by
`python -m data_prep csv` with heavy atoms, one RDKit conformer per molecule (ETKDGv3 +
MMFF94, seeded with 0 plus the row number), molecules without a conformer rejected, and a
random 90 / 5 / 5 split seeded with 0. The conformer time limit is 60 s rather than
data_prep's 10: it is wall-clock time, and a molecule that needs a few seconds on a quiet
machine could pass 10 s on a busy one and come out differently; every other choice is a
function of the input. So two builds give the same records in the same shards (the test
compares the records' sha256), with any number of workers.

A DEST that holds a finished build of the same recipe is left as it is; one of another
recipe is an error. A build that was killed resumes where it stopped.
"""
from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
from typing import List, Optional

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, REPO)

from moleblend_data.shards import file_sha256  # noqa: E402

ROWS = 50_000
SEED = 0
NUM_CONFORMERS = 1
CONFORMER_TIMEOUT_S = 60
SPLIT_FRACTIONS = (0.9, 0.05, 0.05)
MOSES_FILE = os.path.join("moses", "train.csv.gz")


def default_data_dir() -> str:
    """Where scripts/fetch_datasets.sh puts the datasets by default."""
    return os.environ.get("MOLEBLEND_DATA") or os.path.join(os.path.expanduser("~"), ".cache", "moleblend", "datasets")


def moses_input(data: str) -> str:
    return os.path.join(data, MOSES_FILE)


def prep_command(dest: str, data: str, rows: int = ROWS, workers: int = 1) -> List[str]:
    """The data_prep command that builds the corpus."""
    return [sys.executable, "-m", "data_prep", "csv", "--input", os.path.abspath(moses_input(data)),
            "--smiles-column", "SMILES", "--limit", str(rows), "--conformers", str(NUM_CONFORMERS),
            "--conformer-timeout", str(CONFORMER_TIMEOUT_S), "--on-conformer-failure", "reject",
            "--seed", str(SEED), "--split", "random", "--split-fractions", ",".join(map(str, SPLIT_FRACTIONS)),
            "--workers", str(workers), "--output", os.path.abspath(dest)]


def recipe_differences(manifest: dict, data: str, rows: int = ROWS) -> List[str]:
    """How a built dataset's manifest differs from this recipe (empty when it is this corpus)."""
    source, featurize, split = manifest.get("source", {}), manifest.get("featurization", {}), manifest.get("split", {})
    wanted = {
        "source type": ("csv", source.get("type")),
        "rows (--limit)": (rows, source.get("limit")),
        "conformers": (NUM_CONFORMERS, featurize.get("num_conformers")),
        "seed": (SEED, featurize.get("seed")),
        "conformer time limit": (float(CONFORMER_TIMEOUT_S), featurize.get("conformer_timeout_s")),
        "hydrogens": (False, featurize.get("with_hydrogens")),
        "split": ({"method": "random", "fractions": list(SPLIT_FRACTIONS), "seed": SEED},
                  {k: split.get(k) for k in ("method", "fractions", "seed")}),
    }
    files = source.get("files") or [{}]
    if os.path.exists(moses_input(data)):
        wanted["input file sha256"] = (file_sha256(moses_input(data)), files[0].get("sha256"))
    return [f"{name}: {got!r}, the recipe says {want!r}" for name, (want, got) in wanted.items() if want != got]


def build_corpus(dest: str, data: str, rows: int = ROWS, workers: int = 1, dry_run: bool = False,
                 say=print) -> Optional[dict]:
    """Build the corpus in `dest` (or find it built there); returns its manifest (None in a dry run)."""
    command = prep_command(dest, data, rows, workers)
    manifest_path = os.path.join(dest, "manifest.json")
    if os.path.exists(manifest_path):
        with open(manifest_path, encoding="utf-8") as f:
            manifest = json.load(f)
        differences = recipe_differences(manifest, data, rows)
        if differences:
            raise SystemExit(f"error: {dest} holds a dataset of another recipe ({'; '.join(differences)}); "
                             "give another folder or remove it")
        say(f"# the corpus is already built in {dest}: {manifest['num_molecules']} molecules")
        return manifest
    if dry_run:
        say("+ " + shlex.join(command))
        return None
    if not os.path.exists(moses_input(data)):
        raise SystemExit(f"error: no {moses_input(data)}; fetch the datasets with: bash scripts/fetch_datasets.sh {data}")
    say("+ " + shlex.join(command))
    subprocess.run(command, cwd=REPO, check=True)
    with open(manifest_path, encoding="utf-8") as f:
        return json.load(f)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("dest", help="folder of the built corpus")
    parser.add_argument("data", nargs="?", default=default_data_dir(),
                        help="folder holding moses/train.csv.gz (default: $MOLEBLEND_DATA or ~/.cache/moleblend/datasets)")
    parser.add_argument("--rows", type=int, default=ROWS, help=f"first rows of the MOSES file to take (default {ROWS})")
    parser.add_argument("--workers", type=int, default=1, help="data_prep worker processes (default 1; the records "
                                                                "do not depend on it)")
    parser.add_argument("--dry-run", action="store_true", help="print the command, build nothing")
    args = parser.parse_args(argv)
    build_corpus(args.dest, args.data, args.rows, args.workers, args.dry_run)
    return 0


if __name__ == "__main__":
    sys.exit(main())
