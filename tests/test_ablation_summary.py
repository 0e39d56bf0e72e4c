"""examples/ablations/summarize.py: which rows it reads, its paired differences, its plots."""
import csv
import os
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, "examples", "ablations"))

import run_row  # noqa: E402
import summarize  # noqa: E402


def write_results(path, rows):
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=run_row.RESULT_FIELDS)
        writer.writeheader()
        for mode, ratio, dataset, seed, metric, value, date in rows:
            writer.writerow({"mode": mode, "blend_ratio": ratio, "dataset": dataset, "input": "2d", "seed": seed,
                             "split": "test", "metric": metric, "value": value, "pretrain_updates": 2000,
                             "finetune_epochs": 6, "commit": "abc", "date": date, "arch": "moleblend_small",
                             "finetune_max_update": ""})


def test_newest_row_wins_and_values_are_scaled(tmp_path):
    path = tmp_path / "results.csv"
    write_results(path, [("moleblend", "2:2:6", "bbbp", 1, "auc", 0.70, "2026-12-01T00:00:00+00:00"),
                         ("moleblend", "2:2:6", "bbbp", 1, "auc", 0.72, "2026-12-02T00:00:00+00:00"),
                         ("moleblend", "2:2:6", "bbbp", 2, "auc", 0.74, "2026-12-01T00:00:00+00:00")])
    scores = summarize.read_results(str(path))
    values = summarize.seed_values(scores, summarize.MOLEBLEND, "bbbp", "auc", "test")
    assert values == pytest.approx({1: 72.0, 2: 74.0})


def test_paired_difference_against_a_hand_computed_t_interval():
    reference = {1: 70.0, 2: 71.0, 3: 72.0}
    # differences 2, 3, 4: mean 3, sd 1, half-width 4.303 / sqrt(3) = 2.484 -> excludes zero
    assert summarize.paired_difference({1: 72.0, 2: 74.0, 3: 76.0}, reference, "auc", 1) == "+3.0 ± 2.5 (better)"
    # lower RMSE is better: the same differences on RMSE are worse
    assert summarize.paired_difference({1: 72.0, 2: 74.0, 3: 76.0}, reference, "rmse", 1) == "+3.0 ± 2.5 (worse)"
    # differences -1, 2, 5: mean 2, sd 3, half-width 7.45 -> inside the noise
    assert summarize.paired_difference({1: 69.0, 2: 73.0, 3: 77.0}, reference, "auc", 2) == "+2.00 ± 7.45 (noise)"
    # only the seeds both ran are paired
    assert summarize.paired_difference({1: 71.0, 4: 90.0}, reference, "auc", 1) == "+1.0 (1 seed)"
    assert summarize.paired_difference({4: 90.0}, reference, "auc", 1) == "–"


def test_tables_and_plots_from_a_results_file(tmp_path, capsys):
    path = tmp_path / "results.csv"
    rows = []
    for seed, (mine, other) in enumerate([(0.70, 0.66), (0.72, 0.69), (0.71, 0.65)], start=1):
        rows += [("moleblend", "2:2:6", "bbbp", seed, "auc", mine, "2026-12-01"),
                 ("scratch", "", "bbbp", seed, "auc", other, "2026-12-01"),
                 ("moleblend", "2:2:6", "esol", seed, "rmse", 1.0 + seed / 10, "2026-12-01")]
    write_results(path, rows)
    assert summarize.main([str(path), "--plots", str(tmp_path / "plots")]) == 0
    out = capsys.readouterr().out
    assert "| moleblend (2:2:6) | 71.0 ± 1.0 (paper 73.00) |" in out
    assert "| scratch | 66.7 ± 2.1 |" in out
    # the differences' table: scratch - moleblend per seed -4, -3, -6 -> mean -4.33, 95 % half-width 3.79
    assert "| scratch | -4.3 ± 3.8 (worse) | – |" in out
    assert "QM9" not in out  # a table none of whose rows ran is left out
    assert os.path.getsize(tmp_path / "plots" / "ablation_scores.png") > 10_000


def test_a_missing_results_file_is_one_line():
    with pytest.raises(SystemExit, match="no results file"):
        summarize.main(["/nonexistent/results.csv"])


def write_finetune_log(path, train_mae, valid_mae, done=True):
    """A fairseq json log as a QM9 fine-tuning writes it: training lines every 25 updates, validations."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        f.write("{'_name': None, 'common': {}}\n")  # the configuration dump, a Python dict
        for update, mae in train_mae.items():
            f.write(f'{{"epoch": 1, "update": 0.1, "loss": "0.5", "mae": "{mae}", "num_updates": "{update}"}}\n')
        for update, mae in valid_mae.items():
            f.write(f'{{"epoch": 1, "valid_loss": "0.5", "valid_mae": "{mae}", "valid_num_updates": "{update}"}}\n')
        if done:
            f.write("done training in 90.0 seconds\n")


def test_qm9_curves_average_finished_seeds_only_and_pair_by_seed(tmp_path, capsys):
    qm9 = tmp_path / "qm9"
    noisy = qm9 / "3d" / "noisy_node-moleblend_small-2000u-b32-s1-e1" / "pretrained"
    blended = qm9 / "3d" / "moleblend_2-2-6-moleblend_small-2000u-b32-s1-e1" / "pretrained"
    blended_2d3d = qm9 / "2d_3d" / "moleblend_2-2-6-moleblend_small-2000u-b32-s1-e1" / "pretrained"
    write_finetune_log(str(noisy / "seed1" / "train.log"), {25: 500.0, 50: 400.0}, {100: 300.0, 200: 250.0})
    write_finetune_log(str(noisy / "seed2" / "train.log"), {25: 600.0, 50: 420.0, 75: 390.0}, {100: 320.0})
    write_finetune_log(str(noisy / "seed3" / "train.log"), {25: 9999.0}, {100: 1.0}, done=False)  # still training
    # moleblend's seeds 2 and 3: only seed 2 pairs with noisy_node's
    write_finetune_log(str(blended / "seed2" / "train.log"), {25: 700.0}, {100: 340.0, 200: 280.0})
    write_finetune_log(str(blended / "seed3" / "train.log"), {25: 700.0}, {100: 100.0})
    write_finetune_log(str(blended_2d3d / "seed2" / "train.log"), {25: 700.0}, {100: 999.0})  # another input
    curves = summarize.qm9_curves(str(tmp_path))
    assert sorted(curves) == [("moleblend 2:2:6", "2d+3d"), ("moleblend 2:2:6", "3d"), ("noisy_node", "3d")]
    assert sorted(curves["noisy_node", "3d"][1]) == [1, 2]  # seed 3 is left out
    # the mean at the updates both seeds logged
    assert summarize.mean_curve(list(curves["noisy_node", "3d"][0].values())) == ([25, 50], [550.0, 410.0])
    summarize.print_qm9_curves(curves)
    out = capsys.readouterr().out
    # every validation update is a column; a row without it shows the seeds that have it
    assert "| row | update 100 | update 200 |" in out
    assert "| noisy_node, 3d | 310.0 ± 14.1 (2 seeds) | 250.0 (1 seed) |" in out
    # paired by seed number, with moleblend of the same input: seed 2 only, 320 - 340 and (update 200) none
    assert "| noisy_node, 3d | -20.0 (1 seed) | – |" in out
    assert "| moleblend 2:2:6, 3d | -" not in out.split("Paired difference")[1]  # the reference is no row


def test_qm9_curves_refuse_two_budgets_of_one_mode(tmp_path):
    for tag in ("noisy_node-moleblend_small-2000u-b32-s1-e1", "noisy_node-moleblend_small-4000u-b32-s1-e1"):
        write_finetune_log(str(tmp_path / "qm9" / "3d" / tag / "pretrained" / "seed1" / "train.log"),
                           {25: 500.0}, {100: 300.0})
    with pytest.raises(SystemExit, match="two budgets"):
        summarize.qm9_curves(str(tmp_path))


def test_qm9_curve_plot_is_written(tmp_path):
    run = tmp_path / "qm9" / "3d" / "noisy_node-moleblend_small-2000u-b32-s1-e1" / "pretrained"
    write_finetune_log(str(run / "seed1" / "train.log"), {25: 500.0, 50: 400.0}, {100: 300.0})
    output = tmp_path / "curves.png"
    assert summarize.plot_qm9_curves(summarize.qm9_curves(str(tmp_path)), str(output)) == str(output)
    assert os.path.getsize(output) > 10_000
    assert summarize.plot_qm9_curves(summarize.qm9_curves(str(tmp_path / "empty")), str(output)) is None
