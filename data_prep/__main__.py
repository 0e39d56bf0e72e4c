"""Command line: python -m data_prep SOURCE --output DIR [options]."""
from __future__ import annotations

import argparse
import logging
import sys
import time

from moleblend_data.featurize import REJECT_REASONS, FeaturizeOptions

from moleblend_data.safe_files import UnsafePath
from moleblend_data.shards import verify_dataset

from .build import BuildLocked, BuildOptions, build
from .sources.base import InputError
from .sources import (PRESETS, CsvSource, OgbMoleculeSource, Pcqm4mv2Source, Qm9Source, SdfSource, TargetSpec,
                      moleculenet_source, ogb_datasets)
from .sources.qm9 import TEST_SIZE, VALID_SIZE


def _names(text: str) -> list[str]:
    return [n.strip() for n in text.split(",") if n.strip()] if text else []


def _fractions(text: str) -> tuple:
    try:
        values = tuple(float(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: give three numbers: train,valid,test") from None
    if len(values) != 3 or any(not 0 <= v <= 1 for v in values) or abs(sum(values) - 1) > 1e-6:
        raise argparse.ArgumentTypeError(f"{text!r}: give three fractions between 0 and 1 that sum to 1")
    return values


def _at_least(minimum: int):
    """An argparse type: an integer >= minimum, refused at parse time otherwise."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"{value} is below {minimum}")
        return value
    parse.__name__ = f"integer >= {minimum}"
    return parse


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"{value} is not above 0")
    return value


def common_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    group = common.add_argument_group("output and build")
    group.add_argument("--output", required=True, help="folder of the prepared dataset")
    group.add_argument("--workers", type=_at_least(1), default=1, help="worker processes (default 1)")
    group.add_argument("--shard-size", type=_at_least(1), default=50_000, help="molecules per LMDB shard (default 50000)")
    group.add_argument("--overwrite", action="store_true", help="replace a finished dataset in --output")
    group.add_argument("--limit", type=_at_least(0), default=0, help="only the first N input rows (default 0: all)")
    group.add_argument("--quiet", action="store_true", help="no progress bar")
    group = common.add_argument_group("featurization")
    group.add_argument("--with-hydrogens", action="store_true",
                       help="hydrogens are graph nodes (default: heavy atoms only)")
    group.add_argument("--conformers", type=_at_least(0), default=1,
                       help="RDKit conformers per molecule without a source geometry; 0 = 2D-only "
                            "dataset (default 1)")
    group.add_argument("--conformer-timeout", type=_positive_float, default=10.0,
                       help="seconds of conformer generation per molecule (default 10)")
    group.add_argument("--on-conformer-failure", choices=["reject", "2d"], default="reject",
                       help="when no conformer is found: reject the molecule, or keep it with 2D "
                            "depiction coordinates (z = 0, geometry 'fallback_2d') (default reject)")
    group.add_argument("--max-atoms", type=_at_least(0), default=0,
                       help="reject molecules with more graph atoms (default 0 = no limit)")
    group.add_argument("--largest-fragment", action="store_true",
                       help="keep only the largest fragment of salts and mixtures (default: whole molecule)")
    group.add_argument("--seed", type=_at_least(0), default=0,
                       help="seed of conformers (plus the row number), of random splits and of folds (default 0)")
    return common


def label_arguments(p: argparse.ArgumentParser) -> None:
    """Units and task type of the labels of a generic (csv, sdf) source."""
    p.add_argument("--target-units", type=_names, default=[], help="comma-separated units, one per target")
    p.add_argument("--task-type", choices=["auto", "classification", "regression"], default="auto",
                   help="auto: classification when every label is 0 or 1 (default auto)")


DEFAULT_FRACTIONS = (0.8, 0.1, 0.1)


def split_arguments(parser, default: str, field: str) -> None:
    """The split flags of a generic source; `field` is "column" (csv) or "property" (sdf)."""
    group = parser.add_argument_group("split")
    group.add_argument("--split", choices=["random", "scaffold"], default=default,
                       help=f"random (seeded) or Bemis-Murcko scaffold split (default {default}); with "
                            f"--split-{field} or --valid-input/--test-input, only how --folds are formed "
                            "(scaffold: whole scaffold groups per fold)")
    group.add_argument("--split-fractions", type=_fractions, default=None,
                       help="train,valid,test fractions of --split random/scaffold (default 0.8,0.1,0.1)")
    group.add_argument(f"--split-{field}", default=None, metavar="NAME",
                       help=f"{field} holding each molecule's split: train, valid or test (any case, spaces "
                            "around ignored; any other value is an error). A split without molecules stays "
                            "empty: with train and test only, valid is empty unless --folds is given")
    group.add_argument("--valid-input", default=None, metavar="FILE",
                       help="file of the valid molecules, laid out as --input (which then holds the train "
                            "molecules only)")
    group.add_argument("--test-input", default=None, metavar="FILE",
                       help=f"file of the test molecules, laid out as --input. Rows are numbered on across "
                            f"the files (train, valid, test) in rejects.csv. Ids: without --id-{field} an id is "
                            f"the split and the row in its file ('valid:12'); with --id-{field}, an id in two "
                            "files is an error")
    group.add_argument("--folds", type=_at_least(2), default=0, metavar="K",
                       help="K-fold cross-validation: the molecules outside test (train and valid of the split "
                            "above) are cut into K folds, seeded with --seed (whole scaffold groups with "
                            "--split scaffold); needs --fold")
    group.add_argument("--fold", type=_at_least(0), default=None, metavar="I",
                       help="which fold (0 to K-1) becomes valid, the other folds train; test is unchanged. "
                            "Fold I of K is the same in every build with the same molecules, --seed and --split")


def split_options(args, field: str) -> dict:
    """Split keyword arguments of CsvSource / SdfSource from the flags; ValueError on a
    combination that does not make sense."""
    given_field = getattr(args, f"split_{field}")
    files = args.valid_input or args.test_input
    if given_field and files:
        raise ValueError(f"--split-{field} and --valid-input/--test-input both give the split: use one")
    if (given_field or files) and args.split_fractions is not None:
        raise ValueError(f"--split-fractions applies to --split random/scaffold, not to a split given by "
                         f"--split-{field} or --valid-input/--test-input")
    if args.fold is not None and not args.folds:
        raise ValueError("--fold needs --folds K (the number of folds)")
    if args.folds and args.fold is None:
        raise ValueError(f"--folds {args.folds} needs --fold I (0 to {args.folds - 1}): the fold that becomes valid")
    if args.folds and args.fold >= args.folds:
        raise ValueError(f"--fold {args.fold} is out of range for --folds {args.folds} (0 to {args.folds - 1})")
    return {"split": args.split, "fractions": args.split_fractions or DEFAULT_FRACTIONS, "seed": args.seed,
            f"split_{field}": given_field, "valid_path": args.valid_input, "test_path": args.test_input,
            "folds": args.folds, "fold": args.fold or 0}


def make_parser() -> argparse.ArgumentParser:
    reasons = "; ".join(f"{k}: {v}" for k, v in REJECT_REASONS.items())
    parser = argparse.ArgumentParser(
        prog="python -m data_prep",
        description="Prepare a molecule dataset: manifest.json, shard-NNNNN.lmdb and rejects.csv "
                    "in --output. A build that is stopped resumes when run again with the same "
                    "arguments.",
        epilog=f"Reject reasons: {reasons}.")
    sources = parser.add_subparsers(dest="source", required=True, metavar="SOURCE")
    common = common_parser()

    p = sources.add_parser("verify", help="check a prepared dataset against its manifest: every shard's size "
                                          "and sha256, every record's checksum, the per-record atom counts")
    p.add_argument("dataset", help="prepared dataset folder")

    p = sources.add_parser("moleculenet", parents=[common], help="a MoleculeNet CSV (scaffold split 80/10/10)")
    p.add_argument("--dataset", required=True, choices=sorted(PRESETS), type=str.lower, help="which data set")
    p.add_argument("--input", required=True, help="the CSV file, with the original column names")
    p.add_argument("--targets", type=_names, default=None,
                   help="comma-separated target columns (default: all of the data set's, e.g. "
                        "FDA_APPROVED,CT_TOX for ClinTox)")

    p = sources.add_parser("qm9", parents=[common], help="QM9: qm9.csv (XYZ_Ang geometry) or gdb9.sdf + gdb9.sdf.csv")
    p.add_argument("--input", required=True, help="qm9.csv, or gdb9.sdf (gdb9.sdf.csv next to it)")
    p.add_argument("--valid-size", type=_at_least(0), default=VALID_SIZE, help=f"default {VALID_SIZE}")
    p.add_argument("--test-size", type=_at_least(0), default=TEST_SIZE, help=f"default {TEST_SIZE}")

    p = sources.add_parser("pcqm4mv2", parents=[common], help="PCQM4Mv2 in OGB's raw layout (OGB split)")
    p.add_argument("--root", required=True, help="folder holding pcqm4m-v2/raw/data.csv.gz")
    p.add_argument("--sdf", default=None, help="pcqm4m-v2-train.sdf (default: searched under --root)")
    p.add_argument("--split-file", default=None, help="OGB split_dict.pt (default: pcqm4m-v2/split_dict.pt)")

    p = sources.add_parser("ogb", parents=[common], help="an OGB molecule benchmark (ogbg-molhiv, ogbg-molpcba, "
                                                        "...) in OGB's raw layout, with OGB's split")
    p.add_argument("--name", required=True, choices=sorted(ogb_datasets()), metavar="NAME",
                   help="the OGB dataset name, e.g. ogbg-molhiv; tasks, task type and evaluation metric are "
                        "those of ogb.graphproppred's master.csv")
    p.add_argument("--root", required=True,
                   help="folder holding NAME's folder as OGB lays it out (ogbg_molhiv/mapping/mol.csv.gz and "
                        "ogbg_molhiv/split/scaffold/{train,valid,test}.csv.gz); nothing is downloaded")

    p = sources.add_parser("csv", parents=[common], help="any CSV with a SMILES column")
    p.add_argument("--input", required=True, help="CSV file (.csv or .csv.gz)")
    p.add_argument("--smiles-column", required=True, help="column of the SMILES strings")
    p.add_argument("--target-columns", type=_names, default=[], help="comma-separated label columns")
    label_arguments(p)
    p.add_argument("--id-column", default=None, help="column of molecule ids (default: row number)")
    split_arguments(p, "random", "column")

    p = sources.add_parser("sdf", parents=[common], help="any SDF file (its 3D coordinates are kept)")
    p.add_argument("--input", required=True, help="SDF file (.sdf or .sdf.gz)")
    p.add_argument("--target-properties", type=_names, default=[], help="comma-separated data fields used as labels")
    label_arguments(p)
    p.add_argument("--id-property", default=None, help="data field of molecule ids (default: record title)")
    split_arguments(p, "random", "property")
    return parser


def _target_specs(names, units, task_type):
    if units and len(units) != len(names):
        raise SystemExit(f"--target-units has {len(units)} entries for {len(names)} targets")
    return [TargetSpec(n, units[i] if units else "", task_type) for i, n in enumerate(names)]


def make_source(args):
    if args.source == "moleculenet":
        return moleculenet_source(args.dataset, args.input, args.targets)
    if args.source == "qm9":
        return Qm9Source(args.input, seed=args.seed, valid_size=args.valid_size, test_size=args.test_size)
    if args.source == "pcqm4mv2":
        return Pcqm4mv2Source(args.root, sdf=args.sdf, split_file=args.split_file)
    if args.source == "ogb":
        return OgbMoleculeSource(args.name, args.root)
    targets = _target_specs(args.target_columns if args.source == "csv" else args.target_properties,
                            args.target_units, args.task_type)
    if args.source == "csv":
        return CsvSource(args.input, args.smiles_column, targets, id_column=args.id_column,
                         **split_options(args, "column"))
    return SdfSource(args.input, targets, id_property=args.id_property, **split_options(args, "property"))


def summary(manifest: dict, output: str) -> str:
    """One sentence on what a build made."""
    reasons = ", ".join(f"{reason} {count}" for reason, count in manifest["rejected_by_reason"].items())
    rejected = f"{manifest['num_rejected']} rejected ({reasons})" if reasons else "none rejected"
    splits = ", ".join(f"{name} {count}" for name, count in manifest["splits"].items())
    return f"built {manifest['num_molecules']} molecules, {rejected}; splits {splits} -> {output}"


def verify(folder: str) -> int:
    started = time.monotonic()
    try:
        summary = verify_dataset(folder)
    except (ValueError, FileNotFoundError) as error:  # ManifestError, MalformedRecord
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(f"{folder}: {summary['records']} records in {summary['shards']} shards "
          f"({summary['bytes'] / 1e6:.1f} MB) match the manifest ({time.monotonic() - started:.1f} s)")
    return 0


# Mistakes in the input reported as one line (exit status 2): reading the source, and building.
SOURCE_ERRORS = (ValueError, FileNotFoundError)
BUILD_ERRORS = (FileExistsError, BuildLocked, UnsafePath, InputError)


def build_options(args) -> BuildOptions:
    """The build and featurization options of parsed arguments."""
    featurize = FeaturizeOptions(with_hydrogens=args.with_hydrogens, num_conformers=args.conformers,
                                 conformer_timeout_s=args.conformer_timeout,
                                 on_conformer_failure=args.on_conformer_failure,
                                 max_atoms=args.max_atoms, largest_fragment=args.largest_fragment,
                                 seed=args.seed)
    return BuildOptions(output=args.output, workers=args.workers, shard_size=args.shard_size,
                        featurize=featurize, overwrite=args.overwrite, limit=args.limit,
                        progress=not args.quiet)


def main(argv=None) -> int:
    args = make_parser().parse_args(argv)
    if args.source == "verify":
        return verify(args.dataset)
    logging.basicConfig(level=logging.WARNING if args.quiet else logging.INFO,
                        format="%(asctime)s %(levelname)s %(message)s")
    try:
        source = make_source(args)
    except SOURCE_ERRORS as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    started = time.monotonic()
    try:
        manifest = build(source, build_options(args))
    except BUILD_ERRORS as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if not args.quiet:
        print(summary(manifest, args.output) + f" ({time.monotonic() - started:.1f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
