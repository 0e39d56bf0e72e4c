"""A user mistake is one line on stderr that says what is wrong and what to do, not a
traceback: under fairseq-train and in the plugin's own tools."""
import os
import subprocess
import sys

import pytest

from finetune_runs import PLUGIN_DIR, REPO, bbbp_dataset, qm9_dataset


def fairseq_train(*args, env_extra=None):
    command = [sys.executable, "-m", "fairseq_cli.train", *args, "--user-dir", PLUGIN_DIR, "--cpu",
               "--num-workers", "0", "--batch-size", "8", "--optimizer", "adam", "--lr", "1e-3",
               "--max-update", "1", "--no-save", "--disable-validation", "--no-progress-bar"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", **(env_extra or {})}
    return subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)


def assert_one_line(result, *fragments):
    assert result.returncode != 0
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("error: "), result.stderr[-3000:]
    for fragment in fragments:
        assert fragment in last, last


def finetune_args(data, *extra):
    return [data, "--task", "moleblend_finetune", "--criterion", "moleblend_finetune",
            "--arch", "moleblend_tiny", *extra]


def test_a_folder_without_a_dataset(tmp_path):
    assert_one_line(fairseq_train(*finetune_args(str(tmp_path))), "has no manifest.json", "data_prep")


def test_the_criterion_of_the_other_task():
    result = fairseq_train(qm9_dataset(), "--task", "moleblend_finetune", "--criterion", "moleblend_pretrain",
                           "--arch", "moleblend_tiny")
    assert_one_line(result, "--task moleblend_finetune needs --criterion moleblend_finetune, not moleblend_pretrain")


def test_no_criterion_at_all():
    result = fairseq_train(qm9_dataset(), "--task", "moleblend_pretrain", "--arch", "moleblend_tiny")
    assert_one_line(result, "needs --criterion moleblend_pretrain, not cross_entropy")


def test_3d_input_on_a_dataset_without_conformers():
    result = fairseq_train(*finetune_args(bbbp_dataset(), "--input-modality", "3d"))
    assert_one_line(result, "--input-modality 3d needs 3D coordinates", "--conformers 1")


def test_the_traceback_is_there_on_request(tmp_path):
    result = fairseq_train(*finetune_args(str(tmp_path)), env_extra={"MOLEBLEND_DEBUG": "1"})
    assert "Traceback" in result.stderr and "UserError" in result.stderr


@pytest.fixture(scope="module")
def pretraining_checkpoint(tmp_path_factory):
    save_dir = tmp_path_factory.mktemp("pretrain")
    pretrain = [sys.executable, "-m", "fairseq_cli.train", qm9_dataset(), "--user-dir", PLUGIN_DIR,
                "--task", "moleblend_pretrain", "--criterion", "moleblend_pretrain", "--arch", "moleblend_tiny",
                "--cpu", "--num-workers", "0", "--batch-size", "8", "--optimizer", "adam", "--lr", "1e-3",
                "--max-update", "1", "--save-dir", str(save_dir), "--disable-validation", "--no-progress-bar"]
    assert subprocess.run(pretrain, cwd=REPO, capture_output=True, timeout=300).returncode == 0
    return str(save_dir / "checkpoint_last.pt")


@pytest.mark.parametrize("tool", ["evaluate", "predict"])
def test_a_checkpoint_of_the_wrong_kind_given_to_the_tools(tmp_path, tool, pretraining_checkpoint):
    checkpoint = pretraining_checkpoint
    extra = (["--data", qm9_dataset()] if tool == "evaluate"
             else ["--input", os.path.join(REPO, "tests", "fixtures", "molecules.csv"), "--output",
                   str(tmp_path / "out.csv")])
    result = subprocess.run([sys.executable, "-m", f"moleblend_plugin.{tool}", checkpoint, *extra], cwd=REPO,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 2
    assert_one_line(result, "is a checkpoint of task 'moleblend_pretrain'", "fine-tuned (moleblend_finetune)")
    assert "prediction needs" not in result.stderr
