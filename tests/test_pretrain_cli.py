"""fairseq-train end to end with the pretraining task: train, save, resume."""
import json
import logging
import os

import pytest

from finetune_runs import PLUGIN_DIR, fairseq_train, qm9_dataset
from moleblend_plugin.checkpoints.safe_loading import load_checkpoint_file


def _pretrain(save_dir, max_update, log_file):
    fairseq_train([qm9_dataset(), "--user-dir", PLUGIN_DIR, "--task", "moleblend_pretrain",
                   "--criterion", "moleblend_pretrain", "--arch", "moleblend_tiny", "--cpu", "--num-workers", "0",
                   "--batch-size", "8", "--required-batch-size-multiple", "1", "--optimizer", "adam", "--lr", "1e-3",
                   "--max-update", str(max_update), "--save-dir", save_dir, "--no-epoch-checkpoints",
                   "--no-progress-bar", "--log-interval", "1", "--log-format", "json", "--log-file", log_file,
                   "--seed", "5"])


def _updates_logged(log_file):
    """num_updates of the per-interval training records (JSON lines with an "update" key)."""
    updates = set()
    with open(log_file) as f:
        for line in f:
            if line.startswith("{") and '"update"' in line:
                updates.add(int(json.loads(line)["num_updates"]))
    return sorted(updates)


def test_pretraining_saves_validates_and_resumes_from_the_saved_step(tmp_path, caplog):
    caplog.set_level(logging.INFO)  # fairseq's --log-file handler sits on the root logger
    save_dir = str(tmp_path / "checkpoints")
    _pretrain(save_dir, 4, str(tmp_path / "first.log"))
    first = load_checkpoint_file(os.path.join(save_dir, "checkpoint_last.pt"))  # weights-only load
    assert first["optimizer_history"][-1]["num_updates"] == 4
    assert first["cfg"]["task"]["_name"] == "moleblend_pretrain"
    assert first["last_optimizer_state"]["state"], "optimizer state is saved for resuming"
    assert os.path.exists(os.path.join(save_dir, "checkpoint_best.pt")), "validation ran and picked a best"

    _pretrain(save_dir, 7, str(tmp_path / "second.log"))
    assert _updates_logged(str(tmp_path / "second.log")) == [5, 6, 7]
    second = load_checkpoint_file(os.path.join(save_dir, "checkpoint_last.pt"))
    assert second["optimizer_history"][-1]["num_updates"] == 7


def test_a_dataset_folder_without_manifest_is_a_clear_error(tmp_path):
    with pytest.raises(Exception, match="manifest"):
        fairseq_train([str(tmp_path), "--user-dir", PLUGIN_DIR, "--task", "moleblend_pretrain",
                       "--criterion", "moleblend_pretrain", "--arch", "moleblend_tiny", "--cpu",
                       "--optimizer", "adam", "--lr", "1e-3", "--max-update", "1", "--batch-size", "4",
                       "--save-dir", str(tmp_path / "ckpt")])


def test_every_molecule_of_a_split_is_batched_whatever_the_batch_size_multiple():
    from moleblend_plugin.tasks.pretrain import PretrainConfig, PretrainTask

    task = PretrainTask(PretrainConfig(data=qm9_dataset(), seed=1))
    task.load_dataset("valid")
    dataset = task.dataset("valid")
    iterator = task.get_batch_iterator(dataset, max_sentences=3, required_batch_size_multiple=8)
    seen = sorted(i for batch in iterator.next_epoch_itr(shuffle=False) for i in batch["id"].tolist())
    assert seen == list(range(len(dataset)))
