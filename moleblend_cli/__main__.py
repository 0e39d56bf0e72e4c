"""`moleblend SUBCOMMAND ...`: the commands users run, each a thin layer over the plugin.

    moleblend prep csv --input data.csv --smiles-column smiles --target-columns y --output built/x
    moleblend pretrain built/corpus --output runs/pretrain
    moleblend finetune --input data.csv --target-columns y --output runs/x [--pretrained CKPT]
    moleblend evaluate runs/x/checkpoints/checkpoint_best.pt --data runs/x/data --split test
    moleblend predict runs/x/checkpoints/checkpoint_best.pt --input new.csv --output predictions.csv
    moleblend embed CKPT --input molecules.csv --output embeddings.npz [--atoms]

Parsing imports neither torch nor fairseq, so `--help` answers at once; a subcommand
imports what it runs.
"""
from __future__ import annotations

import argparse
import sys

DELEGATED = {  # subcommand: (module whose main() it runs, one-line help)
    "prep": ("data_prep.__main__", "prepare a dataset (python -m data_prep): CSV, SDF, MoleculeNet, QM9, "
                                   "PCQM4Mv2, OGB -> LMDB shards"),
    "evaluate": ("moleblend_plugin.evaluate", "score a fine-tuned checkpoint on a split of a prepared dataset"),
    "predict": ("moleblend_plugin.predict", "predict the targets of the molecules in a file"),
    "embed": ("moleblend_plugin.embed", "molecule and atom embeddings of a file's molecules, from any checkpoint"),
}


def _names(text: str) -> list:
    return [n.strip() for n in text.split(",") if n.strip()]


def _train_args(text: str) -> list:
    import shlex

    return shlex.split(text)


def finetune_parser(parser: argparse.ArgumentParser) -> None:
    data = parser.add_argument_group("data (a CSV with a SMILES column)")
    data.add_argument("--input", required=True, help="CSV file (.csv or .csv.gz); the train file with --valid-input/--test-input")
    data.add_argument("--smiles-column", default="smiles", help="column of the SMILES (default smiles)")
    data.add_argument("--target-columns", type=_names, required=True, help="comma-separated label columns")
    data.add_argument("--id-column", default="", help="column of molecule ids (default: row number)")
    data.add_argument("--task-type", choices=["auto", "classification", "regression"], default="auto",
                      help="auto: classification when every label is 0 or 1 (default auto)")
    data.add_argument("--with-hydrogens", action="store_true", help="hydrogens as graph atoms (default: heavy atoms)")
    split = parser.add_argument_group("split (default: scaffold 80/10/10)")
    split.add_argument("--split", choices=["random", "scaffold"], default="scaffold", help="how to split (default scaffold)")
    split.add_argument("--split-fractions", type=lambda t: tuple(float(v) for v in t.split(",")), default=(0.8, 0.1, 0.1),
                       help="train,valid,test fractions (default 0.8,0.1,0.1)")
    split.add_argument("--split-column", default="", help="a column holding train / valid / test for each row")
    split.add_argument("--valid-input", default="", help="a separate valid CSV (same columns)")
    split.add_argument("--test-input", default="", help="a separate test CSV (same columns)")
    split.add_argument("--folds", type=int, default=0, help="k-fold cross-validation on the train part: K folds")
    split.add_argument("--fold", type=int, default=0, help="which fold (0..K-1) is the valid split (default 0)")
    model = parser.add_argument_group("model and training (defaults chosen from the data and printed)")
    model.add_argument("--pretrained", default="", help="a MoleBlend checkpoint to start from (default: from scratch)")
    model.add_argument("--input-modality", choices=["2d", "3d", "2d+3d", "2d+predicted3d"], default="2d",
                       help="2d: graph only; 3d / 2d+3d add one RDKit conformer per molecule; 2d+predicted3d adds "
                            "the distances that the --pretrained model's distance head predicts from the graph, no "
                            "conformers (default 2d)")
    model.add_argument("--arch", default="", help="architecture (default: the pretrained one's, else moleblend_small)")
    model.add_argument("--metric", default="", help="valid metric choosing the checkpoint (default auc / rmse)")
    model.add_argument("--batch-size", type=int, default=0, help="molecules per batch (default 32 or 64 by size)")
    model.add_argument("--max-epoch", type=int, default=0, help="epochs (default 100, 50 or 20 by size)")
    model.add_argument("--lr", type=float, default=0.0, help="Adam learning rate (default 2e-4)")
    model.add_argument("--freeze-layers", type=int, default=0, help="freeze the embeddings and the first N encoder layers")
    model.add_argument("--seed", type=int, default=1, help="seed of the split, the initialisation and the batches (default 1)")
    model.add_argument("--device", default="", choices=["", "cpu", "cuda"], help="default: cuda when available")
    model.add_argument("--train-args", type=_train_args, default=[],
                       help="more fairseq-train flags as one string, e.g. --train-args='--regression-loss l1'")
    run = parser.add_argument_group("run")
    run.add_argument("--output", required=True, help="run folder: data/, checkpoints/, metrics.json, summary.md, ...")
    run.add_argument("--overwrite", action="store_true", help="start clean in a folder that holds another run")
    run.add_argument("--dry-run", action="store_true", help="print the commands, run nothing")
    run.add_argument("--quiet", action="store_true", help="no progress lines")


def pretrain_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("data", help="prepared dataset folder (moleblend prep ...), with 3D for the 3D relations")
    parser.add_argument("--output", required=True, help="run folder: checkpoints/, train.log, commands.sh")
    parser.add_argument("--arch", default="moleblend_small", help="moleblend_tiny, _small or _base (default moleblend_small)")
    parser.add_argument("--mode", default="moleblend",
                        choices=["moleblend", "blend", "noisy_node", "mask_spd", "mask_edge", "mask_3d"],
                        help="pretraining objective (default moleblend: blend-then-predict + noisy node)")
    parser.add_argument("--blend-ratio", default="2:2:6", help="SPD:edge:3D share of blended pairs (default 2:2:6)")
    parser.add_argument("--max-update", type=int, default=2000, help="updates (default 2000)")
    parser.add_argument("--batch-size", type=int, default=32, help="molecules per batch (default 32)")
    parser.add_argument("--lr", type=float, default=5e-4, help="peak learning rate, cosine schedule (default 5e-4)")
    parser.add_argument("--validate-every", type=int, default=500, help="updates between validations (default 500)")
    parser.add_argument("--seed", type=int, default=1, help="default 1")
    parser.add_argument("--device", default="", choices=["", "cpu", "cuda"], help="default: cuda when available")
    parser.add_argument("--train-args", type=_train_args, default=[], help="more fairseq-train flags as one string")
    parser.add_argument("--overwrite", action="store_true", help="start clean in a folder that holds another run")
    parser.add_argument("--dry-run", action="store_true", help="print the command, run nothing")
    parser.add_argument("--quiet", action="store_true", help="no progress lines")


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="moleblend", description=__doc__.split("\n\n")[0],
                                     epilog="`moleblend SUBCOMMAND --help` shows a subcommand's flags.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="SUBCOMMAND")
    for name, (_, text) in DELEGATED.items():
        commands.add_parser(name, help=text, add_help=False)
    pretrain_parser(commands.add_parser("pretrain", help="MoleBlend pretraining of a prepared dataset"))
    finetune_parser(commands.add_parser("finetune", help="CSV -> shards -> fine-tuned, scored model and a report"))
    return parser


def _device(name: str) -> str:
    if name:
        return name
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv and argv[0] in DELEGATED:
        import importlib

        module = importlib.import_module(DELEGATED[argv[0]][0])
        if argv[0] == "prep":  # data_prep reports its own errors, and must not import the plugin (torch)
            return module.main(argv[1:])
        from moleblend_plugin.errors import run_command

        return run_command(module.main, argv[1:])
    args = make_parser().parse_args(argv)
    from moleblend_plugin.errors import run_command

    if args.command == "finetune":
        from moleblend_plugin.workflows.finetune import FinetuneRequest, finetune

        fields = {k: v for k, v in vars(args).items() if k != "command"}
        fields["device"] = _device(fields["device"])
        fields["target_columns"] = fields.pop("target_columns")
        return run_command(lambda _: (finetune(FinetuneRequest(**fields)), 0)[1])
    from moleblend_plugin.workflows.pretrain import PretrainRequest, pretrain

    fields = {k: v for k, v in vars(args).items() if k != "command"}
    fields["device"] = _device(fields["device"])
    return run_command(lambda _: (pretrain(PretrainRequest(**fields)), 0)[1])


if __name__ == "__main__":
    sys.exit(main())
