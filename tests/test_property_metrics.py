"""Whole-split metrics: against scikit-learn's definitions, logged by validation as
`evaluate` scores them, and OGB's own Evaluator on OGB datasets."""
import os

import numpy as np
import pytest
from sklearn.metrics import average_precision_score, r2_score, roc_auc_score

from finetune_runs import finetune, ogb_dataset, workdir
from moleblend_plugin.checkpoints.safe_loading import load_checkpoint_file
from moleblend_plugin.criterions.property_metrics import split_metric_names, split_scores
from moleblend_plugin.evaluate import evaluate


def test_classification_scores_are_sklearns_per_target_and_their_mean():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, (40, 2)).astype(float)
    labels[::7, 1] = np.nan
    scores = rng.random((40, 2))
    result = split_scores("classification", labels, scores, ["Tox A", "tox-b"])
    per = [(~np.isnan(labels[:, k])) for k in range(2)]
    auc = [roc_auc_score(labels[per[k], k], scores[per[k], k]) for k in range(2)]
    ap = [average_precision_score(labels[per[k], k], scores[per[k], k]) for k in range(2)]
    assert result["auc_tox_a"] == pytest.approx(auc[0]) and result["prc_auc_tox_b"] == pytest.approx(ap[1])
    assert result["auc"] == pytest.approx(np.mean(auc)) and result["prc_auc"] == pytest.approx(np.mean(ap))


def test_regression_r2_is_sklearns_and_undefined_for_constant_labels():
    rng = np.random.default_rng(1)
    labels = rng.normal(size=(30, 1))
    predictions = labels + rng.normal(scale=0.3, size=(30, 1))
    result = split_scores("regression", labels, predictions, ["y"])
    assert result["r2"] == pytest.approx(r2_score(labels, predictions)) == pytest.approx(result["r2_y"])
    assert result["rmse"] == pytest.approx(np.sqrt(np.mean((labels - predictions) ** 2)))
    assert split_scores("regression", np.ones((5, 1)), np.zeros((5, 1)), ["y"])["r2"] is None


def test_validation_logs_the_names_that_checkpoint_selection_can_use():
    assert split_metric_names("classification", ["a"], None) == ["auc", "prc_auc"]
    assert split_metric_names("regression", ["a b", "c"], {"name": "ogbg-molesol", "eval_metric": "rmse"}) == [
        "mae", "rmse", "r2", "mae_a_b", "rmse_a_b", "r2_a_b", "mae_c", "rmse_c", "r2_c", "ogb_rmse"]


@pytest.mark.parametrize("name, metric, own, extra", [("ogbg-molhiv", "rocauc", "auc", "prc_auc"),
                                                       ("ogbg-molesol", "rmse", "rmse", "r2")])
def test_ogb_datasets_are_scored_by_ogbs_evaluator_in_validation_and_evaluate(name, metric, own, extra):
    data = ogb_dataset(name)
    maximize = ["--maximize-best-checkpoint-metric"] if metric == "rocauc" else []
    # Checkpoints chosen on the OGB metric, and on the new whole-split metric: fairseq
    # stops with a KeyError when validation does not log the metric it is told to use.
    checkpoint = finetune(data, os.path.join(workdir(), f"{name}_ft"), "--input-modality", "2d", "--max-epoch", "2",
                          "--best-checkpoint-metric", f"ogb_{metric}", *maximize)
    scores = evaluate(checkpoint, data, "valid")["metrics"]
    assert scores[f"ogb_{metric}"] is not None and scores[extra] is not None
    # one target: OGB's metric is the project's own
    assert scores[f"ogb_{metric}"] == pytest.approx(scores[own], abs=1e-9)
    best = load_checkpoint_file(checkpoint)["extra_state"]["best"]
    assert scores[f"ogb_{metric}"] == pytest.approx(best, abs=1e-4)  # validation and evaluate agree
    other = finetune(data, os.path.join(workdir(), f"{name}_ft_{extra}"), "--input-modality", "2d", "--max-epoch",
                     "1", "--best-checkpoint-metric", extra, "--maximize-best-checkpoint-metric")
    assert load_checkpoint_file(other)["extra_state"]["best"] == pytest.approx(
        evaluate(other, data, "valid")["metrics"][extra], abs=1e-4)


def test_r2_of_several_targets_measures_each_from_its_own_mean():
    from sklearn.metrics import r2_score

    rng = np.random.default_rng(2)
    labels = np.stack([rng.normal(0, 1, 50), rng.normal(100, 1, 50)], axis=1)  # targets at different levels
    predictions = labels + rng.normal(scale=0.5, size=labels.shape)
    result = split_scores("regression", labels, predictions, ["a", "b"])
    assert result["r2"] == pytest.approx(r2_score(labels, predictions, multioutput="variance_weighted"))
    assert result["r2_a"] == pytest.approx(r2_score(labels[:, 0], predictions[:, 0]))


def test_a_killed_classification_run_resumes(tmp_path):
    """Validation's whole-split meter lives only in the validation pass: the checkpoint's saved
    log aggregators hold nothing fairseq cannot rebuild when the run resumes."""
    from finetune_runs import bbbp_dataset

    save_dir = str(tmp_path / "run")
    flags = ["--input-modality", "2d", "--max-epoch", "2", "--best-checkpoint-metric", "auc",
             "--maximize-best-checkpoint-metric"]
    finetune(bbbp_dataset(), save_dir, *flags, "--max-update", "3")  # stands in for a run killed after 3 updates
    finetune(bbbp_dataset(), save_dir, *flags)
    last = load_checkpoint_file(os.path.join(save_dir, "checkpoint_last.pt"))
    assert last["optimizer_history"][-1]["num_updates"] == 8  # 2 epochs of 4 batches, the first 3 not repeated
