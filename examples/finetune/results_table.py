"""Collect the summaries of examples/finetune/cpu_results.sh into the tables of docs/results.md.

    python examples/finetune/results_table.py RUNS_DIR

Reads RUNS_DIR/<dataset>/summary.csv (written by run_seeds.py) and prints Markdown tables:
ours from scratch and from the pretrained checkpoint (test split, mean +- sample std over
the seeds that ran) beside the paper's numbers.
"""
import argparse
import csv
import os

# The paper's Table 1 (ROC-AUC %, scaffold split) and text (RMSE), MoleBlend and its
# Transformer trained from scratch; Table 2 / Table 5 (QM9 MAE, meV).
PAPER_MOLECULENET = {
    "bbbp": ("auc", "73.0 ± 0.8", "69.4 ± 1.1"),
    "bace": ("auc", "83.7 ± 1.4", "79.5 ± 0.2"),
    "clintox": ("auc", "87.6 ± 0.7", "90.3 ± 0.9"),
    "hiv": ("auc", "79.0 ± 0.8", "76.2 ± 0.6"),
    "esol": ("rmse", "0.831", "–"),
    "freesolv": ("rmse", "1.910", "–"),
    "lipophilicity": ("rmse", "0.638", "–"),
}
PAPER_QM9 = {("gap", "2d+3d"): "34.75", ("homo", "2d+3d"): "21.47", ("lumo", "2d+3d"): "19.23",
             ("homo", "3d"): "23.62"}


def read_summary(path):
    rows = {}
    with open(path, newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            rows[(row["variant"], row["metric"])] = row
    return rows


def cell(rows, variant, metric, scale=1.0, digits=3):
    row = rows.get((variant, metric))
    if row is None:
        return "not run"
    mean, std, n = float(row["mean"]) * scale, float(row["std"] or "nan") * scale, int(row["seeds"])
    text = f"{mean:.{digits}f}"
    if n > 1:
        text += f" ± {std:.{digits}f}"
    return text + (f" ({n} seed{'s' if n > 1 else ''})" if n != 3 else "")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", help="the RUNS folder of cpu_results.sh")
    args = parser.parse_args(argv)

    print("| dataset | metric | ours, scratch | ours, pretrained | paper, Transformer from scratch | paper, MoleBlend |")
    print("| --- | --- | --- | --- | --- | --- |")
    for name, (metric, paper, paper_scratch) in PAPER_MOLECULENET.items():
        path = os.path.join(args.runs, name, "summary.csv")
        if not os.path.exists(path):
            print(f"| {name} | {metric} | not run | not run | {paper_scratch} | {paper} |")
            continue
        rows = read_summary(path)
        scale, digits, label = (100.0, 1, "ROC-AUC %") if metric == "auc" else (1.0, 3, "RMSE")
        print(f"| {name} | {label} | {cell(rows, 'scratch', metric, scale, digits)} | "
              f"{cell(rows, 'pretrained', metric, scale, digits)} | {paper_scratch} | {paper} |")

    print()
    print("| QM9 target | input | ours, scratch (MAE meV) | ours, pretrained (MAE meV) | paper, MoleBlend |")
    print("| --- | --- | --- | --- | --- |")
    for modality in ("3d", "2d+3d"):
        path = os.path.join(args.runs, f"qm9_{modality.replace('+', '_')}", "summary.csv")
        rows = read_summary(path) if os.path.exists(path) else {}
        for target in ("gap", "homo", "lumo"):
            metric = f"mae_{target}"
            print(f"| {target} | {modality} | {cell(rows, 'scratch', metric, digits=1)} | "
                  f"{cell(rows, 'pretrained', metric, digits=1)} | {PAPER_QM9.get((target, modality), '–')} |")


if __name__ == "__main__":
    main()
