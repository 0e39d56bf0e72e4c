"""Write molecule (and atom) embeddings of a file's molecules with any MoleBlend checkpoint.

    python -m moleblend_plugin.embed CHECKPOINT --input molecules.csv --output embeddings.npz [--atoms]

Input: a CSV (--smiles-column), a .smi/.txt SMILES list, or an .sdf/.sdf.gz file, whose
coordinates are the 3D input of 3d and 2d+3d embeddings. The .npz holds, in input order,
`ids`, `smiles`, `error` ("" where the molecule was used), `graph_token` and `atom_mean`
[rows, hidden] (NaN rows for errors) and, with --atoms, `atoms`, `atomic_numbers` and
`atom_offsets` (see moleblend_plugin.embeddings.save_embeddings).
"""
import argparse
import os
import sys
from typing import List, Tuple

import numpy as np
from rdkit import Chem

from .embeddings import MoleculeEmbedder, save_embeddings
from .errors import run_command
from .model_run_options import add_model_run_arguments, start_command
from .predict import read_molecules

SDF_SUFFIXES = (".sdf", ".sdf.gz")


def read_sdf(path: str, id_property: str = "") -> Tuple[List[str], List[object], List[str]]:
    """(ids, molecules, smiles) of every record, in file order; a record RDKit cannot read
    keeps its row as None."""
    import gzip

    opened = gzip.open(path, "rb") if path.lower().endswith(".gz") else open(path, "rb")
    ids, molecules, smiles = [], [], []
    with opened as f:
        for number, mol in enumerate(Chem.ForwardSDMolSupplier(f, removeHs=False)):
            if mol is None:
                ids.append(str(number))
                molecules.append(None)
                smiles.append("")
                continue
            name = mol.GetProp(id_property) if id_property and mol.HasProp(id_property) else mol.GetProp("_Name")
            ids.append(name.strip() or str(number))
            molecules.append(mol)
            smiles.append(Chem.MolToSmiles(Chem.RemoveHs(mol, sanitize=False)))
    return ids, molecules, smiles


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m moleblend_plugin.embed",
        description="Embed the molecules of a file with a pretrained or fine-tuned MoleBlend checkpoint; "
                    "writes one .npz, rows in input order.")
    parser.add_argument("checkpoint", help="checkpoint of a moleblend_pretrain or moleblend_finetune run")
    parser.add_argument("--input", required=True, help="a .csv, a .smi/.smiles/.txt 'SMILES [name]' list, or an .sdf(.gz)")
    parser.add_argument("--output", required=True, help=".npz file to write")
    parser.add_argument("--atoms", action="store_true", help="also write every atom's state (atom-level embeddings)")
    parser.add_argument("--input-modality", default="", choices=["", "2d", "3d", "2d+3d"],
                        help="relations the encoder sees (default: a fine-tuned model's own, 2d for a pretrained one); "
                             "3D input comes from the SDF's coordinates or an RDKit conformer")
    parser.add_argument("--smiles-column", default="smiles", help="SMILES column of a CSV input (default smiles)")
    parser.add_argument("--id-column", default="", help="id column of a CSV input, or data field of an SDF "
                                                        "(default: row number / record title)")
    add_model_run_arguments(parser)
    parser.add_argument("--quiet", action="store_true", help="no summary line")
    return parser


def main(argv=None) -> int:
    args = make_parser().parse_args(argv)
    device = start_command(args.device)
    if args.input.lower().endswith(SDF_SUFFIXES):
        ids, molecules, smiles = read_sdf(args.input, args.id_column)
    else:
        ids, smiles = read_molecules(args.input, args.smiles_column, args.id_column)
        molecules = list(smiles)
    unreadable = {k: f"record {k} of {args.input} could not be read by RDKit"
                  for k, m in enumerate(molecules) if m is None}
    embedder = MoleculeEmbedder.from_checkpoint(args.checkpoint, args.input_modality, args.batch_size, device,
                                                args.conformer_seed)
    usable = [k for k in range(len(molecules)) if k not in unreadable]
    partial = embedder.embed([molecules[k] for k in usable], atoms=args.atoms)
    result = scatter(partial, usable, len(molecules), embedder.dim, unreadable)
    os.makedirs(os.path.dirname(os.path.abspath(args.output)), exist_ok=True)
    save_embeddings(args.output, ids, smiles, result)
    if not args.quiet:
        failed = sum(1 for e in result.errors if e)
        print(f"{len(ids)} molecules, {len(ids) - failed} embedded ({embedder.input_modality} input, "
              f"{embedder.dim} dimensions), {failed} with an error -> {args.output}", file=sys.stderr)
    return 0


def scatter(partial, rows: List[int], n: int, dim: int, errors_at: dict):
    """The embeddings of `rows` placed among n rows; the others hold NaN and their error."""
    from .embeddings import Embeddings

    graph = np.full((n, dim), np.nan, np.float32)
    mean = np.full((n, dim), np.nan, np.float32)
    graph[rows], mean[rows] = partial.graph_token, partial.atom_mean
    errors = [""] * n
    for k, text in errors_at.items():
        errors[k] = f"invalid_smiles: {text}"
    atoms = numbers = None
    if partial.atoms is not None:
        atoms, numbers = [None] * n, [None] * n
    for j, k in enumerate(rows):
        errors[k] = partial.errors[j]
        if atoms is not None:
            atoms[k], numbers[k] = partial.atoms[j], partial.atomic_numbers[j]
    return Embeddings(graph, mean, atoms, numbers, errors)


if __name__ == "__main__":
    sys.exit(run_command(main))
