"""Pick the grid point of a fine-tuning sweep by its valid metric; print its test summary.

    python examples/finetune/select_on_valid.py runs/sweep/bbbp --metric auc

RUN_DIR holds one folder per grid point, each a run_seeds.py --run-dir with a
`pretrained/seedN/train.log` per seed (or `scratch/...`). A grid point's score is the
mean over seeds of each run's best valid metric (the epoch its checkpoint_best.pt comes
from); the highest AUC or the lowest MAE/RMSE wins. Test metrics are only read for the
winner, never compared. Writes RUN_DIR/selection.csv (every grid point) and prints the
winner's summary.md.
"""
import argparse
import csv
import glob
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from run_seeds import valid_curve  # noqa: E402


def grid_scores(run_dir: str, metric: str, variant: str):
    better = max if metric == "auc" else min
    rows = []
    for point in sorted(glob.glob(os.path.join(run_dir, "*", variant))):
        best = []
        for log in sorted(glob.glob(os.path.join(point, "seed*", "train.log"))):
            _, values = valid_curve(log, metric)
            if values:
                best.append(better(values))
        if best:
            name = os.path.basename(os.path.dirname(point))
            rows.append({"grid_point": name, "seeds": len(best), f"valid_{metric}_mean": float(np.mean(best)),
                         f"valid_{metric}_std": float(np.std(best, ddof=1)) if len(best) > 1 else float("nan")})
    return rows


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("run_dir", help="folder of the sweep: one run_seeds.py run dir per grid point")
    parser.add_argument("--metric", required=True, choices=["auc", "mae", "rmse"], help="valid metric to select on")
    parser.add_argument("--variant", default="pretrained", help="run_seeds variant to select among (default pretrained)")
    args = parser.parse_args(argv)
    rows = grid_scores(args.run_dir, args.metric, args.variant)
    if not rows:
        raise SystemExit(f"{args.run_dir}: no {args.variant}/seed*/train.log with valid_{args.metric}")
    key = f"valid_{args.metric}_mean"
    rows.sort(key=lambda r: -r[key] if args.metric == "auc" else r[key])
    with open(os.path.join(args.run_dir, "selection.csv"), "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    best = rows[0]
    print(f"selected on valid {args.metric}: {best['grid_point']} "
          f"({best[key]:.4g} over {best['seeds']} seeds; {len(rows)} grid points in selection.csv)")
    summary = os.path.join(args.run_dir, best["grid_point"], "summary.md")
    if os.path.exists(summary):
        print(open(summary, encoding="utf-8").read())
    return 0


if __name__ == "__main__":
    sys.exit(main())
