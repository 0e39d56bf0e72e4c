"""Rerun one row of the ablation study from scratch: corpus, pretraining, fine-tuning, scores.

    python examples/ablations/run_row.py --mode moleblend --dataset bbbp --seed 1
    python examples/ablations/run_row.py --mode blend --blend-ratio 4:4:2 --dataset bace --seed 2
    python examples/ablations/run_row.py --mode moleblend --dataset bbbp --input 2d+predicted3d --seed 1
    python examples/ablations/run_row.py --mode noisy_node --dataset qm9 --input 3d --seed 1
    python examples/ablations/run_row.py --mode scratch --dataset esol --seed 3

A row is a mode (a pretraining objective of `moleblend pretrain`, or `scratch`: no
pretraining), its blend ratio, a fine-tuning dataset and input, and a seed. Each step is
one of the project's own commands, printed before it runs (`--dry-run` prints them all):

1. the corpus (examples/ablations/build_corpus.sh: the first 50,000 MOSES training SMILES
   with RDKit conformers), unless it is built;
2. the pretraining, `moleblend pretrain`, with the study's budget: the same architecture,
   corpus, updates, batch, learning-rate schedule and seed for every mode, so that rows
   differ by the objective only. A finished pretraining of the same command in its run
   folder is reused, an unfinished one resumed;
3. the fine-tuning dataset, `python -m data_prep moleculenet` (the MoleculeNet scaffold
   split 80/10/10, 2D) or `python -m data_prep qm9` (DFT geometries, random split), built
   once per dataset;
4. the fine-tuning, examples/finetune/run_seeds.py with this seed, from the pretraining's
   checkpoint_best.pt or from scratch: the checkpoint of the best valid metric is kept and
   scored on test;
5. the same checkpoint scored on valid, `python -m moleblend_plugin.evaluate`;
6. one row per split (valid, test) and metric appended to the results CSV (RESULT_FIELDS).
   A row already recorded at the same commit is not appended again.

Fine-tuning budgets per dataset (DATASETS) are those of examples/finetune/cpu_results.sh
(docs/results.md), fixed before any run of the study: Adam at 2e-4, 20 warm-up updates,
gradient norm clipped at 5, dropout 0.1; no search on valid or test.

--run-dir holds:
    corpus/                      the pretraining corpus (unless --corpus is given)
    datasets/DATASET/            prepared fine-tuning datasets
    pretrain/TAG/                `moleblend pretrain` run folders, TAG = mode, ratio, arch, budget
    finetune/DATASET/INPUT/TAG/  run_seeds.py folders: pretrained|scratch/seedS/
    results.csv                  the rows
"""
from __future__ import annotations

import argparse
import csv
import datetime
import json
import os
import shlex
import subprocess
import sys
from dataclasses import dataclass
from typing import Dict, List, Optional, Tuple

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)

import corpus  # noqa: E402

PRETRAIN_MODES = ("moleblend", "blend", "noisy_node", "mask_spd", "mask_edge", "mask_3d")
MODES = PRETRAIN_MODES + ("scratch",)
BLENDING_MODES = ("moleblend", "blend")
# Modes whose pretraining has a distance-regression head, which 2d+predicted3d needs.
DISTANCE_HEAD_MODES = ("moleblend", "blend", "mask_3d")
DEFAULT_BLEND_RATIO = "2:2:6"

RESULT_FIELDS = ("mode", "blend_ratio", "dataset", "input", "seed", "split", "metric", "value", "pretrain_updates",
                 "finetune_epochs", "commit", "date", "arch", "finetune_max_update")
# What makes two rows the same row (besides the commit): appended once per commit.
ROW_KEY = ("mode", "blend_ratio", "dataset", "input", "seed", "pretrain_updates", "finetune_epochs", "arch",
           "finetune_max_update")

# Fine-tuning settings shared by every dataset (examples/finetune/cpu_results.sh).
FINETUNE_LR = 2e-4
FINETUNE_ARGS = "--lr-scheduler fixed --warmup-updates 20 --clip-norm 5 --dropout 0.1"


@dataclass(frozen=True)
class Dataset:
    source: str  # data_prep source: moleculenet or qm9
    file: str  # input file under the datasets folder (scripts/fetch_datasets.sh's layout)
    targets: str  # comma-separated target columns
    metric: str  # valid metric that chooses the checkpoint (MoleculeNet's for each set)
    epochs: int
    batch_size: int = 32
    inputs: Tuple[str, ...] = ("2d", "2d+predicted3d")
    max_update: int = 0  # 0: whole epochs
    extra_args: str = ""


DATASETS: Dict[str, Dataset] = {
    "bbbp": Dataset("moleculenet", "moleculenet/bbbp.csv", "p_np", "auc", 6),
    "bace": Dataset("moleculenet", "moleculenet/bace.csv", "Class", "auc", 5),
    "clintox": Dataset("moleculenet", "moleculenet/clintox.csv", "CT_TOX", "auc", 5),
    "esol": Dataset("moleculenet", "moleculenet/esol.csv", "measured log solubility in mols per litre", "rmse", 6),
    "freesolv": Dataset("moleculenet", "moleculenet/freesolv.csv", "expt", "rmse", 6),
    "lipophilicity": Dataset("moleculenet", "moleculenet/lipophilicity.csv", "exp", "rmse", 3),
    # gap, HOMO and LUMO predicted jointly by one model (meV); 400 updates of 64 molecules,
    # the checkpoint chosen on 40 valid batches every 100 updates, then scored on all of valid and test;
    # a training log line every 25 updates and a validation every 100 draw the early curves.
    "qm9": Dataset("qm9", "qm9/qm9.csv", "gap,homo,lumo", "mae", 1, batch_size=64, inputs=("3d", "2d+3d"),
                   max_update=400, extra_args="--regression-loss l1 --validate-interval-updates 100 "
                                              "--max-valid-steps 40 --log-interval 25"),
}


def shell(command: List[str]) -> str:
    return " ".join(shlex.quote(str(c)) for c in command)


def ratio_tag(ratio: str) -> str:
    return ratio.replace(":", "-")


def pretrain_tag(args) -> str:
    mode = f"{args.mode}_{ratio_tag(args.blend_ratio)}" if args.mode in BLENDING_MODES else args.mode
    return f"{mode}-{args.arch}-{args.pretrain_updates}u-b{args.pretrain_batch_size}-s{args.pretrain_seed}"


def pretrain_command(args, corpus_dir: str, output: str) -> List[str]:
    command = [sys.executable, "-m", "moleblend_cli", "pretrain", os.path.abspath(corpus_dir), "--output", output,
               "--arch", args.arch, "--mode", args.mode, "--max-update", str(args.pretrain_updates),
               "--batch-size", str(args.pretrain_batch_size), "--lr", repr(args.pretrain_lr),
               "--validate-every", str(args.validate_every), "--seed", str(args.pretrain_seed),
               "--device", args.device, "--quiet"]
    if args.mode in BLENDING_MODES:
        command += ["--blend-ratio", args.blend_ratio]
    return command


def prep_command(name: str, dataset: Dataset, data: str, output: str) -> List[str]:
    source = os.path.abspath(os.path.join(data, dataset.file))
    if dataset.source == "qm9":
        return [sys.executable, "-m", "data_prep", "qm9", "--input", source, "--output", output, "--quiet"]
    return [sys.executable, "-m", "data_prep", "moleculenet", "--dataset", name, "--input", source,
            "--targets", dataset.targets, "--conformers", "0", "--output", output, "--quiet"]


def finetune_command(args, dataset: Dataset, data_dir: str, run_dir: str, checkpoint: Optional[str]) -> List[str]:
    command = [sys.executable, os.path.join(REPO, "examples", "finetune", "run_seeds.py"), data_dir,
               "--run-dir", run_dir, "--seeds", str(args.seed), "--targets", dataset.targets,
               "--metric", dataset.metric, "--arch", args.arch, "--input-modality", args.input,
               "--lr", repr(FINETUNE_LR), "--batch-size", str(args.finetune_batch_size or dataset.batch_size),
               "--max-epoch", str(finetune_epochs(args, dataset))]
    extra = FINETUNE_ARGS + (f" {dataset.extra_args}" if dataset.extra_args else "")
    if dataset.max_update:
        extra += f" --max-update {dataset.max_update}"
    command.append(f"--extra-args={extra}")
    command += ["--pretrained", checkpoint, "--no-scratch"] if checkpoint else []
    return command + (["--cpu"] if args.device == "cpu" else [])


def evaluate_command(args, checkpoint: str, data_dir: str, split: str, output: str) -> List[str]:
    return [sys.executable, "-m", "moleblend_plugin.evaluate", checkpoint, "--data", data_dir, "--split", split,
            "--quiet", "--output", output, "--device", args.device]


def finetune_epochs(args, dataset: Dataset) -> int:
    return args.finetune_epochs or dataset.epochs


def run(command: List[str], dry_run: bool, quiet: bool = False) -> None:
    """Print and run a command; quiet: without its standard output (a JSON the runner reads from a file)."""
    print("+ " + shell(command), flush=True)
    if not dry_run:
        subprocess.run(command, cwd=REPO, check=True, stdout=subprocess.DEVNULL if quiet else None)


def commit() -> str:
    """The checkout's commit, marked +dirty when tracked files differ from it."""
    def git(*words):
        return subprocess.run(["git", "-C", REPO, *words], capture_output=True, text=True)

    head = git("rev-parse", "--short=12", "HEAD")
    if head.returncode:
        return "unknown"
    dirty = git("diff", "--quiet", "HEAD").returncode != 0
    return head.stdout.strip() + ("+dirty" if dirty else "")


def result_rows(args, dataset: Dataset, scores: Dict[str, dict]) -> List[dict]:
    common = {"mode": args.mode, "blend_ratio": args.blend_ratio if args.mode in BLENDING_MODES else "",
              "dataset": args.dataset, "input": args.input, "seed": args.seed,
              "pretrain_updates": 0 if args.mode == "scratch" else args.pretrain_updates,
              "finetune_epochs": finetune_epochs(args, dataset), "commit": commit(),
              "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
              "arch": args.arch, "finetune_max_update": dataset.max_update or ""}
    return [{**common, "split": split, "metric": metric, "value": value}
            for split, result in scores.items() for metric, value in result["metrics"].items()]


def append_rows(path: str, rows: List[dict]) -> int:
    """Append `rows` unless the file holds the same row at the same commit; returns how many were written."""
    def key(row):
        return tuple(str(row[k]) for k in ROW_KEY + ("commit",))

    existing = set()
    if os.path.exists(path):
        with open(path, newline="", encoding="utf-8") as f:
            existing = {key(row) for row in csv.DictReader(f)}
    if rows and key(rows[0]) in existing:
        return 0
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    new_file = not os.path.exists(path)
    with open(path, "a", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=RESULT_FIELDS, lineterminator="\n")
        if new_file:
            writer.writeheader()
        writer.writerows(rows)
    return len(rows)


def check_row(args) -> Dataset:
    """The dataset of a consistent row; SystemExit naming what does not fit."""
    dataset = DATASETS[args.dataset]
    args.input = args.input or dataset.inputs[0]
    if args.input not in dataset.inputs:
        raise SystemExit(f"error: --input {args.input} is not studied on {args.dataset}; choose "
                         f"{' or '.join(dataset.inputs)}")
    if args.blend_ratio and args.mode not in BLENDING_MODES:
        raise SystemExit(f"error: --blend-ratio is a setting of the blending modes ({', '.join(BLENDING_MODES)}), "
                         f"not of {args.mode}")
    args.blend_ratio = args.blend_ratio or DEFAULT_BLEND_RATIO
    if args.input == "2d+predicted3d" and args.mode not in DISTANCE_HEAD_MODES:
        raise SystemExit(f"error: --input 2d+predicted3d predicts distances with the pretrained distance head; "
                         f"mode {args.mode} has none (modes with one: {', '.join(DISTANCE_HEAD_MODES)})")
    return dataset


def run_row(args) -> List[dict]:
    dataset = check_row(args)
    run_dir = os.path.abspath(args.run_dir)
    checkpoint = None
    if args.mode != "scratch":
        corpus_dir = args.corpus or os.path.join(run_dir, "corpus")
        print(f"# 1. corpus: {corpus_dir}", flush=True)
        corpus.build_corpus(corpus_dir, args.data, args.corpus_rows, args.workers, args.dry_run)
        output = os.path.join(run_dir, "pretrain", pretrain_tag(args))
        print(f"# 2. pretraining: {output}", flush=True)
        if os.path.exists(os.path.join(output, "checkpoints", "run_done.json")):
            print("# finished before; `moleblend pretrain` reuses it if its command is this one")
        run(pretrain_command(args, corpus_dir, output), args.dry_run)
        checkpoint = os.path.join(output, "checkpoints", "checkpoint_best.pt")

    data_dir = os.path.join(run_dir, "datasets", args.dataset)
    print(f"# 3. fine-tuning dataset: {data_dir}", flush=True)
    if os.path.exists(os.path.join(data_dir, "manifest.json")):
        print(f"# already built: {data_dir}")
    else:
        if not args.dry_run and not os.path.exists(os.path.join(args.data, dataset.file)):
            raise SystemExit(f"error: no {os.path.join(args.data, dataset.file)}; fetch the datasets with: "
                             f"bash scripts/fetch_datasets.sh {args.data}")
        run(prep_command(args.dataset, dataset, args.data, data_dir), args.dry_run)

    tag = (pretrain_tag(args) if checkpoint else f"scratch-{args.arch}") + f"-e{finetune_epochs(args, dataset)}"
    finetune_dir = os.path.join(run_dir, "finetune", args.dataset, args.input.replace("+", "_"), tag)
    print(f"# 4. fine-tuning, seed {args.seed}: {finetune_dir}", flush=True)
    run(finetune_command(args, dataset, data_dir, finetune_dir, checkpoint), args.dry_run)
    seed_dir = os.path.join(finetune_dir, "pretrained" if checkpoint else "scratch", f"seed{args.seed}")
    best = os.path.join(seed_dir, "checkpoint_best.pt")
    valid_json = os.path.join(seed_dir, "valid.json")
    print("# 5. the best-valid checkpoint scored on valid", flush=True)
    if args.dry_run or not os.path.exists(valid_json) or os.path.getmtime(valid_json) < os.path.getmtime(best):
        run(evaluate_command(args, best, data_dir, "valid", valid_json), args.dry_run, quiet=True)
    if args.dry_run:
        print(f"# 6. rows appended to {args.results or os.path.join(run_dir, 'results.csv')}")
        return []
    scores = {}
    for split in ("valid", "test"):
        with open(os.path.join(seed_dir, f"{split}.json"), encoding="utf-8") as f:
            scores[split] = json.load(f)
    rows = result_rows(args, dataset, scores)
    results = args.results or os.path.join(run_dir, "results.csv")
    written = append_rows(results, rows)
    print(f"# 6. {written} rows appended to {results}" if written else
          f"# 6. {results} already holds this row at commit {rows[0]['commit']}: nothing appended")
    for split in ("valid", "test"):
        print(f"{args.dataset} {args.input} {args.mode} seed {args.seed}: {split} {dataset.metric} "
              f"{scores[split]['metrics'].get(dataset.metric)}")
    return rows


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    row = parser.add_argument_group("the row")
    row.add_argument("--mode", required=True, choices=MODES,
                     help="pretraining objective of `moleblend pretrain`, or scratch (no pretraining)")
    row.add_argument("--blend-ratio", default="",
                     help=f"SPD:edge:3D ratio of the blending modes (default {DEFAULT_BLEND_RATIO}); e.g. 4:4:2")
    row.add_argument("--dataset", required=True, choices=sorted(DATASETS), help="fine-tuning dataset")
    row.add_argument("--input", default="",
                     help="fine-tuning input: 2d (default) or 2d+predicted3d on MoleculeNet; 3d or 2d+3d (default) "
                          "on qm9")
    row.add_argument("--seed", type=int, required=True, help="fine-tuning seed (initialisation of new weights, "
                                                             "batch order); the split is the dataset's")
    where = parser.add_argument_group("where")
    where.add_argument("--run-dir", default=os.path.join("runs", "ablations"),
                       help="folder of the study's runs and results (default runs/ablations)")
    where.add_argument("--data", default=corpus.default_data_dir(),
                       help="datasets folder of scripts/fetch_datasets.sh: moses/, moleculenet/, qm9/ "
                            "(default $MOLEBLEND_DATA or ~/.cache/moleblend/datasets)")
    where.add_argument("--corpus", default="", help="built pretraining corpus, or where to build it "
                                                    "(default RUN_DIR/corpus)")
    where.add_argument("--results", default="", help="results CSV to append to (default RUN_DIR/results.csv)")
    budget = parser.add_argument_group("the budget (the same for every row of a study)")
    budget.add_argument("--arch", default="moleblend_small", help="architecture (default moleblend_small)")
    budget.add_argument("--pretrain-updates", type=int, default=2000, help="pretraining updates (default 2000)")
    budget.add_argument("--pretrain-batch-size", type=int, default=32, help="molecules per update (default 32)")
    budget.add_argument("--pretrain-lr", type=float, default=5e-4,
                        help="peak learning rate, cosine schedule with 5%% warm-up (default 5e-4)")
    budget.add_argument("--pretrain-seed", type=int, default=1, help="pretraining seed (default 1)")
    budget.add_argument("--validate-every", type=int, default=500, help="pretraining updates between validations "
                                                                        "(default 500)")
    budget.add_argument("--corpus-rows", type=int, default=corpus.ROWS,
                        help=f"MOSES rows of the corpus (default {corpus.ROWS})")
    budget.add_argument("--finetune-epochs", type=int, default=0, help="fine-tuning epochs (default: the dataset's)")
    budget.add_argument("--finetune-batch-size", type=int, default=0,
                        help="fine-tuning batch size (default: the dataset's)")
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"], help="default cpu")
    parser.add_argument("--workers", type=int, default=1, help="worker processes of the corpus build (default 1)")
    parser.add_argument("--dry-run", action="store_true", help="print the commands, run nothing")
    return parser


def main(argv=None) -> int:
    run_row(make_parser().parse_args(argv))
    return 0


if __name__ == "__main__":
    sys.exit(main())
