"""examples/ablations/run_row.py: one row of the ablation study, from the corpus to the results file."""
import csv
import importlib.util
import json
import math
import os
import shlex
import shutil
import sys

import pytest

from moleblend_plugin.run_folder import differing_flags

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIXTURES = os.path.join(REPO, "tests", "fixtures")
ESOL_ROWS = 80


def runner():
    path = os.path.join(REPO, "examples", "ablations", "run_row.py")
    spec = importlib.util.spec_from_file_location("run_row", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def datasets_folder(root) -> str:
    """The layout of scripts/fetch_datasets.sh with the fixtures: MOSES' first 40 rows and 80 ESOL molecules."""
    data = os.path.join(root, "data")
    os.makedirs(os.path.join(data, "moses"))
    os.makedirs(os.path.join(data, "moleculenet"))
    shutil.copy(os.path.join(FIXTURES, "moses", "train.csv.gz"), os.path.join(data, "moses", "train.csv.gz"))
    with open(os.path.join(REPO, "examples", "data", "esol", "esol.csv"), encoding="utf-8") as f:
        lines = f.readlines()[:ESOL_ROWS + 1]
    with open(os.path.join(data, "moleculenet", "esol.csv"), "w", encoding="utf-8") as f:
        f.writelines(lines)
    return data


TINY_BUDGET = ["--arch", "moleblend_tiny", "--pretrain-updates", "4", "--pretrain-batch-size", "8",
               "--validate-every", "2", "--corpus-rows", "40", "--finetune-epochs", "2",
               "--finetune-batch-size", "16"]


def test_one_row_end_to_end_with_predicted_3d(tmp_path, capsys, monkeypatch):
    """Corpus, moleblend pretraining, 2d+predicted3d fine-tuning of ESOL, valid and test rows."""
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    module = runner()
    data = datasets_folder(tmp_path)
    run_dir = str(tmp_path / "study")
    module.main(["--mode", "moleblend", "--dataset", "esol", "--input", "2d+predicted3d", "--seed", "1",
                 "--data", data, "--run-dir", run_dir, *TINY_BUDGET])
    out = capsys.readouterr().out
    assert "rows appended" in out
    with open(os.path.join(run_dir, "results.csv"), newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == list(module.RESULT_FIELDS)
    assert {(r["split"], r["metric"]) for r in rows} >= {("valid", "rmse"), ("test", "rmse"), ("test", "mae")}
    for row in rows:
        assert (row["mode"], row["blend_ratio"], row["dataset"], row["input"], row["seed"]) == \
               ("moleblend", "2:2:6", "esol", "2d+predicted3d", "1")
        assert (row["pretrain_updates"], row["finetune_epochs"], row["arch"]) == ("4", "2", "moleblend_tiny")
        assert math.isfinite(float(row["value"])) and row["commit"] and row["date"]
    # the test rows are the test split's scores as the seed runner wrote them
    finetune = os.path.join(run_dir, "finetune", "esol", "2d_predicted3d")
    (tag,) = os.listdir(finetune)
    test = json.load(open(os.path.join(finetune, tag, "pretrained", "seed1", "test.json"), encoding="utf-8"))
    assert float(next(r["value"] for r in rows if (r["split"], r["metric"]) == ("test", "rmse"))) == \
           pytest.approx(test["metrics"]["rmse"])
    assert test["num_molecules"] == 8  # scaffold split 80/10/10 of 80 molecules
    # the same row again at the same commit is not appended twice
    assert module.append_rows(os.path.join(run_dir, "results.csv"), [dict(r) for r in rows]) == 0
    # summarize.py reads the real run: the pretraining's last validation and the row in Table 11's layout
    sys.path.insert(0, os.path.join(REPO, "examples", "ablations"))
    import summarize

    summarize.main([os.path.join(run_dir, "results.csv"), "--pretrain-dir", os.path.join(run_dir, "pretrain"),
                    "--plots", str(tmp_path / "plots")])
    out = capsys.readouterr().out
    assert "| moleblend 2:2:6 | 4 |" in out
    test_rmse = float(next(r["value"] for r in rows if (r["split"], r["metric"]) == ("test", "rmse")))
    assert f"| moleblend, 2d+predicted3d | not run (paper 71.8) | not run (paper 84.3) | not run (paper 90.9) | " \
           f"{test_rmse:.3f} (1 seed) (paper 0.874) |" in out
    assert os.path.getsize(tmp_path / "plots" / "ablation_pretrain_curves.png") > 10_000


def dry_run(module, capsys, *argv) -> str:
    module.main(["--dry-run", "--data", "/nonexistent", "--run-dir", "/tmp/never", *argv])
    return capsys.readouterr().out


def pretraining_command(out: str):
    return next(shlex.split(line[2:]) for line in out.splitlines() if " moleblend_cli pretrain " in line)


def test_every_mode_gets_the_same_pretraining_budget(capsys):
    module = runner()
    reference = pretraining_command(dry_run(module, capsys, "--mode", "moleblend", "--dataset", "bbbp", "--seed", "1"))
    for mode, extra in (("mask_spd", []), ("noisy_node", []), ("blend", ["--blend-ratio", "4:4:2"])):
        out = dry_run(module, capsys, "--mode", mode, "--dataset", "bace", "--seed", "3", *extra)
        assert set(differing_flags(reference, pretraining_command(out))) <= {"--mode", "--output", "--blend-ratio"}
    scratch = dry_run(module, capsys, "--mode", "scratch", "--dataset", "esol", "--seed", "2")
    assert "moleblend_cli pretrain" not in scratch and "data_prep csv" not in scratch
    assert "run_seeds.py" in scratch and "--pretrained" not in scratch
    qm9 = dry_run(module, capsys, "--mode", "noisy_node", "--dataset", "qm9", "--input", "3d", "--seed", "1")
    assert "data_prep qm9" in qm9 and "--input-modality 3d" in qm9 and "--max-update 400" in qm9


@pytest.mark.parametrize("argv, message", [
    (["--mode", "noisy_node", "--dataset", "bbbp", "--input", "2d+predicted3d"], "mode noisy_node has none"),
    (["--mode", "scratch", "--dataset", "bbbp", "--input", "2d+predicted3d"], "mode scratch has none"),
    (["--mode", "mask_spd", "--dataset", "bbbp", "--blend-ratio", "4:4:2"], "setting of the blending modes"),
    (["--mode", "moleblend", "--dataset", "qm9", "--input", "2d"], "not studied on qm9"),
    (["--mode", "moleblend", "--dataset", "esol", "--input", "3d"], "not studied on esol"),
])
def test_rows_outside_the_study_are_refused(argv, message):
    with pytest.raises(SystemExit, match=message):
        runner().main([*argv, "--seed", "1", "--dry-run"])


def test_run_mode_runs_every_dataset_and_seed_and_counts_failures(tmp_path):
    import subprocess

    script = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "examples", "ablations",
                          "run_mode.sh")
    path = os.pathsep.join([os.path.dirname(sys.executable), os.environ.get("PATH", "")])  # this python first
    env = {**os.environ, "PATH": path, "DATASETS": "esol bbbp", "SEEDS": "1 3", "RUN_DIR": str(tmp_path)}
    done = subprocess.run(["bash", script, "blend", "4:4:2", "2d", "--dry-run", "--data", "/nonexistent"],
                          env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    rows = [line.split()[2:] for line in done.stdout.splitlines() if line.startswith("=== ") and "seed" in line]
    assert rows == [["blend", "4:4:2", dataset, "2d", "seed", seed] for dataset in ("esol", "bbbp") for seed in "13"]
    assert done.stdout.count("--blend-ratio 4:4:2") == 4
    # noisy_node has no distance head: each of its 2d+predicted3d rows is refused, counted, and the others go on
    env["DATASETS"] = "esol"
    failed = subprocess.run(["bash", script, "noisy_node", "", "2d+predicted3d", "--dry-run", "--data", "/x"],
                            env=env, capture_output=True, text=True)
    assert failed.returncode == 2
    assert failed.stdout.count("=== FAILED: noisy_node") == 2
    assert "done, 2 failed" in failed.stdout
