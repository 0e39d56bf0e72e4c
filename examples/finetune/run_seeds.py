"""Fine-tune one prepared dataset over several seeds, score each best-valid checkpoint on
test, and summarise mean +- std, from scratch and/or from a pretrained checkpoint.

    python examples/finetune/run_seeds.py DATA --run-dir runs/bbbp --pretrained pretrain/checkpoint_best.pt

For every variant (scratch; pretrained when --pretrained is given) and every seed, one
fairseq-train command (TRAIN_COMMAND below; the split is the dataset's, the seed changes
the initialisation of new weights and the batch order), then
`python -m moleblend_plugin.evaluate RUN/checkpoint_best.pt --data DATA --split test`.
Written to --run-dir:
    VARIANT/seedN/            checkpoints, train.log (fairseq --log-format json), test.json
    summary.csv, summary.md   test metrics per variant: mean, std (sample std, ddof=1) and per seed
    valid_curves.png          the validation metric over updates of every run
A rerun of the same command resumes an unfinished run (from its checkpoint_last.pt) and
skips a finished one; a run folder that holds another command's checkpoint is refused
(--overwrite starts it clean). --dry-run prints the commands, also before DATA is built.
"""
import argparse
import csv
import json
import math
import os
import shlex
import subprocess
import sys
from typing import Dict, List

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
from moleblend_plugin.criterions.property_metrics import higher_is_better  # noqa: E402
from moleblend_plugin.errors import UserError  # noqa: E402
from moleblend_plugin.workflows.progress import read_valid_curve  # noqa: E402
from moleblend_plugin.run_folder import mark_done, prepare_run_folder  # noqa: E402

PLUGIN_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
                          "moleblend_plugin")

# One command template for every run; {...} are filled from the flags of this script.
TRAIN_COMMAND = (
    "{python} -m fairseq_cli.train {data} --user-dir {user_dir} "
    "--task moleblend_finetune --criterion moleblend_finetune {targets} "
    "--arch {arch} --input-modality {input_modality} --seed {seed} "
    "--optimizer adam --adam-betas (0.9,0.999) --lr {lr} --weight-decay {weight_decay} "
    "--batch-size {batch_size} --required-batch-size-multiple 1 --max-epoch {max_epoch} "
    "--best-checkpoint-metric {metric} {maximize} --no-epoch-checkpoints "
    "--num-workers {num_workers} --save-dir {save_dir} --log-format json --log-file {log_file} "
    "--log-interval {log_interval}"
)
# --required-batch-size-multiple 1: fairseq otherwise drops a last batch whose size is not
# a multiple of 8 (default), i.e. up to 7 molecules of every validation pass.


def task_type_of(data: str, targets: str) -> str:
    with open(os.path.join(data, "manifest.json"), encoding="utf-8") as f:
        manifest = json.load(f)
    wanted = [t.strip() for t in targets.split(",") if t.strip()]
    kinds = {t["task_type"] for t in manifest["targets"] if not wanted or t["name"] in wanted}
    if len(kinds) != 1:
        raise SystemExit(f"{data}: targets {targets or '(all)'} are not of one task type: {sorted(kinds)}")
    return kinds.pop()


def train_command(args, variant: str, seed: int, run_dir: str) -> List[str]:
    maximize = higher_is_better(args.metric)
    text = TRAIN_COMMAND.format(
        python=shlex.quote(sys.executable), data=shlex.quote(args.data), user_dir=shlex.quote(PLUGIN_DIR),
        targets=f"--targets {shlex.quote(args.targets)}" if args.targets else "",
        arch=args.arch, input_modality=args.input_modality, seed=seed,
        lr=args.lr, weight_decay=args.weight_decay, batch_size=args.batch_size, max_epoch=args.max_epoch,
        metric=args.metric, maximize="--maximize-best-checkpoint-metric" if maximize else "",
        num_workers=args.num_workers, save_dir=shlex.quote(run_dir),
        log_file=shlex.quote(os.path.join(run_dir, "train.log")), log_interval=args.log_interval)
    command = shlex.split(text)
    if variant == "pretrained":
        command += ["--finetune-from-model", args.pretrained]
    if args.cpu:
        command.append("--cpu")
    return command + shlex.split(args.extra_args)


def evaluate_command(args, run_dir: str) -> List[str]:
    return [sys.executable, "-m", "moleblend_plugin.evaluate", os.path.join(run_dir, "checkpoint_best.pt"),
            "--data", args.data, "--split", "test", "--batch-size", str(args.batch_size), "--quiet",
            "--output", os.path.join(run_dir, "test.json")] + (["--device", "cpu"] if args.cpu else [])


def valid_curve(log_file: str, metric: str):
    """(updates, values) of valid_<metric> from a fairseq --log-format json log file
    (updates, not epochs: runs validated within an epoch have several points per epoch)."""
    _, updates, values = read_valid_curve(log_file, metric)
    return updates, values


def run(command: List[str], dry_run: bool, log=None) -> None:
    print("+ " + " ".join(shlex.quote(c) for c in command), flush=True)
    if not dry_run:
        subprocess.run(command, check=True, stdout=log, stderr=subprocess.STDOUT if log else None)


def mean_std(values: List[float]):
    values = [v for v in values if v is not None and not math.isnan(v)]
    if not values:
        return float("nan"), float("nan")
    return float(np.mean(values)), float(np.std(values, ddof=1)) if len(values) > 1 else float("nan")


def summarise(args, results: Dict[str, Dict[int, dict]], curves) -> None:
    metrics = sorted({k for runs in results.values() for r in runs.values() for k in r["metrics"]},
                     key=lambda k: (k != args.metric, k))
    rows = []
    for variant, runs in results.items():
        for metric in metrics:
            per_seed = [runs[s]["metrics"].get(metric) for s in args.seeds if s in runs]
            per_seed = [float("nan") if v is None else v for v in per_seed]
            mean, std = mean_std(per_seed)
            rows.append({"variant": variant, "metric": metric, "mean": mean, "std": std, "seeds": len(per_seed),
                         **{f"seed{s}": runs[s]["metrics"].get(metric) for s in args.seeds if s in runs}})
    with open(os.path.join(args.run_dir, "summary.csv"), "w", newline="", encoding="utf-8") as f:
        fields = ["variant", "metric", "mean", "std", "seeds"] + [f"seed{s}" for s in args.seeds]
        writer = csv.DictWriter(f, fieldnames=fields, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    lines = [f"# {os.path.basename(os.path.normpath(args.data))}: test {args.metric}, {len(args.seeds)} seeds",
             "", f"Best-valid checkpoint (valid {args.metric}) of each run, scored on the test split; "
             "mean ± sample std over seeds.", "",
             "| variant | test " + args.metric + " | per seed | best valid " + args.metric + " |",
             "|---|---|---|---|"]
    for variant, runs in results.items():
        row = next(r for r in rows if r["variant"] == variant and r["metric"] == args.metric)
        seeds = ", ".join(f"{runs[s]['metrics'].get(args.metric):.4g}" for s in args.seeds
                          if s in runs and runs[s]["metrics"].get(args.metric) is not None)
        best = [(max if higher_is_better(args.metric) else min)(v) for _, v in (curves[variant][s] for s in args.seeds
                                                                      if s in curves[variant]) if v]
        valid_mean, valid_std = mean_std(best)
        lines.append(f"| {variant} | {row['mean']:.4g} ± {row['std']:.2g} | {seeds} | "
                     f"{valid_mean:.4g} ± {valid_std:.2g} |")
    lines += ["", "All test metrics: summary.csv. Validation curves: valid_curves.png.", ""]
    with open(os.path.join(args.run_dir, "summary.md"), "w", encoding="utf-8") as f:
        f.write("\n".join(lines))
    print("\n".join(lines))


def plot_curves(args, curves) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    fig, ax = plt.subplots(figsize=(6, 4))
    colors = {"scratch": "tab:blue", "pretrained": "tab:orange"}
    for variant, runs in curves.items():
        for k, (seed, (epochs, values)) in enumerate(sorted(runs.items())):
            ax.plot(epochs, values, color=colors.get(variant), alpha=0.8, marker=".",
                    label=variant if k == 0 else None)
    ax.set_xlabel("updates")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylabel(f"valid {args.metric}")
    ax.set_title(f"{os.path.basename(os.path.normpath(args.data))}: one line per seed")
    ax.legend()
    fig.tight_layout()
    fig.savefig(os.path.join(args.run_dir, "valid_curves.png"), dpi=120)
    plt.close(fig)


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="fairseq-train command of every run:\n  " + TRAIN_COMMAND
               + "\n  [--finetune-from-model PRETRAINED] [--cpu] [EXTRA_ARGS]")
    parser.add_argument("data", help="prepared dataset folder (python -m data_prep); its split is used as is")
    parser.add_argument("--run-dir", required=True, help="folder for runs, summary.csv/.md and valid_curves.png")
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3], help="seeds (default 1 2 3)")
    parser.add_argument("--pretrained", default="",
                        help="pretraining checkpoint passed as --finetune-from-model (adds the 'pretrained' variant)")
    parser.add_argument("--no-scratch", action="store_true", help="skip the from-scratch variant")
    parser.add_argument("--targets", default="", help="comma-separated targets (default: all of the manifest's)")
    parser.add_argument("--metric", default="",
                        help="validation metric that picks the best checkpoint and is summarised, e.g. auc, prc_auc, "
                             "mae, rmse, r2 or ogb_rocauc (default auc for classification, mae for regression; rmse "
                             "is MoleculeNet's "
                             "regression metric)")
    parser.add_argument("--arch", default="moleblend_base", help="model architecture (default moleblend_base)")
    parser.add_argument("--input-modality", default="2d", choices=["2d", "3d", "2d+3d", "2d+predicted3d"],
                        help="fine-tuning input (default 2d)")
    parser.add_argument("--lr", type=float, default=1e-4, help="Adam learning rate, fixed (default 1e-4)")
    parser.add_argument("--weight-decay", type=float, default=0.0, help="Adam weight decay (default 0)")
    parser.add_argument("--batch-size", type=int, default=64, help="molecules per batch (default 64)")
    parser.add_argument("--max-epoch", type=int, default=50, help="epochs per run (default 50)")
    parser.add_argument("--num-workers", type=int, default=0, help="data loader workers (default 0)")
    parser.add_argument("--log-interval", type=int, default=100, help="updates between training log lines")
    parser.add_argument("--cpu", action="store_true", help="train and evaluate on the CPU")
    parser.add_argument("--extra-args", default="",
                        help="more fairseq-train flags as one string, given with '=' "
                             "(e.g. --extra-args=\"--lr-scheduler polynomial_decay --warmup-updates 100 "
                             "--total-num-update 2000 --dropout 0.1\")")
    parser.add_argument("--overwrite", action="store_true",
                        help="start every run clean: remove its checkpoints, logs and test.json first")
    parser.add_argument("--dry-run", action="store_true", help="print the commands only")
    return parser


def main(argv=None) -> int:
    args = make_parser().parse_args(argv)
    if not os.path.exists(os.path.join(args.data, "manifest.json")):
        if not args.dry_run:
            raise SystemExit(f"{args.data} holds no prepared dataset (manifest.json); build it with python -m data_prep")
        # The commands can be shown before the dataset exists; the metric follows its task type.
        args.metric = args.metric or "METRIC"
        print(f"# {args.data} is not built yet: METRIC stands for auc (classification) or mae (regression)")
    else:
        task_type = task_type_of(args.data, args.targets)
        args.metric = args.metric or ("auc" if task_type == "classification" else "mae")
        classification_metric = args.metric.startswith(("auc", "prc_auc", "ogb_rocauc", "ogb_ap"))
        if classification_metric != (task_type == "classification"):
            raise SystemExit(f"--metric {args.metric} does not fit {task_type} targets")
    variants = ([] if args.no_scratch else ["scratch"]) + (["pretrained"] if args.pretrained else [])
    if not variants:
        raise SystemExit("nothing to run: --no-scratch without --pretrained")
    if args.pretrained and not os.path.exists(args.pretrained):
        raise SystemExit(f"--pretrained {args.pretrained} does not exist")
    results: Dict[str, Dict[int, dict]] = {v: {} for v in variants}
    curves = {v: {} for v in variants}
    for variant in variants:
        for seed in args.seeds:
            run_dir = os.path.join(args.run_dir, variant, f"seed{seed}")
            test_json = os.path.join(run_dir, "test.json")
            command = train_command(args, variant, seed, run_dir)
            if args.dry_run:
                run(command, True)
                run(evaluate_command(args, run_dir), True)
                continue
            # A rerun resumes the same command's run or starts clean (--overwrite); a
            # folder holding another command's checkpoint is refused (moleblend_plugin.run_folder).
            try:
                state = prepare_run_folder(run_dir, command, args.overwrite)
            except UserError as error:
                raise SystemExit(f"error: {error}") from None
            if state != "done":
                with open(os.path.join(run_dir, "stdout.txt"), "a", encoding="utf-8") as log:
                    run(command, False, log)
                mark_done(run_dir)
            if not os.path.exists(test_json):
                run(evaluate_command(args, run_dir), False, subprocess.DEVNULL)
            with open(test_json, encoding="utf-8") as f:
                results[variant][seed] = json.load(f)
            curves[variant][seed] = valid_curve(os.path.join(run_dir, "train.log"), args.metric)
    if not args.dry_run:
        summarise(args, results, curves)
        plot_curves(args, curves)
    return 0


if __name__ == "__main__":
    sys.exit(main())
