"""moleblend-train: fairseq-train with the plugin as --user-dir, whose --help lists the
plugin's flags (fairseq-train's own --help cannot: it answers before adding them)."""
import subprocess
import sys

from finetune_runs import REPO, qm9_dataset


def run(*args):
    return subprocess.run([sys.executable, "-m", "moleblend_plugin.train", *args], cwd=REPO,
                          capture_output=True, text=True, timeout=300)


def test_help_lists_the_flags_of_the_plugins_task_model_and_criterion():
    pretrain = run("--task", "moleblend_pretrain", "--arch", "moleblend_small", "--criterion",
                   "moleblend_pretrain", "--help")
    assert pretrain.returncode == 0
    for flag in ("--blend-ratio", "--pretrain-mode", "--noise-loss-weight", "--conformers", "--init-from-checkpoint",
                 "--max-atoms"):
        assert f"  {flag}" in pretrain.stdout, flag
    finetune = run("--task", "moleblend_finetune", "--help")  # arch and criterion default to the plugin's
    for flag in ("--targets", "--input-modality", "--regression-loss", "--readout"):
        assert f"  {flag}" in finetune.stdout, flag
    fairseq_own = subprocess.run([sys.executable, "-m", "fairseq_cli.train", "--user-dir", "moleblend_plugin",
                                  "--task", "moleblend_pretrain", "--arch", "moleblend_small", "--help"],
                                 cwd=REPO, capture_output=True, text=True, timeout=300)
    assert "--blend-ratio" not in fairseq_own.stdout  # why this command exists


def test_it_trains_like_fairseq_train(tmp_path):
    result = run(qm9_dataset(), "--task", "moleblend_pretrain", "--criterion", "moleblend_pretrain",
                 "--arch", "moleblend_tiny", "--cpu", "--num-workers", "0", "--batch-size", "8", "--optimizer",
                 "adam", "--lr", "1e-3", "--max-update", "2", "--save-dir", str(tmp_path), "--disable-validation")
    assert result.returncode == 0, result.stderr[-2000:]
    assert (tmp_path / "checkpoint_last.pt").exists()
