"""Tables and plots of the ablation study from its results file and pretraining runs.

    python examples/ablations/summarize.py runs/ablations/results.csv \
        --pretrain-dir runs/ablations/pretrain --plots docs/images

Prints Markdown: for each of the paper's ablation tables (3, 4, 5, 7, 11; QM9 per input)
the test score of every row that ran (mean ± sample standard deviation over its seeds)
beside the paper's figure, then each row's paired difference with `moleblend` (the same
fine-tuning seed on both sides): the mean difference ± the half-width of its 95 % t
interval. A difference is marked "larger than the noise" only where that interval
excludes zero; with three seeds the interval is wide (t = 4.30), so most differences at
this budget are not. With `--finetune-dir`, also the QM9 fine-tunings' valid MAE at each
validation (appendix D.1's early convergence), with the same paired differences.

A row rerun at a later commit replaces the earlier one (the newest date wins). ROC-AUC is
shown in %, RMSE as is, QM9 MAE in meV. `--plots DIR` also writes
DIR/ablation_pretrain_curves.png (every mode's loss terms over updates),
DIR/ablation_scores.png (each seed's test score per dataset and row) and, where QM9 rows
ran, DIR/ablation_qm9_curves.png (their training and valid MAE, the mean over the finished
seeds of each mode and input).
"""
from __future__ import annotations

import argparse
import csv
import glob
import math
import os
import re
import statistics
import sys
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "pretrain"))

from plot_curves import read_log  # noqa: E402  (importing it selects matplotlib's Agg backend)
import matplotlib.pyplot as plt  # noqa: E402

MOLECULENET = ("bbbp", "bace", "clintox", "esol", "freesolv", "lipophilicity")
MAIN_METRIC = {"bbbp": "auc", "bace": "auc", "clintox": "auc", "esol": "rmse", "freesolv": "rmse",
               "lipophilicity": "rmse"}
QM9_METRICS = ("mae_gap", "mae_homo", "mae_lumo")
HIGHER_IS_BETTER = {"auc": True, "rmse": False, "mae_gap": False, "mae_homo": False, "mae_lumo": False}


@dataclass(frozen=True)
class Row:
    """One row of a table: a mode, its blend ratio ("" for modes without one) and the fine-tuning input."""
    mode: str
    ratio: str
    input: str
    label: str


@dataclass(frozen=True)
class Table:
    title: str
    rows: Tuple[Row, ...]
    columns: Tuple[Tuple[str, str], ...]  # (dataset, metric)
    paper: Dict[str, Tuple[str, ...]]  # row label -> the paper's figures, in the order of `columns`; "" where absent
    references: Tuple[Row, ...]  # the rows the paired differences are taken against, moleblend first


MOLEBLEND = Row("moleblend", "2:2:6", "2d", "moleblend (2:2:6)")
BLEND = Row("blend", "2:2:6", "2d", "blend (2:2:6)")
COLUMNS_2D = tuple((d, MAIN_METRIC[d]) for d in MOLECULENET)
QM9_COLUMNS = tuple(("qm9", m) for m in QM9_METRICS)

TABLES = (
    Table("Pretraining objectives (the paper's Table 3)",
          (Row("noisy_node", "", "2d", "noisy_node"), BLEND, MOLEBLEND,
           Row("scratch", "", "2d", "scratch")),
          COLUMNS_2D,
          {"noisy_node": ("68.50", "82.72", "83.28", "", "", ""),
           "blend (2:2:6)": ("71.59", "83.53", "90.82", "", "", ""),
           "moleblend (2:2:6)": ("73.00", "83.66", "87.62", "0.831", "1.910", "0.638")},
          (MOLEBLEND,)),
    Table("Blending vs single-modality mask-then-predict (the paper's Table 4)",
          (Row("mask_spd", "", "2d", "mask_spd"), Row("mask_edge", "", "2d", "mask_edge"),
           Row("mask_3d", "", "2d", "mask_3d"), BLEND, MOLEBLEND,
           Row("scratch", "", "2d", "scratch")),
          COLUMNS_2D,
          {"mask_spd": ("68.95", "80.64", "", "", "", ""), "mask_edge": ("69.02", "81.97", "", "", "", ""),
           "mask_3d": ("67.60", "80.35", "", "", "", ""), "blend (2:2:6)": ("71.68", "83.41", "", "", "", "")},
          # the paper's "Blending" row has no noisy node, like the masks: blend is their like-for-like reference
          (MOLEBLEND, BLEND)),
    Table("Blend ratio SPD:edge:3D (the paper's Table 7)",
          (Row("moleblend", "4:4:2", "2d", "moleblend (4:4:2)"), Row("moleblend", "3:3:4", "2d", "moleblend (3:3:4)"),
           MOLEBLEND, Row("moleblend", "1:1:8", "2d", "moleblend (1:1:8)")),
          COLUMNS_2D,
          {"moleblend (4:4:2)": ("72.25", "82.17", "", "", "", "0.7544"),
           "moleblend (3:3:4)": ("72.34", "82.47", "", "", "", "0.7505"),
           "moleblend (2:2:6)": ("72.52", "82.89", "", "", "", "0.7511"),
           "moleblend (1:1:8)": ("72.45", "82.43", "", "", "", "0.7478")},
          (MOLEBLEND,)),
    Table("2D input vs 2D + predicted 3D (the paper's Table 11)",
          (MOLEBLEND, Row("moleblend", "2:2:6", "2d+predicted3d", "moleblend, 2d+predicted3d")),
          COLUMNS_2D,
          {"moleblend (2:2:6)": ("73.0", "83.7", "87.6", "0.831", "1.910", "0.638"),
           "moleblend, 2d+predicted3d": ("71.8", "84.3", "90.9", "0.874", "1.824", "0.636")},
          (MOLEBLEND,)),
    *(Table(f"QM9 with {'3D' if modality == '3d' else '2D + 3D'} input: pretraining objectives "
            f"(the paper's Table 3 asks this on U298 and U0{'' if modality == '3d' else '; MoleBlend from its Table 2'})",
            tuple(Row(mode, ratio, modality, f"{mode}, {modality}")
                  for mode, ratio in (("noisy_node", ""), ("blend", "2:2:6"), ("moleblend", "2:2:6"), ("scratch", ""))),
            QM9_COLUMNS,
            # Table 3's 3D tasks are U298 and U0, not these targets; Table 2 gives MoleBlend's gap, HOMO, LUMO
            {} if modality == "3d" else {"moleblend, 2d+3d": ("34.75", "21.47", "19.23")},
            (Row("moleblend", "2:2:6", modality, f"moleblend, {modality}"),))
      for modality in ("3d", "2d+3d")),
    Table("QM9 with 3D vs 2D + 3D input (the paper's Table 5)",
          (Row("moleblend", "2:2:6", "3d", "moleblend, 3d"), Row("moleblend", "2:2:6", "2d+3d", "moleblend, 2d+3d")),
          QM9_COLUMNS,
          {"moleblend, 3d": ("", "23.62", ""), "moleblend, 2d+3d": ("", "21.47", "")},
          (Row("moleblend", "2:2:6", "3d", "moleblend, 3d"),)),
)


def read_results(path: str) -> Dict[Tuple[str, str, str, str, str, str], Dict[int, float]]:
    """(mode, ratio, dataset, input, split, metric) -> {seed: value}; a row rerun later replaces the earlier."""
    newest: Dict[tuple, Tuple[str, float]] = {}
    with open(path, newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            key = (row["mode"], row["blend_ratio"], row["dataset"], row["input"], row["split"], row["metric"],
                   int(row["seed"]))
            if key not in newest or row["date"] >= newest[key][0]:
                newest[key] = (row["date"], float(row["value"]))
    scores: Dict[tuple, Dict[int, float]] = {}
    for (*key, seed), (_, value) in newest.items():
        scores.setdefault(tuple(key), {})[seed] = value
    return scores


def scale(metric: str) -> Tuple[float, int]:
    """Display factor and digits: ROC-AUC in %, RMSE as is, QM9 MAE (stored in meV) to 0.1 meV."""
    if metric in ("auc", "prc_auc"):
        return 100.0, 1
    if metric.startswith("mae_"):
        return 1.0, 1
    return 1.0, 3


def seed_values(scores, row: Row, dataset: str, metric: str, split: str) -> Dict[int, float]:
    values = scores.get((row.mode, row.ratio, dataset, row.input, split, metric), {})
    factor, _ = scale(metric)
    return {seed: value * factor for seed, value in values.items()}


def mean_std(values: Sequence[float], digits: int) -> str:
    if not values:
        return "not run"
    text = f"{statistics.mean(values):.{digits}f}"
    if len(values) > 1:
        text += f" ± {statistics.stdev(values):.{digits}f}"
    return text + ("" if len(values) == 3 else f" ({len(values)} seed{'s' if len(values) > 1 else ''})")


def t_quantile(df: int) -> float:
    """Two-sided 95 % quantile of Student's t."""
    from scipy.stats import t

    return float(t.ppf(0.975, df))


def paired_difference(values: Dict[int, float], reference: Dict[int, float], metric: str, digits: int) -> str:
    """Mean of (row - reference) over the seeds both ran, ± the 95 % t half-width, and what it says."""
    seeds = sorted(set(values) & set(reference))
    if not seeds:
        return "–"
    differences = [values[s] - reference[s] for s in seeds]
    mean = statistics.mean(differences)
    if len(seeds) < 2:
        return f"{mean:+.{digits}f} (1 seed)"
    half = t_quantile(len(seeds) - 1) * statistics.stdev(differences) / math.sqrt(len(seeds))
    if abs(mean) <= half:
        verdict = "noise"
    else:
        verdict = "better" if (mean > 0) == HIGHER_IS_BETTER[metric] else "worse"
    return f"{mean:+.{digits}f} ± {half:.{digits}f} ({verdict})" + ("" if len(seeds) == 3 else f" [{len(seeds)}]")


def metric_label(dataset: str, metric: str) -> str:
    if metric == "auc":
        return f"{dataset} ROC-AUC %"
    if metric.startswith("mae_"):
        target = metric[4:]
        return f"{target if target == 'gap' else target.upper()} MAE meV"
    return f"{dataset} {metric.upper()}"


def print_table(table: Table, scores, split: str) -> bool:
    """Print one table and its paired differences; False when none of its rows ran."""
    ran = [row for row in table.rows
           if any(seed_values(scores, row, d, m, split) for d, m in table.columns)]
    if not ran:
        return False
    print(f"### {table.title}\n")
    header = " | ".join(metric_label(d, m) for d, m in table.columns)
    print(f"| row | {header} |")
    print("|---" * (len(table.columns) + 1) + "|")
    for row in table.rows:
        cells = []
        for (dataset, metric), paper in zip(table.columns, table.paper.get(row.label, ("",) * len(table.columns))):
            _, digits = scale(metric)
            cell = mean_std(list(seed_values(scores, row, dataset, metric, split).values()), digits)
            cells.append(cell + (f" (paper {paper})" if paper else ""))
        print(f"| {row.label} | " + " | ".join(cells) + " |")
    for reference in table.references:
        others = [row for row in ran if row != reference]
        if not others or reference not in ran:
            continue
        print(f"\nPaired difference with {reference.label} (row − {reference.label}, same seed; "
              "± the 95 % t half-width; better / worse only where the interval excludes zero):\n")
        print(f"| row | {header} |")
        print("|---" * (len(table.columns) + 1) + "|")
        for row in others:
            cells = []
            for dataset, metric in table.columns:
                _, digits = scale(metric)
                cells.append(paired_difference(seed_values(scores, row, dataset, metric, split),
                                               seed_values(scores, reference, dataset, metric, split),
                                               metric, digits))
            print(f"| {row.label} | " + " | ".join(cells) + " |")
    print()
    return True


def run_name(pretrain_run: str) -> str:
    """A pretraining run folder's mode and ratio, e.g. moleblend_2-2-6-moleblend_small-2000u-b32-s1 -> moleblend 2:2:6."""
    mode = os.path.basename(pretrain_run).split("-moleblend_")[0]
    ratio = re.search(r"_(\d+)-(\d+)-(\d+)$", mode)  # run_row.ratio_tag's form
    return f"{mode[:ratio.start()]} {':'.join(ratio.groups())}" if ratio else mode


def print_pretraining(pretrain_dir: str) -> None:
    """Each pretraining run's last validation and wall time."""
    keys = (("valid_spd_acc", "SPD accuracy"), ("valid_edge_acc", "edge-path hop accuracy"),
            ("valid_distance_mae", "distance MAE (Å)"), ("valid_noise_cosine", "noise cosine"))
    runs = sorted(glob.glob(os.path.join(pretrain_dir, "*", "train.log")))
    if not runs:
        return
    print("### Pretraining: the last validation (the corpus' valid split)\n")
    print("| mode | updates | wall time (validations included) | " + " | ".join(label for _, label in keys) + " |")
    print("|---" * (len(keys) + 3) + "|")
    for log in runs:
        train, valid = read_log(log)
        if not valid:
            continue
        last = valid[-1]
        cells = [f"{float(last[key]):.3f}" if key in last else "–" for key, _ in keys]
        wall = f"{float(train[-1]['wall']) / 60:.1f} min" if train else "–"
        print(f"| {run_name(os.path.dirname(log))} | {last['valid_num_updates']} | {wall} | "
              + " | ".join(cells) + " |")
    print()


def plot_pretraining(pretrain_dir: str, output: str) -> Optional[str]:
    """Every mode's pretraining loss terms over updates, train (lines) and valid (points)."""
    runs = sorted(glob.glob(os.path.join(pretrain_dir, "*", "train.log")))
    if not runs:
        return None
    panels = [("spd_loss", "SPD cross-entropy"), ("edge_loss", "edge-path cross-entropy"),
              ("distance_loss", "3D distance L1 (Å)"), ("noise_loss", "noisy-node 1 − cosine")]
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.6), squeeze=False)
    for index, log in enumerate(runs):
        name = run_name(os.path.dirname(log))
        train, valid = read_log(log)
        colour = f"C{index % 10}"
        for ax, (key, _) in zip(axes.flat, panels):
            points = [(int(r["num_updates"]), float(r[key])) for r in train if key in r]
            if points:
                ax.plot(*zip(*points), color=colour, lw=1, label=name)
            checks = [(int(r["valid_num_updates"]), float(r[f"valid_{key}"])) for r in valid if f"valid_{key}" in r]
            if checks:  # labelled too, for a run too short to have logged a training line
                ax.plot(*zip(*checks), "o", color=colour, ms=4, label=name)
    for ax, (_, title) in zip(axes.flat, panels):
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("updates")
        ax.grid(alpha=0.3)
    handles, labels = [], []
    for ax in axes.flat:
        for handle, label in zip(*ax.get_legend_handles_labels()):
            if label not in labels:
                handles.append(handle)
                labels.append(label)
    fig.legend(handles, labels, loc="lower center", ncol=max(1, min(len(labels), 6)), fontsize=9)
    fig.suptitle("Pretraining on the 50,000-molecule MOSES corpus: train (lines), valid (points)")
    fig.tight_layout(rect=(0, 0.12, 1, 1))
    fig.savefig(output, dpi=110)
    plt.close(fig)
    return output


def plot_scores(scores, split: str, output: str) -> Optional[str]:
    """Each seed's score per dataset and row (rows of Tables 3, 4, 7 and 11 that ran)."""
    rows: List[Row] = []
    for table in TABLES[:4]:
        rows += [row for row in table.rows if row not in rows]
    rows = [row for row in rows if any(seed_values(scores, row, d, m, split) for d, m in COLUMNS_2D)]
    if not rows:
        return None
    fig, axes = plt.subplots(2, 3, figsize=(14, 7.5), squeeze=False)
    for ax, (dataset, metric) in zip(axes.flat, COLUMNS_2D):
        for y, row in enumerate(rows):
            values = list(seed_values(scores, row, dataset, metric, split).values())
            ax.plot(values, [y] * len(values), "o", color="C0", alpha=0.6, ms=5)
            if values:
                ax.plot([statistics.mean(values)], [y], "|", color="k", ms=14, mew=2)
        ax.set_yticks(range(len(rows)))
        ax.set_yticklabels([row.label for row in rows], fontsize=8)
        ax.invert_yaxis()
        better = "higher is better" if HIGHER_IS_BETTER[metric] else "lower is better"
        ax.set_title(f"{metric_label(dataset, metric)} ({split}; {better})", fontsize=10)
        ax.grid(alpha=0.3, axis="x")
    fig.suptitle("Fine-tuning scores: one dot per seed, the bar at their mean")
    fig.tight_layout()
    fig.savefig(output, dpi=110)
    plt.close(fig)
    return output


def finished_logs(finetune_dir: str, dataset: str) -> Dict[Tuple[str, str], List[str]]:
    """{(run name, input): train.log of each finished seed}; a run still training is left out.
    Runs of one mode under different budgets (pretraining updates, batch, seed, fine-tuning
    epochs) would mix in one group: refused in one line."""
    groups: Dict[Tuple[str, str], List[str]] = {}
    tags: Dict[Tuple[str, str], str] = {}
    for log in sorted(glob.glob(os.path.join(finetune_dir, dataset, "*", "*", "*", "seed*", "train.log"))):
        with open(log, encoding="utf-8") as f:
            if "done training" not in f.read():
                continue
        parts = log.split(os.sep)
        group = (run_name(parts[-4]), parts[-5].replace("_", "+"))
        if tags.setdefault(group, parts[-4]) != parts[-4]:
            raise SystemExit(f"error: {finetune_dir} holds {dataset} runs of {group[0]} with {group[1]} input under "
                             f"two budgets ({tags[group]}, {parts[-4]}); pass a folder with one of them")
        groups.setdefault(group, []).append(log)
    return groups


def mean_curve(curves: List[Dict[int, float]]) -> Tuple[List[int], List[float]]:
    """The mean over seeds at each update that every seed logged."""
    updates = sorted(set.intersection(*(set(c) for c in curves)))
    return updates, [statistics.mean(c[u] for c in curves) for u in updates]


Curve = Dict[int, float]  # update -> MAE (meV)


def qm9_curves(finetune_dir: str) -> Dict[Tuple[str, str], Tuple[Dict[int, Curve], Dict[int, Curve]]]:
    """{(run name, input): ({seed: training MAE curve}, {seed: valid MAE curve})}, finished runs only."""
    curves = {}
    for group, logs in sorted(finished_logs(finetune_dir, "qm9").items()):
        train_curves, valid_curves = {}, {}
        for log in logs:
            seed = int(os.path.basename(os.path.dirname(log))[len("seed"):])
            train, valid = read_log(log)
            train_curves[seed] = {int(r["num_updates"]): float(r["mae"]) for r in train if "mae" in r}
            valid_curves[seed] = {int(r["valid_num_updates"]): float(r["valid_mae"]) for r in valid
                                  if "valid_mae" in r}
        curves[group] = (train_curves, valid_curves)
    return curves


def print_qm9_curves(curves) -> None:
    """Valid MAE at each validation of the QM9 fine-tunings (appendix D.1's early convergence);
    `curves` as `qm9_curves` returns them."""
    if not curves:
        return
    updates = sorted(set().union(*(set(c) for _, valid in curves.values() for c in valid.values())))
    if not updates:
        print("no validation in the finished QM9 fine-tuning logs")
        return

    def at(valid: Dict[int, Curve], update: int) -> Dict[int, float]:
        return {seed: c[update] for seed, c in valid.items() if update in c}

    header = " | ".join(f"update {u}" for u in updates)
    rule = "|---" * (len(updates) + 1) + "|"
    print("### QM9 valid MAE during fine-tuning (appendix D.1: does noisy_node converge faster early?)\n")
    print("Valid MAE (meV, mean of gap, HOMO, LUMO over the validation's batches) at each validation, "
          "mean ± sample sd over seeds:\n")
    print(f"| row | {header} |\n{rule}")
    for (name, modality), (_, valid) in curves.items():
        cells = [mean_std(list(values.values()), 1) if (values := at(valid, u)) else "–" for u in updates]
        print(f"| {name}, {modality} | " + " | ".join(cells) + " |")
    differences = []
    for (name, modality), (_, valid) in curves.items():
        reference = curves.get(("moleblend 2:2:6", modality))
        if name != "moleblend 2:2:6" and reference is not None:
            cells = [paired_difference(at(valid, u), at(reference[1], u), "mae_gap", 1) for u in updates]
            differences.append(f"| {name}, {modality} | " + " | ".join(cells) + " |")
    if differences:
        print("\nPaired difference with moleblend 2:2:6 of the same input (row − moleblend, same seed; ± the 95 % t "
              "half-width; better / worse only where the interval excludes zero):\n")
        print(f"| row | {header} |\n{rule}")
        print("\n".join(differences))
    print()


def plot_qm9_curves(curves, output: str) -> Optional[str]:
    """Training and valid MAE of the QM9 fine-tunings over updates: per mode and input, the mean over
    seeds; `curves` as `qm9_curves` returns them."""
    if not curves:
        return None
    modes = sorted({name for name, _ in curves})
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5), squeeze=False)
    for (name, modality), (train_curves, valid_curves) in curves.items():
        style = dict(color=f"C{modes.index(name)}", ls="-" if modality == "3d" else "--",
                     label=f"{name}, {modality} ({len(train_curves)} seed{'s' if len(train_curves) > 1 else ''})")
        axes[0, 0].plot(*mean_curve(list(train_curves.values())), lw=1.3, **style)
        axes[0, 1].plot(*mean_curve(list(valid_curves.values())), marker="o", ms=3, **style)
    axes[0, 0].set_title("QM9 training MAE (meV, mean of gap, HOMO, LUMO; last 25 updates)", fontsize=10)
    axes[0, 1].set_title("QM9 valid MAE (meV, 40 valid batches)", fontsize=10)
    for ax in axes.flat:
        ax.set_xlabel("updates")
        ax.grid(alpha=0.3)
    axes[0, 1].legend(fontsize=8)
    fig.suptitle("QM9 fine-tuning from each pretraining: mean over seeds")
    fig.tight_layout()
    fig.savefig(output, dpi=110)
    plt.close(fig)
    return output


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    parser.add_argument("results", help="the study's results CSV (run_row.py's RUN_DIR/results.csv)")
    parser.add_argument("--split", default="test", choices=["test", "valid"],
                        help="split of the tables (default test; the checkpoint is always the best on valid)")
    parser.add_argument("--pretrain-dir", default="", help="RUN_DIR/pretrain, for the pretraining curves")
    parser.add_argument("--finetune-dir", default="", help="RUN_DIR/finetune, for the QM9 curves and their table")
    parser.add_argument("--plots", default="", help="folder to write the PNG plots to")
    args = parser.parse_args(argv)
    if not os.path.exists(args.results):
        raise SystemExit(f"error: no results file {args.results}; run_row.py writes RUN_DIR/results.csv")

    scores = read_results(args.results)
    if args.pretrain_dir:
        print_pretraining(args.pretrain_dir)
    printed = [print_table(table, scores, args.split) for table in TABLES]
    if not any(printed):
        print("no row of the study's tables in", args.results)
    curves = qm9_curves(args.finetune_dir) if args.finetune_dir else {}  # read once: table and plot
    print_qm9_curves(curves)
    if args.plots:
        os.makedirs(args.plots, exist_ok=True)
        written = [plot_scores(scores, args.split, os.path.join(args.plots, "ablation_scores.png"))]
        if args.pretrain_dir:
            written.append(plot_pretraining(args.pretrain_dir, os.path.join(args.plots,
                                                                            "ablation_pretrain_curves.png")))
        written.append(plot_qm9_curves(curves, os.path.join(args.plots, "ablation_qm9_curves.png")))
        for path in written:
            if path:
                print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
