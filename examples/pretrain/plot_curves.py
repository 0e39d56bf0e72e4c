"""Plot each pretraining loss term and metric over updates, train and valid.

    python examples/pretrain/plot_curves.py TRAIN_LOG --output curves.png

TRAIN_LOG is the file fairseq-train wrote with `--log-format json --log-file TRAIN_LOG`:
per-interval training records (with an "update" key) and validation records
("valid_*" keys).
"""
import argparse
import json

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

PANELS = [
    ("loss", "total loss"), ("spd_loss", "SPD cross-entropy"), ("edge_loss", "edge-path cross-entropy"),
    ("distance_loss", "3D distance L1 (A)"), ("noise_loss", "noisy-node 1 - cosine"),
    ("spd_acc", "SPD accuracy"), ("edge_acc", "edge-path hop accuracy"), ("distance_mae", "distance MAE (A)"),
]


def read_log(path):
    train, valid = [], []
    with open(path) as f:
        for line in f:
            line = line.strip()
            if not line.startswith('{"'):  # also skips the configuration dump, a Python dict
                continue
            record = json.loads(line)
            if "update" in record and "num_updates" in record:
                train.append(record)
            elif "valid_loss" in record:
                valid.append(record)
    return train, valid


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("log", help="fairseq-train --log-file written with --log-format json")
    parser.add_argument("--output", required=True, help="PNG file")
    parser.add_argument("--title", default="MoleBlend pretraining", help="figure title")
    args = parser.parse_args(argv)

    train, valid = read_log(args.log)
    if not train:
        raise SystemExit(f"{args.log}: no training records (was it written with --log-format json?)")
    panels = [(key, label) for key, label in PANELS if key in train[-1]]
    columns = 4
    rows = (len(panels) + columns - 1) // columns
    fig, axes = plt.subplots(rows, columns, figsize=(4 * columns, 3 * rows), squeeze=False)
    for ax, (key, label) in zip(axes.flat, panels):
        ax.plot([int(r["num_updates"]) for r in train], [float(r[key]) for r in train], label="train", lw=1)
        points = [(int(r["valid_num_updates"]), float(r[f"valid_{key}"])) for r in valid if f"valid_{key}" in r]
        if points:
            ax.plot(*zip(*points), "o-", label="valid", ms=3)
        ax.set_title(label, fontsize=10)
        ax.set_xlabel("updates")
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(panels):]:
        ax.axis("off")
    axes.flat[0].legend()
    fig.suptitle(args.title)
    fig.tight_layout()
    fig.savefig(args.output, dpi=110)
    print(f"wrote {args.output} ({len(train)} train and {len(valid)} valid records)")


if __name__ == "__main__":
    main()
