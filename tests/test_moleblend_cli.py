"""`moleblend` and the Python API on the bundled ESOL sample: CSV to a scored model and a report."""
import json
import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from finetune_runs import REPO, workdir
from moleblend_plugin.api import FineTuner
from moleblend_plugin.errors import UserError
from moleblend_plugin.workflows.finetune import FinetuneRequest, finetune

ESOL = os.path.join(REPO, "examples", "data", "esol", "esol.csv")
TARGET = "measured log solubility in mols per litre"
TINY = ["--arch", "moleblend_tiny", "--train-args=--encoder-layers 1"]


def moleblend(*args, check=True):
    done = subprocess.run([sys.executable, "-m", "moleblend_cli", *args], cwd=REPO, capture_output=True, text=True,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    if check:
        assert done.returncode == 0, done.stdout + done.stderr
    return done


@pytest.fixture(scope="module")
def esol_run():
    output = os.path.join(workdir(), "cli_esol")
    done = moleblend("finetune", "--input", ESOL, "--target-columns", TARGET, "--output", output, "--max-epoch", "2",
                     "--device", "cpu", *TINY)
    return output, done.stdout


def test_finetune_writes_a_scored_report(esol_run):
    output, stdout = esol_run
    metrics = json.load(open(os.path.join(output, "metrics.json")))
    assert metrics["splits"] == {"train": 240, "valid": 30, "test": 30}
    assert metrics["settings"]["metric"] == "rmse" and metrics["settings"]["batch_size"] == 32
    assert metrics["test"]["rmse"] > 0 and metrics["valid"]["rmse"] > 0
    # the valid score of the chosen checkpoint is the best one fairseq logged
    logged = [json.loads(line) for line in open(os.path.join(output, "train.log")) if '"valid_rmse"' in line]
    assert metrics["valid"]["rmse"] == pytest.approx(min(float(s["valid_rmse"]) for s in logged), abs=1e-3)
    for name in ("summary.md", "valid_curve.png", "commands.sh", "test_predictions.csv"):
        assert os.path.getsize(os.path.join(output, name)) > 0
    assert "epoch 1/2: valid rmse" in stdout and "epoch 2/2: valid rmse" in stdout
    assert "setting: batch size 32: 240 training molecules" in stdout
    assert "built 300 molecules, none rejected" in stdout


def test_rerunning_the_same_command_reuses_the_run_and_another_one_is_refused(esol_run):
    output, _ = esol_run
    again = moleblend("finetune", "--input", ESOL, "--target-columns", TARGET, "--output", output, "--max-epoch", "2",
                      "--device", "cpu", *TINY)
    assert "already done" in again.stdout
    other = moleblend("finetune", "--input", ESOL, "--target-columns", TARGET, "--output", output, "--max-epoch", "3",
                      "--device", "cpu", *TINY, check=False)
    assert other.returncode != 0
    assert other.stderr.strip().count("\n") == 0 and "--overwrite" in other.stderr


def test_dry_run_before_the_dataset_exists_prints_the_commands(tmp_path):
    done = moleblend("finetune", "--input", ESOL, "--target-columns", TARGET, "--output", str(tmp_path / "x"),
                     "--dry-run")
    lines = done.stdout.splitlines()
    assert any(" -m data_prep csv " in line for line in lines)
    assert any(" -m moleblend_plugin.train " in line for line in lines)
    assert not os.path.exists(tmp_path / "x")


def test_bad_input_is_one_line(tmp_path):
    wrong = moleblend("finetune", "--input", ESOL, "--target-columns", "no such column", "--output",
                      str(tmp_path / "a"), check=False)
    assert wrong.returncode != 0 and len(wrong.stderr.strip().splitlines()) == 1
    assert "no such column" in wrong.stderr
    table = pd.read_csv(ESOL).assign(label=1)
    table.to_csv(tmp_path / "one_class.csv", index=False)
    one_class = moleblend("finetune", "--input", str(tmp_path / "one_class.csv"), "--target-columns", "label",
                          "--task-type", "classification", "--output", str(tmp_path / "b"), check=False)
    assert one_class.returncode != 0 and "one class" in one_class.stderr
    assert len(one_class.stderr.strip().splitlines()) == 1


def test_python_api_fits_a_dataframe_and_predicts(tmp_path):
    table = pd.read_csv(ESOL).rename(columns={TARGET: "logS"})[["smiles", "logS"]]
    tuner = FineTuner(str(tmp_path / "api"), "logS", arch="moleblend_tiny", max_epoch=1,
                      train_args=["--encoder-layers", "1"])
    predictor = tuner.fit(table)
    assert tuner.metrics["test"]["rmse"] > 0
    values, errors = predictor.predict(["CCO", "not a smiles"])
    assert values.shape == (2, 1) and np.isfinite(values[0]).all() and errors[1].startswith("invalid_smiles")
    # the predictor is the best-valid checkpoint: it reproduces the recorded test predictions
    test = pd.read_csv(tmp_path / "api" / "test_predictions.csv")
    again, _ = predictor.predict(test["smiles"].tolist())
    np.testing.assert_allclose(again[:, 0], test["logS_prediction"], rtol=1e-4, atol=1e-4)


def test_missing_targets_are_refused_before_anything_runs(tmp_path):
    with pytest.raises(UserError, match="label column"):
        finetune(FinetuneRequest(input=ESOL, output=str(tmp_path), target_columns=[]))


def test_prep_evaluate_and_predict_subcommands_run_their_tools(esol_run, tmp_path):
    output, _ = esol_run
    built = tmp_path / "esol"
    moleblend("prep", "moleculenet", "--dataset", "esol", "--input", ESOL, "--output", str(built), "--conformers", "0",
              "--quiet")
    assert (built / "manifest.json").exists()
    checkpoint = os.path.join(output, "checkpoints", "checkpoint_best.pt")
    scored = moleblend("evaluate", checkpoint, "--data", os.path.join(output, "data"), "--split", "test", "--quiet")
    recorded = json.load(open(os.path.join(output, "metrics.json")))["test"]
    assert json.loads(scored.stdout)["metrics"]["rmse"] == pytest.approx(recorded["rmse"], rel=1e-6)
    (tmp_path / "new.smi").write_text("CCO ethanol\nnot_a_smiles bad\n")
    moleblend("predict", checkpoint, "--input", str(tmp_path / "new.smi"), "--output", str(tmp_path / "p.csv"),
              "--quiet")
    table = pd.read_csv(tmp_path / "p.csv")
    assert table["id"].tolist() == ["ethanol", "bad"] and table["error"].isna().tolist() == [True, False]


def test_pretrain_subcommand_trains_validates_and_reruns_safely(tmp_path):
    from finetune_runs import qm9_dataset

    flags = [qm9_dataset(), "--output", str(tmp_path / "p"), "--arch", "moleblend_tiny", "--max-update", "4",
             "--validate-every", "2", "--batch-size", "8", "--device", "cpu", "--train-args=--encoder-layers 1"]
    first = moleblend("pretrain", *flags)
    assert "update 2/4: valid loss" in first.stdout and "update 4/4: valid loss" in first.stdout
    assert (tmp_path / "p" / "checkpoints" / "checkpoint_best.pt").exists()
    assert "already done" in moleblend("pretrain", *flags).stdout
    missing = moleblend("pretrain", str(tmp_path / "nothing"), "--output", str(tmp_path / "q"), check=False)
    assert missing.returncode != 0 and len(missing.stderr.strip().splitlines()) == 1


def test_an_empty_split_is_one_line(tmp_path):
    table = pd.read_csv(ESOL).head(40).assign(part="train")
    table.loc[:4, "part"] = "test"
    table.to_csv(tmp_path / "data.csv", index=False)
    done = moleblend("finetune", "--input", str(tmp_path / "data.csv"), "--target-columns", TARGET,
                     "--split-column", "part", "--output", str(tmp_path / "run"), check=False)
    assert done.returncode != 0 and "the valid split" in done.stderr and "is empty" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


def test_finetuning_from_a_pretrained_checkpoint_takes_its_shape(tmp_path):
    from finetune_runs import pretrain_checkpoint

    done = moleblend("finetune", "--input", ESOL, "--target-columns", TARGET, "--output", str(tmp_path / "x"),
                     "--pretrained", pretrain_checkpoint(), "--max-epoch", "1", "--device", "cpu")
    metrics = json.load(open(tmp_path / "x" / "metrics.json"))
    assert metrics["settings"]["arch"] == "moleblend_tiny" and metrics["test"]["rmse"] > 0
    assert "arch moleblend_tiny: the pretrained checkpoint's" in done.stdout
    command = open(tmp_path / "x" / "commands.sh").read()
    assert "--finetune-from-model" in command and "--encoder-layers 1" in command  # the pretraining's override
