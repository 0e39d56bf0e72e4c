"""Checkpoints survive a kill at any moment: a run killed while fairseq saves resumes with
the same command; a damaged checkpoint given to the tools is an error naming the file."""
import os
import signal
import subprocess
import sys
import time

import pytest

from finetune_runs import PLUGIN_DIR, REPO, qm9_dataset
from moleblend_plugin.checkpoints.recovery import DamagedCheckpoint, is_intact, repair_restore_file
from moleblend_plugin.checkpoints.safe_loading import load_checkpoint_file


def pretrain_command(save_dir, max_update):
    return [sys.executable, "-m", "fairseq_cli.train", qm9_dataset(), "--user-dir", PLUGIN_DIR,
            "--task", "moleblend_pretrain", "--criterion", "moleblend_pretrain", "--arch", "moleblend_tiny",
            "--cpu", "--num-workers", "0", "--batch-size", "8", "--optimizer", "adam", "--lr", "1e-3",
            "--max-update", str(max_update), "--save-dir", str(save_dir), "--save-interval-updates", "1",
            "--no-epoch-checkpoints", "--disable-validation", "--no-progress-bar", "--seed", "3"]


def run(command, **kwargs):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, **kwargs)


def updates_of(path):
    return load_checkpoint_file(path)["optimizer_history"][-1]["num_updates"]


def test_a_truncated_last_checkpoint_is_replaced_by_the_newest_intact_one(tmp_path):
    save_dir = tmp_path / "ckpt"
    assert run(pretrain_command(save_dir, 6)).returncode == 0
    last = save_dir / "checkpoint_last.pt"
    size = os.path.getsize(last)
    os.truncate(last, size // 3)  # what a kill during fairseq's plain copy leaves
    assert not is_intact(str(last))
    result = run(pretrain_command(save_dir, 9))
    assert result.returncode == 0, result.stderr[-2000:]
    assert "was damaged" in result.stdout + result.stderr
    assert updates_of(last) == 9


def test_killed_repeatedly_while_saving_every_update_the_same_command_finishes(tmp_path):
    save_dir = tmp_path / "ckpt"
    # enough updates that no run ends before its kill (a finished run, resumed, would
    # take one more update: fairseq checks --max-update only after a step)
    command = pretrain_command(save_dir, 300)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    for kill in range(6):
        process = subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.DEVNULL,
                                   stderr=subprocess.DEVNULL)
        time.sleep(3.5 + 0.37 * kill)  # start-up, then a few saves; each kill at another moment
        assert process.poll() is None, "the run ended before its kill"
        process.send_signal(signal.SIGKILL)
        process.wait()
    result = run(command)
    assert result.returncode == 0, result.stderr[-2000:]
    assert updates_of(save_dir / "checkpoint_last.pt") == 300


def test_no_intact_checkpoint_left_is_a_clear_error(tmp_path):
    (tmp_path / "checkpoint_last.pt").write_bytes(b"PK\x03\x04 cut short")
    with pytest.raises(DamagedCheckpoint, match="checkpoint_last.pt is damaged.*delete it"):
        repair_restore_file(str(tmp_path))
    assert repair_restore_file(str(tmp_path / "missing")) is None


@pytest.mark.parametrize("content", [b"", b"PK\x03\x04 truncated"])
def test_an_empty_or_truncated_checkpoint_is_an_error_naming_it(tmp_path, content):
    path = tmp_path / "checkpoint_best.pt"
    path.write_bytes(content)
    with pytest.raises(ValueError, match="checkpoint_best.pt: not a whole checkpoint"):
        load_checkpoint_file(str(path))
