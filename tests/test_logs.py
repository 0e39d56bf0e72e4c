"""Logs a person can read: no known third-party warnings in a fairseq-train log, a quiet
data_prep that is quiet, summaries as sentences, LF line endings in the CSVs written."""
import subprocess
import sys

from data_prep.__main__ import main
from finetune_runs import FIXTURES, PLUGIN_DIR, REPO, bbbp_dataset


def test_a_training_log_has_no_known_harmless_warnings(tmp_path):
    command = [sys.executable, "-m", "fairseq_cli.train", bbbp_dataset(), "--user-dir", PLUGIN_DIR,
               "--task", "moleblend_finetune", "--criterion", "moleblend_finetune", "--arch", "moleblend_tiny",
               "--cpu", "--num-workers", "0", "--batch-size", "8", "--optimizer", "adam", "--lr", "1e-3",
               "--max-update", "2", "--save-dir", str(tmp_path), "--log-format", "simple"]
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    for text in ("UserWarning", "FutureWarning", "deprecation_warning", "pin_memory"):
        assert text not in result.stderr + result.stdout, text


def test_data_prep_summary_is_a_sentence_and_quiet_is_quiet(tmp_path, capsys):
    args = ["moleculenet", "--dataset", "bbbp", "--input", f"{FIXTURES}/bbbp_bad.csv", "--conformers", "0"]
    assert main([*args, "--output", str(tmp_path / "a")]) == 0
    out = capsys.readouterr().out.strip()
    assert out.startswith("built 34 molecules, 5 rejected (invalid_label 1, invalid_smiles 3, wildcard_atom 1);")
    assert "{" not in out
    assert main([*args, "--output", str(tmp_path / "b"), "--quiet"]) == 0
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err == ""
    assert b"\r\n" not in (tmp_path / "b" / "rejects.csv").read_bytes()


def test_metric_names_are_identifiers():
    from moleblend_plugin.criterions.property_metrics import metric_key
    from moleblend_plugin.evaluate import score_predictions

    assert metric_key("measured log solubility in mols per litre") == "measured_log_solubility_in_mols_per_litre"
    assert metric_key("U0") == "u0" and metric_key("Cv (cal/mol K)") == "cv_cal_mol_k"
    scores = score_predictions("regression", [[1.0, 2.0]], [[1.5, 2.0]], ["log S", "pIC50"])
    assert {"mae_log_s", "rmse_log_s", "mae_pic50"} <= set(scores)


def test_the_log_file_holds_each_validation_record_once(tmp_path):
    # fairseq 0.12 adds a --log-file handler for every epoch's progress bar: without the
    # plugin's fix, epoch k's record is written k times (1 + 2 + 3 = 6 lines here).
    log_file = tmp_path / "train.log"
    command = [sys.executable, "-m", "fairseq_cli.train", bbbp_dataset(), "--user-dir", PLUGIN_DIR,
               "--task", "moleblend_finetune", "--criterion", "moleblend_finetune", "--arch", "moleblend_tiny",
               "--encoder-layers", "1", "--cpu", "--num-workers", "0", "--batch-size", "16", "--optimizer", "adam",
               "--lr", "1e-3", "--max-epoch", "3", "--save-dir", str(tmp_path), "--no-epoch-checkpoints",
               "--log-format", "json", "--log-file", str(log_file)]
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    epochs = [line.split(",")[0] for line in log_file.read_text().splitlines() if '"valid_loss"' in line]
    assert epochs == ['{"epoch": 1', '{"epoch": 2', '{"epoch": 3']
