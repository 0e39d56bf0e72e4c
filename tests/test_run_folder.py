"""Reruns resume the same run or start clean: never a stale checkpoint under other flags."""
import os

import pytest

from finetune_runs import seed_runner
from moleblend_plugin.errors import UserError
from moleblend_plugin.run_folder import mark_done, prepare_run_folder

COMMAND = ["python", "-m", "fairseq_cli.train", "data", "--lr", "1e-4", "--max-epoch", "5", "--cpu"]


def _touch(folder, *names):
    for name in names:
        (folder / name).write_text("x")


def test_a_new_folder_records_its_command_and_a_stale_log_goes(tmp_path):
    _touch(tmp_path, "train.log")  # left by a run killed before its first checkpoint
    assert prepare_run_folder(str(tmp_path), COMMAND, say=lambda _: None) == "new"
    assert not (tmp_path / "train.log").exists() and (tmp_path / "run_config.json").exists()


def test_the_same_command_resumes_and_a_finished_run_is_done(tmp_path):
    prepare_run_folder(str(tmp_path), COMMAND, say=lambda _: None)
    _touch(tmp_path, "checkpoint_last.pt", "train.log")
    said = []
    assert prepare_run_folder(str(tmp_path), COMMAND, say=said.append) == "resume"
    assert said[0].startswith(f"resuming {tmp_path} from checkpoint_last.pt")
    assert (tmp_path / "train.log").exists()
    mark_done(str(tmp_path))
    assert prepare_run_folder(str(tmp_path), COMMAND, say=lambda _: None) == "done"


def test_another_command_is_refused_naming_the_flags_that_differ(tmp_path):
    prepare_run_folder(str(tmp_path), COMMAND, say=lambda _: None)
    _touch(tmp_path, "checkpoint_last.pt")
    other = COMMAND[:5] + ["2e-4"] + COMMAND[6:-1]
    with pytest.raises(UserError, match=r"differing: --cpu, --lr\); pass --overwrite"):
        prepare_run_folder(str(tmp_path), other, say=lambda _: None)


def test_a_checkpoint_of_an_unknown_command_is_refused(tmp_path):
    _touch(tmp_path, "checkpoint_last.pt")
    with pytest.raises(UserError, match="unknown command"):
        prepare_run_folder(str(tmp_path), COMMAND, say=lambda _: None)


def test_overwrite_starts_clean_and_says_so(tmp_path):
    prepare_run_folder(str(tmp_path), COMMAND, say=lambda _: None)
    _touch(tmp_path, "checkpoint_last.pt", "checkpoint_best.pt", "train.log", "test.json")
    said = []
    assert prepare_run_folder(str(tmp_path), COMMAND[:-1], overwrite=True, say=said.append) == "new"
    assert sorted(os.listdir(tmp_path)) == ["run_config.json"]
    assert "starting clean" in said[0] and "checkpoint_last.pt" in said[0]


def test_seed_runner_refuses_a_killed_run_it_cannot_tell_apart(tmp_path):
    runner = seed_runner()
    run_dir = tmp_path / "runs" / "scratch" / "seed1"
    run_dir.mkdir(parents=True)
    _touch(run_dir, "checkpoint_last.pt")
    with pytest.raises(SystemExit, match="unknown command"):
        runner.main([_fake_dataset(tmp_path), "--run-dir", str(tmp_path / "runs"), "--seeds", "1"])


def _fake_dataset(tmp_path):
    """A folder with just enough manifest for the runner's task-type check."""
    import json

    folder = tmp_path / "data"
    folder.mkdir()
    (folder / "manifest.json").write_text(json.dumps({"targets": [{"name": "y", "task_type": "regression"}]}))
    return str(folder)


def test_seed_runner_dry_run_before_the_dataset_exists_prints_the_commands(tmp_path, capsys):
    runner = seed_runner()
    assert runner.main([str(tmp_path / "not_built"), "--run-dir", str(tmp_path / "runs"), "--dry-run",
                        "--seeds", "1", "2"]) == 0
    out = capsys.readouterr().out
    assert "is not built yet" in out and out.count("fairseq_cli.train") == 2
    assert not (tmp_path / "runs").exists()
