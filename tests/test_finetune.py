"""Fine-tuning: the criterion and model learn, missing labels are ignored, targets are
standardized and mapped back, the evaluation command scores what validation scores, and
the seed runner reads fairseq's logs."""
import csv
import json
import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from fairseq import metrics

from finetune_runs import pcqm4mv2_checkpoint, pcqm4mv2_dataset, qm9_dataset, regression_checkpoint, seed_runner
from model_inputs import ASPIRIN, CAFFEINE, ETHANOL, NAPHTHOL, SALT, batch_of, tiny_config
from moleblend_plugin.checkpoints.safe_loading import load_checkpoint_file
from moleblend_plugin.criterions.finetune import FinetuneCriterion, destandardize, standardize
from moleblend_plugin.evaluate import evaluate, score_predictions
from moleblend_plugin.evaluate import main as evaluate_main
from moleblend_plugin.inference import TargetInfo, prediction_values
from moleblend_plugin.models.moleblend import MoleBlendEncoder, MoleBlendModel

NAMES = ["a", "b"]
MEAN = np.array([100.0, -5.0], dtype=np.float32)
STD = np.array([20.0, 0.5], dtype=np.float32)


def fake_task(task_type: str):
    return SimpleNamespace(task_type=task_type, target_mean=MEAN, target_std=STD,
                           targets=[{"name": n} for n in NAMES])


def sample_of(batch):
    return {"net_input": {"batch": batch}, "nsentences": len(batch["targets"]),
            "ntokens": int(batch["atom_mask"].sum())}


class FixedPredictions(torch.nn.Module):
    """Stands in for the model: returns the given predictions."""

    def __init__(self, prediction):
        super().__init__()
        self.prediction = prediction

    def forward(self, batch, **unused):
        return {"prediction": self.prediction}


def reduced(logs):
    with metrics.aggregate() as agg:
        FinetuneCriterion.reduce_metrics(logs)
        return agg.get_smoothed_values()


def test_tiny_labelled_set_overfits():
    batch = batch_of(ASPIRIN, CAFFEINE, ETHANOL, NAPHTHOL, SALT)
    labels = torch.tensor([[130.0, -5.5], [80.0, -4.0], [110.0, -5.2], [95.0, float("nan")], [60.0, -4.6]])
    batch["targets"] = labels
    torch.manual_seed(0)
    cfg = tiny_config(input_modality="2d+3d")
    model = MoleBlendModel(cfg, MoleBlendEncoder(cfg, 2, pretraining=False))
    criterion = FinetuneCriterion(fake_task("regression"), "mse")
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    model.train()
    first = None
    for _ in range(150):
        loss, _, log = criterion(model, sample_of(batch))
        first = first if first is not None else log["loss"]
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.eval()
    _, _, log = criterion(model, sample_of(batch))
    assert log["loss"] < 0.01 * first
    # The mean error in original units: under 5% of each target's spread.
    mae = np.array(log["target_abs_error"]) / np.array(log["target_labels"])
    assert log["target_labels"] == [5, 4]
    assert np.all(mae < 0.05 * STD)


def test_missing_labels_count_nowhere():
    labels = torch.tensor([[1.0, float("nan")], [0.0, 1.0], [1.0, 0.0], [0.0, float("nan")], [1.0, 1.0]])
    batch = {"targets": labels, "atom_mask": torch.ones(5, 3, dtype=torch.bool)}
    logits = torch.tensor([[0.3, 2.0], [-0.2, 0.8], [0.5, -0.4], [-1.0, -3.0], [0.1, 0.2]])
    moved = logits.clone()
    moved[0, 1], moved[3, 1] = 50.0, -50.0  # the unlabelled entries only
    labelled_moved = logits.clone()
    labelled_moved[1, 1] = -50.0
    for task_type in ("classification", "regression"):
        criterion = FinetuneCriterion(fake_task(task_type), "mse")
        values = []
        for prediction in (logits, moved, labelled_moved):
            model = FixedPredictions(prediction).eval()
            loss, _, log = criterion(model, sample_of(batch))
            smoothed = reduced([log])
            key = "auc" if task_type == "classification" else "mae"
            probabilities = prediction_values(prediction, [TargetInfo(n, "", task_type, m, s)
                                                           for n, m, s in zip(NAMES, MEAN, STD)])
            scores = score_predictions(task_type, labels.numpy(), probabilities, NAMES)
            values.append((loss.item(), smoothed[key], scores[key]))
        assert values[1] == pytest.approx(values[0])  # unlabelled entries changed: nothing moves
        assert values[2][0] != pytest.approx(values[0][0])  # a labelled entry changed: the loss moves
        assert values[2][2] != pytest.approx(values[0][2])
        assert values[0][1] == pytest.approx(values[0][2], abs=1e-4)  # validation and evaluate agree


def test_standardization_round_trips_to_original_units():
    labels = torch.tensor([[120.0, -5.25], [90.0, -4.5], [101.0, float("nan")]])
    standardized = standardize(torch.nan_to_num(labels), MEAN, STD)
    assert torch.allclose(destandardize(standardized, MEAN, STD), torch.nan_to_num(labels))
    targets = [TargetInfo(n, "", "regression", float(m), float(s)) for n, m, s in zip(NAMES, MEAN, STD)]
    np.testing.assert_allclose(prediction_values(standardized, targets)[:2], labels[:2].numpy(), rtol=1e-6)
    criterion = FinetuneCriterion(fake_task("regression"), "mse")
    batch = {"targets": labels, "atom_mask": torch.ones(3, 2, dtype=torch.bool)}
    _, _, exact = criterion(FixedPredictions(standardized).eval(), sample_of(batch))
    assert exact["loss"] == pytest.approx(0.0, abs=1e-10) and exact["abs_error"] == pytest.approx(0.0, abs=1e-3)
    # One standard deviation off in the standardized space = each target's std in its own units.
    _, _, shifted = criterion(FixedPredictions(standardized + 1.0).eval(), sample_of(batch))
    assert shifted["loss"] == pytest.approx(1.0)
    np.testing.assert_allclose(np.array(shifted["target_abs_error"]) / np.array(shifted["target_labels"]), STD,
                               rtol=1e-5)


def test_evaluate_scores_what_validation_logged(tmp_path, capsys):
    """The best checkpoint's valid MAE (fairseq's validation) equals the evaluation command's."""
    checkpoint = regression_checkpoint()
    best = load_checkpoint_file(checkpoint)["extra_state"]["best"]
    output = tmp_path / "valid.json"
    capsys.readouterr()
    assert evaluate_main([checkpoint, "--data", qm9_dataset(), "--split", "valid", "--quiet",
                          "--output", str(output), "--batch-size", "3"]) == 0
    result = json.loads(output.read_text())
    assert json.loads(capsys.readouterr().out) == result
    assert result["num_molecules"] == 8 and [t["name"] for t in result["targets"]] == ["gap", "homo"]
    assert result["metrics"]["mae"] == pytest.approx(best, rel=1e-4)
    per_target = [result["metrics"]["mae_gap"], result["metrics"]["mae_homo"]]
    assert result["metrics"]["mae"] == pytest.approx(np.mean(per_target), rel=1e-6)  # all 8 labelled
    assert result["metrics"]["rmse"] >= result["metrics"]["mae"]
    assert not any(isinstance(v, float) and math.isnan(v) for v in result["metrics"].values())


def test_pcqm4mv2_model_gets_the_ogb_evaluator_score():
    pytest.importorskip("ogb.lsc")
    checkpoint = pcqm4mv2_checkpoint()
    valid = evaluate(checkpoint, pcqm4mv2_dataset(), "valid", batch_size=2)
    assert valid["targets"] == [{"name": "homolumogap", "unit": "eV", "labels": 5}]
    assert valid["metrics"]["ogb_pcqm4mv2_mae"] == pytest.approx(valid["metrics"]["mae"], rel=1e-6)
    assert valid["metrics"]["mae"] > 0
    hidden = evaluate(checkpoint, pcqm4mv2_dataset(), "test-dev")  # OGB keeps these labels
    assert hidden["num_molecules"] == 3 and hidden["targets"][0]["labels"] == 0
    assert hidden["metrics"]["mae"] is None and hidden["metrics"]["ogb_pcqm4mv2_mae"] is None
    json.dumps(hidden, allow_nan=False)


def test_seed_runner_reads_fairseq_logs_and_summarises(tmp_path):
    runner = seed_runner()
    log = tmp_path / "train.log"
    log.write_text(
        "begin validation on \"valid\" subset\n"
        '{"epoch": 1, "valid_loss": "0.9", "valid_mae": "2.5", "valid_rmse": "3.1", "valid_num_updates": "8"}\n'
        '{"epoch": 1, "train_loss": "1.2", "train_mae": "2.9"}\n'
        '{"epoch": 2, "train_inner_loss": "1.0"}\n'
        '{"epoch": 2, "valid_loss": "0.7", "valid_mae": "2.25", "valid_rmse": "2.75", "valid_num_updates": "16"}\n')
    assert runner.valid_curve(str(log), "mae") == ([8, 16], [2.5, 2.25])
    assert runner.valid_curve(str(log), "rmse") == ([8, 16], [3.1, 2.75])
    args = runner.make_parser().parse_args([str(tmp_path), "--run-dir", str(tmp_path), "--metric", "rmse"])
    results = {"scratch": {s: {"metrics": {"rmse": v, "mae": None}} for s, v in zip([1, 2, 3], [1.0, 2.0, 4.0])}}
    curves = {"scratch": {s: ([1, 2], [3.0, 2.0 + s]) for s in [1, 2, 3]}}
    runner.summarise(args, results, curves)
    rows = {r["metric"]: r for r in csv.DictReader(open(tmp_path / "summary.csv"))}
    assert float(rows["rmse"]["mean"]) == pytest.approx(7 / 3)
    assert float(rows["rmse"]["std"]) == pytest.approx(np.std([1.0, 2.0, 4.0], ddof=1))
    assert rows["mae"]["mean"] == "nan"
    table = (tmp_path / "summary.md").read_text()
    assert "| scratch | 2.333 ± 1.5 | 1, 2, 4 | 3 ± 0 |" in table  # best valid: min over epochs per seed
