"""Predict properties of molecules in a file with a fine-tuned checkpoint.

    python -m moleblend_plugin.predict CHECKPOINT --input molecules.csv --smiles-column smiles \\
        --output predictions.csv [--embeddings embeddings.npy]

Input: a CSV file (the SMILES in --smiles-column), or a .smi/.txt file with one molecule a
line ("SMILES" or "SMILES name"; every line is a row, blank lines included). Output: one
CSV row per input row, in input order: `id` (--id-column, the .smi name, or the row
number), `smiles` as given, one column per target (original units; the probability of
the positive class for classification) and `error`, the reason a molecule could not be
used (its prediction cells are then empty). --embeddings writes the molecule
representations as a float32 [rows, hidden] .npy array, NaN rows for errors.
See moleblend_plugin.inference for the Python API.
"""
import argparse
import csv
import os
import sys
from typing import List, Tuple

import numpy as np

from .errors import UserError, run_command
from .inference import MoleBlendPredictor
from .model_run_options import add_model_run_arguments, start_command

SMILES_LIST_SUFFIXES = (".smi", ".smiles", ".txt")


def read_molecules(path: str, smiles_column: str = "smiles", id_column: str = "") -> Tuple[List[str], List[str]]:
    """(ids, smiles) of every row of a CSV or SMILES-list file, in file order."""
    if path.lower().endswith(SMILES_LIST_SUFFIXES):
        ids, smiles = [], []
        with open(path, encoding="utf-8") as f:
            for number, line in enumerate(f.read().splitlines()):
                parts = line.split(maxsplit=1)
                smiles.append(parts[0] if parts else "")
                ids.append(parts[1].strip() if len(parts) > 1 else str(number))
        return ids, smiles
    # csv.reader, not DictReader: DictReader skips blank lines, and every line of the
    # input must have its row in the output.
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    if not rows:
        raise UserError(f"{path} is empty: expected a header line with a {smiles_column!r} column")
    columns = rows[0]
    for column in [smiles_column] + ([id_column] if id_column else []):
        if column not in columns:
            raise UserError(f"{path} has no column {column!r}; its columns are {columns}")
    at = {name: columns.index(name) for name in columns}

    def cell(row, column):
        return row[at[column]].strip() if at[column] < len(row) else ""

    smiles = [cell(row, smiles_column) for row in rows[1:]]
    ids = [cell(row, id_column) for row in rows[1:]] if id_column else [str(k) for k in range(len(rows) - 1)]
    return ids, smiles


def write_predictions(path: str, ids, smiles, names, values: np.ndarray, errors) -> None:
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(["id", "smiles"] + list(names) + ["error"])
        for k in range(len(ids)):
            cells = [""] * len(names) if errors[k] else [repr(float(v)) for v in values[k]]
            writer.writerow([ids[k], smiles[k]] + cells + [errors[k]])


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m moleblend_plugin.predict",
        description="Predict the targets of a fine-tuned MoleBlend checkpoint for the molecules of a file; "
                    "one output row per input row, in input order.")
    parser.add_argument("checkpoint", help="checkpoint of a moleblend_finetune run (e.g. checkpoint_best.pt)")
    parser.add_argument("--input", required=True,
                        help="a .csv file, or a .smi/.smiles/.txt file with one 'SMILES [name]' a line")
    parser.add_argument("--output", required=True, help="CSV to write: id, smiles, one column per target, error")
    parser.add_argument("--smiles-column", default="smiles", help="SMILES column of a CSV input (default smiles)")
    parser.add_argument("--id-column", default="", help="column of a CSV input copied to `id` (default: row number)")
    parser.add_argument("--embeddings", default="", help="also write the molecule embeddings to this .npy file")
    add_model_run_arguments(parser)
    parser.add_argument("--quiet", action="store_true", help="no progress bar and no summary")
    return parser


def main(argv=None) -> int:
    args = make_parser().parse_args(argv)
    device = start_command(args.device)
    ids, smiles = read_molecules(args.input, args.smiles_column, args.id_column)
    predictor = MoleBlendPredictor.from_checkpoint(args.checkpoint, args.batch_size, device, args.conformer_seed)
    result = predictor.run(smiles, progress=not args.quiet)
    os.makedirs(os.path.dirname(os.path.abspath(args.output)), exist_ok=True)
    write_predictions(args.output, ids, smiles, predictor.target_names, result.predictions, result.errors)
    if args.embeddings:
        np.save(args.embeddings, result.embeddings)
    if not args.quiet:
        failed = sum(1 for e in result.errors if e)
        print(f"{len(ids)} rows, {len(ids) - failed} predicted, {failed} with an error -> {args.output}",
              file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(run_command(main))
