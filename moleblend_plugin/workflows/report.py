"""The report folder of a fine-tuning run: the valid curve as a PNG, a Markdown summary."""
from __future__ import annotations

import os
from typing import List, Sequence, Tuple

from .commands import shell_line


def plot_valid_curve(path: str, curve: Tuple[List[int], List[int], List[float]], metric: str, title: str,
                     maximize: bool = False) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs, _, values = curve
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(epochs, values, marker=".")
    if values:  # the epoch whose checkpoint is checkpoint_best.pt
        best = (max if maximize else min)(range(len(values)), key=values.__getitem__)
        ax.scatter([epochs[best]], [values[best]], s=80, facecolors="none", edgecolors="tab:red", zorder=3,
                   label=f"best: epoch {epochs[best]}, {values[best]:.4g}")
        ax.legend()
    ax.set_xlabel("epoch")
    ax.set_ylabel(f"valid {metric}")
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _number(value) -> str:
    return "n/a" if value is None else f"{value:.4g}"


def summary_text(result: dict, commands: Sequence[Sequence[str]]) -> str:
    settings = result["settings"]
    metric = settings["metric"]
    names = ", ".join(t["name"] for t in result["targets"])
    splits = ", ".join(f"{k} {v}" for k, v in result["splits"].items())
    lines = [
        f"# Fine-tuning report: {os.path.basename(result['input'])}",
        "",
        f"- targets ({result['task_type']}): {names}",
        f"- molecules: {splits}; rejected {result['num_rejected']}"
        + (f" ({', '.join(f'{k} {v}' for k, v in result['rejected_by_reason'].items())}, see data/rejects.csv)"
           if result["num_rejected"] else ""),
        f"- model: {settings['arch']}, {result['input_modality']} input, "
        + (f"from {result['pretrained']}" if result["pretrained"] else "from scratch") + f", seed {result['seed']}",
        f"- training: batch {settings['batch_size']}, {settings['max_epoch']} epochs, Adam lr {settings['lr']:g}; "
        f"checkpoint chosen on valid {metric} ({'max' if settings['maximize'] else 'min'})",
        "",
        "| metric | valid | test |",
        "|---|---|---|",
    ]
    single = len(result["targets"]) == 1  # per-target rows would repeat the overall ones
    keys = [k for k in result["test"] if not (single and any(k.startswith(f"{m}_") for m in ("mae", "rmse", "r2",
                                                                                          "auc", "prc_auc")))]
    for key in keys:
        lines.append(f"| {key} | {_number(result['valid'].get(key))} | {_number(result['test'].get(key))} |")
    lines += ["", "![valid curve](valid_curve.png)", "", "## Commands", "", "```bash"]
    lines += [shell_line(c) for c in commands] + ["```", ""]
    return "\n".join(lines)


def write_report(output: str, result: dict, curve, commands: Sequence[Sequence[str]]) -> None:
    plot_valid_curve(os.path.join(output, "valid_curve.png"), curve, result["settings"]["metric"],
                     os.path.basename(result["input"]), result["settings"]["maximize"])
    with open(os.path.join(output, "summary.md"), "w", encoding="utf-8") as f:
        f.write(summary_text(result, commands))
