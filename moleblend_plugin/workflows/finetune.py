"""From a CSV of molecules to a scored model: shards, fairseq-train, best-valid checkpoint,
test scores and a report folder. `moleblend finetune` and `moleblend_plugin.api.FineTuner`
both run `finetune()`.

The output folder:
    data/                  the prepared dataset (python -m data_prep csv ...)
    checkpoints/           fairseq's checkpoints; checkpoint_best.pt is chosen on valid
    train.log              fairseq's log (--log-format json)
    metrics.json           valid and test scores of checkpoint_best.pt, settings, data summary
    test_predictions.csv   labels and predictions of every test molecule
    valid_curve.png        the valid metric over epochs
    summary.md             what was run and what came out
    commands.sh            the exact commands, to rerun by hand
"""
from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import subprocess
import sys
from dataclasses import asdict, dataclass, field
from typing import Callable, List, Sequence

from moleblend_data.shards import read_manifest

from ..errors import UserError
from ..run_folder import mark_done, prepare_run_folder
from .commands import shell_line
from .defaults import FinetuneSettings, choose_settings
from .progress import EpochProgress, read_valid_curve
from .report import write_report

PLUGIN_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# --input-modality values; models.moleblend has the same (not imported here: it loads torch).
COORDINATE_MODALITIES = ("3d", "2d+3d")
INPUT_MODALITIES = ("2d", "3d", "2d+3d", "2d+predicted3d")


@dataclass
class FinetuneRequest:
    """What `moleblend finetune` is asked for; 0 / "" means "choose from the data"."""

    input: str
    output: str
    target_columns: List[str]
    smiles_column: str = "smiles"
    id_column: str = ""
    task_type: str = "auto"
    split: str = "scaffold"
    split_fractions: Sequence[float] = (0.8, 0.1, 0.1)
    split_column: str = ""
    valid_input: str = ""
    test_input: str = ""
    folds: int = 0
    fold: int = 0
    pretrained: str = ""
    input_modality: str = "2d"
    arch: str = ""
    metric: str = ""
    batch_size: int = 0
    max_epoch: int = 0
    lr: float = 0.0
    freeze_layers: int = 0
    seed: int = 1
    with_hydrogens: bool = False
    device: str = ""
    train_args: List[str] = field(default_factory=list)
    overwrite: bool = False
    dry_run: bool = False
    quiet: bool = False


def prep_command(request: FinetuneRequest, data_dir: str) -> List[str]:
    """data_prep's csv source with the request's columns and split."""
    command = [sys.executable, "-m", "data_prep", "csv", "--input", request.input, "--output", data_dir,
               "--smiles-column", request.smiles_column, "--target-columns", ",".join(request.target_columns),
               "--task-type", request.task_type, "--seed", str(request.seed), "--quiet",
               # 3D input needs a conformer per molecule; 2D input (and predicted 3D) needs none
               "--conformers", "1" if request.input_modality in COORDINATE_MODALITIES else "0"]
    if request.id_column:
        command += ["--id-column", request.id_column]
    if request.with_hydrogens:
        command.append("--with-hydrogens")
    if request.split_column:
        command += ["--split-column", request.split_column]
    elif request.valid_input or request.test_input:
        command += (["--valid-input", request.valid_input] if request.valid_input else []) + \
                   (["--test-input", request.test_input] if request.test_input else [])
    else:
        command += ["--split", request.split, "--split-fractions", ",".join(str(f) for f in request.split_fractions)]
    if request.folds:
        command += ["--folds", str(request.folds), "--fold", str(request.fold)]
    return command


def pretrained_shape(path: str) -> tuple:
    """(architecture, shape flags) of a MoleBlend checkpoint: the fine-tuned model is built
    with its shape, whatever flags its pretraining overrode."""
    from ..checkpoints.encoder_shape import SHAPE_FIELDS
    from ..inference import load_task_checkpoint

    if not os.path.exists(path):
        raise UserError(f"--pretrained {path} does not exist")
    _, cfg = load_task_checkpoint(path, ("moleblend_pretrain", "moleblend_finetune"),
                                  "--pretrained needs a MoleBlend checkpoint; for Graphormer or Transformer-M "
                                  "weights pass --train-args '--init-from-checkpoint FILE' (docs/checkpoints.md)")
    model = cfg.get("model") or {}
    arch = model.get("_name") or model.get("arch") or ""
    if not arch:
        raise UserError(f"--pretrained {path} does not record its architecture; give --arch")
    flags = []
    for name in SHAPE_FIELDS:
        value = model.get(name)
        if name == "pre_layernorm":
            flags += ["--pre-layernorm"] if value else []
        elif value is not None:
            flags += ["--" + name.replace("_", "-"), str(value)]
    return arch, flags


def check_dataset(manifest: dict, data_dir: str) -> str:
    """The dataset's task type, after the checks that would otherwise fail minutes into training."""
    kinds = {t["task_type"] for t in manifest["targets"]}
    if len(kinds) != 1:
        raise UserError(f"{data_dir}: the targets mix classification and regression "
                        f"({[t['name'] for t in manifest['targets']]}); fine-tune them in separate runs")
    for split in ("train", "valid", "test"):
        if not manifest["splits"].get(split):
            what = {"train": "nothing to train on", "valid": "no split to choose the checkpoint on",
                    "test": "no split to score on"}[split]
            raise UserError(f"the {split} split of {data_dir} is empty ({what}); check the split column or files")
    task_type = kinds.pop()
    for target in manifest["targets"]:
        if not target.get("train_labels"):
            raise UserError(f"target {target['name']!r} has no label in the train split")
        if task_type == "classification" and target.get("mean") in (0.0, 1.0):
            label = int(target["mean"])
            raise UserError(f"target {target['name']!r} has one class in the train split (every label {label}); "
                            "a classifier cannot be trained on it")
    return task_type


def train_command(request: FinetuneRequest, data_dir: str, settings: FinetuneSettings,
                  shape: Sequence[str] = ()) -> List[str]:
    output = os.path.abspath(request.output)
    command = [sys.executable, "-m", "moleblend_plugin.train", data_dir, "--user-dir", PLUGIN_DIR,
               "--task", "moleblend_finetune", "--criterion", "moleblend_finetune", "--arch", settings.arch,
               "--input-modality", request.input_modality, "--seed", str(request.seed),
               "--optimizer", "fused_adam", "--adam-betas", "(0.9,0.999)", "--lr", repr(settings.lr),
               "--lr-scheduler", "fixed", "--warmup-updates", str(settings.warmup_updates),
               "--clip-norm", repr(settings.clip_norm), "--dropout", repr(settings.dropout),
               "--batch-size", str(settings.batch_size), "--required-batch-size-multiple", "1",
               "--max-epoch", str(settings.max_epoch), "--best-checkpoint-metric", settings.metric,
               "--no-epoch-checkpoints", "--num-workers", "0",
               "--save-dir", os.path.join(output, "checkpoints"), "--log-format", "json",
               "--log-file", os.path.join(output, "train.log"), "--log-interval", "50"]
    if settings.maximize:
        command.append("--maximize-best-checkpoint-metric")
    if request.pretrained:
        command += ["--finetune-from-model", os.path.abspath(request.pretrained), *shape]
    if request.freeze_layers:
        command += ["--freeze-layers", str(request.freeze_layers)]
    if request.device == "cpu":
        command.append("--cpu")
    return command + list(request.train_args)


def evaluate_command(output: str, data_dir: str, split: str) -> List[str]:
    command = [sys.executable, "-m", "moleblend_plugin.evaluate", os.path.join(output, "checkpoints", "checkpoint_best.pt"),
               "--data", data_dir, "--split", split, "--quiet", "--output", os.path.join(output, f"{split}_metrics.json")]
    if split == "test":
        command += ["--predictions", os.path.join(output, "test_predictions.csv")]
    return command


def _prepare_data(request: FinetuneRequest, data_dir: str, command: List[str], say: Callable[[str], None]) -> None:
    """Build the dataset, or reuse the one built by the same command; a different one is refused."""
    recorded = os.path.join(data_dir, "prep_command.json")
    if os.path.exists(os.path.join(data_dir, "manifest.json")) and not request.overwrite:
        previous = json.load(open(recorded, encoding="utf-8")) if os.path.exists(recorded) else None
        if previous == command[1:]:
            say(f"using the dataset prepared before in {data_dir}")
            return
        raise UserError(f"{data_dir} holds a dataset prepared with other settings; --overwrite rebuilds it")
    say(f"preparing the dataset in {data_dir}")
    from data_prep import __main__ as data_prep

    usage = io.StringIO()
    try:
        with contextlib.redirect_stderr(usage):  # argparse's usage text: only its last line, the message
            args = data_prep.make_parser().parse_args(command[3:] + (["--overwrite"] if request.overwrite else []))
    except SystemExit:
        lines = usage.getvalue().strip().splitlines()
        raise UserError(lines[-1] if lines else f"data preparation refused: {shell_line(command)}") from None
    prep_log = logging.getLogger("data_prep")
    level = prep_log.level
    prep_log.setLevel(logging.ERROR)  # the summary and the checks below say what the build made
    try:
        data_prep.build(data_prep.make_source(args), data_prep.build_options(args))
    except data_prep.SOURCE_ERRORS + data_prep.BUILD_ERRORS as error:
        raise UserError(str(error)) from None
    finally:
        prep_log.setLevel(level)
    with open(recorded, "w", encoding="utf-8") as f:
        json.dump(command[1:], f)
    say(data_prep.summary(read_manifest(data_dir), data_dir))


def run_training(command: List[str], log_path: str, progress: EpochProgress) -> None:
    """Run fairseq-train, print one line per validation, keep its whole output in a file."""
    with open(log_path, "a", encoding="utf-8") as log:
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                   env={**os.environ, "PYTHONUNBUFFERED": "1"})
        tail: List[str] = []
        for line in process.stdout:
            log.write(line)
            tail = (tail + [line])[-20:]
            progress.feed(line)
        if process.wait():
            raise UserError(f"fairseq-train failed (status {process.returncode}); its last lines:\n"
                            + "".join(tail) + f"the whole output is in {log_path}")


def finetune(request: FinetuneRequest, say: Callable[[str], None] = print) -> dict:
    """Run (or, with dry_run, print) the whole fine-tuning; returns metrics.json's content."""
    if not request.target_columns:
        raise UserError("give the label column(s): --target-columns y or y1,y2")
    if request.input_modality not in INPUT_MODALITIES:
        raise UserError(f"input modality {request.input_modality!r}: choose one of {', '.join(INPUT_MODALITIES)}")
    if request.input_modality == "2d+predicted3d" and not request.pretrained:
        raise UserError("input modality 2d+predicted3d predicts distances with a pretrained model's distance head: "
                        "give --pretrained")
    quiet_say = (lambda text: None) if request.quiet else say
    output = os.path.abspath(request.output)
    data_dir = os.path.join(output, "data")
    prep = prep_command(request, data_dir)
    arch, shape = pretrained_shape(request.pretrained) if request.pretrained else ("", [])
    if request.dry_run and not os.path.exists(os.path.join(data_dir, "manifest.json")):
        # Settings depend on the data: show them as the rules give them, on the size still unknown.
        say(shell_line(prep))
        settings = choose_settings(0, request.task_type if request.task_type != "auto" else "classification",
                                   arch, request.arch, request.metric, request.batch_size, request.max_epoch, request.lr)
        say("# the dataset is not built yet: batch size, epochs and (with --task-type auto) the metric "
            "below are placeholders chosen when it is")
        say(shell_line(train_command(request, data_dir, settings, shape)))
        say(shell_line(evaluate_command(output, data_dir, "test")))
        return {}
    os.makedirs(output, exist_ok=True)
    if request.dry_run:
        say(shell_line(prep))
    else:
        _prepare_data(request, data_dir, prep, quiet_say)
    manifest = read_manifest(data_dir)
    task_type = check_dataset(manifest, data_dir)
    settings = choose_settings(manifest["splits"]["train"], task_type, arch, request.arch, request.metric,
                               request.batch_size, request.max_epoch, request.lr)
    for reason in settings.reasons:
        quiet_say(f"setting: {reason}")
    train = train_command(request, data_dir, settings, shape)
    evaluations = [evaluate_command(output, data_dir, split) for split in ("valid", "test")]
    commands = [prep, train] + evaluations
    if request.dry_run:
        for command in commands[1:]:
            say(shell_line(command))
        return {}
    with open(os.path.join(output, "commands.sh"), "w", encoding="utf-8") as f:
        f.write("#!/usr/bin/env bash\n# the commands of this fine-tuning run, in order\nset -euo pipefail\n")
        f.write("".join(shell_line(c) + "\n" for c in commands))
    state = prepare_run_folder(os.path.join(output, "checkpoints"), train, request.overwrite, quiet_say)
    metrics_path = os.path.join(output, "metrics.json")
    if state == "done" and os.path.exists(metrics_path):
        quiet_say(f"already done: {metrics_path}")
        return json.load(open(metrics_path, encoding="utf-8"))
    # fairseq appends to logs, and an earlier run's results must not outlive it
    for name in ("train.log", "stdout.log", "metrics.json", "summary.md", "valid_curve.png", "test_predictions.csv"):
        if state == "new" and os.path.exists(os.path.join(output, name)):
            os.remove(os.path.join(output, name))
    quiet_say(f"fine-tuning {settings.arch} for {settings.max_epoch} epochs "
              f"({'from ' + request.pretrained if request.pretrained else 'from scratch'}); log: {output}/stdout.log")
    run_training(train, os.path.join(output, "stdout.log"), EpochProgress(settings.metric, settings.max_epoch, quiet_say))
    mark_done(os.path.join(output, "checkpoints"))
    from ..evaluate import evaluate

    checkpoint = os.path.join(output, "checkpoints", "checkpoint_best.pt")
    device = request.device or "cpu"
    scores = {split: evaluate(checkpoint, data_dir, split, device=device,
                              predictions_csv=os.path.join(output, "test_predictions.csv") if split == "test" else "")
              for split in ("valid", "test")}
    result = {
        "input": os.path.abspath(request.input), "output": output, "task_type": task_type,
        "targets": manifest["targets"], "splits": manifest["splits"], "split": manifest.get("split", {}),
        "num_rejected": manifest["num_rejected"], "rejected_by_reason": manifest["rejected_by_reason"],
        "pretrained": os.path.abspath(request.pretrained) if request.pretrained else "",
        "input_modality": request.input_modality, "seed": request.seed,
        "settings": {k: v for k, v in asdict(settings).items() if k != "reasons"},
        "checkpoint": checkpoint,
        "valid": scores["valid"]["metrics"], "test": scores["test"]["metrics"],
    }
    with open(metrics_path, "w", encoding="utf-8") as f:
        json.dump(result, f, indent=2)
        f.write("\n")
    curve = read_valid_curve(os.path.join(output, "train.log"), settings.metric)
    write_report(output, result, curve, commands)
    quiet_say(f"test {settings.metric} {scores['test']['metrics'].get(settings.metric)} "
              f"(checkpoint of the best valid {settings.metric}); report: {output}/summary.md")
    return result
