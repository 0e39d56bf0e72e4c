"""`moleblend pretrain`: MoleBlend pretraining of a prepared dataset with documented defaults
(those of examples/pretrain/cpu_sample.sh): Adam, cosine schedule with 5% warm-up,
validation and a checkpoint every `validate_every` updates, one progress line each."""
from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from typing import Callable, List

from moleblend_data.shards import read_manifest

from ..errors import UserError
from ..run_folder import mark_done, prepare_run_folder
from .commands import shell_line
from .finetune import PLUGIN_DIR, run_training
from .progress import EpochProgress


@dataclass
class PretrainRequest:
    data: str
    output: str
    arch: str = "moleblend_small"
    mode: str = "moleblend"
    blend_ratio: str = "2:2:6"
    max_update: int = 2000
    batch_size: int = 32
    lr: float = 5e-4
    validate_every: int = 500
    seed: int = 1
    device: str = ""
    train_args: List[str] = field(default_factory=list)
    overwrite: bool = False
    dry_run: bool = False
    quiet: bool = False


def pretrain_command(request: PretrainRequest) -> List[str]:
    output = os.path.abspath(request.output)
    command = [sys.executable, "-m", "moleblend_plugin.train", os.path.abspath(request.data), "--user-dir", PLUGIN_DIR,
               "--task", "moleblend_pretrain", "--criterion", "moleblend_pretrain", "--arch", request.arch,
               "--pretrain-mode", request.mode, "--blend-ratio", request.blend_ratio, "--seed", str(request.seed),
               "--optimizer", "fused_adam", "--adam-betas", "(0.9,0.999)", "--lr", repr(request.lr),
               "--lr-scheduler", "cosine", "--warmup-updates", str(max(1, request.max_update // 20)),
               "--max-update", str(request.max_update), "--batch-size", str(request.batch_size),
               "--required-batch-size-multiple", "1", "--num-workers", "0",
               "--validate-interval-updates", str(request.validate_every),
               "--save-interval-updates", str(request.validate_every), "--keep-interval-updates", "1",
               "--no-epoch-checkpoints", "--save-dir", os.path.join(output, "checkpoints"),
               "--log-format", "json", "--log-file", os.path.join(output, "train.log"), "--log-interval", "50"]
    if request.mode not in ("moleblend", "blend"):
        # single-modality modes leave some relation encoders without gradient
        command.append("--find-unused-parameters")
    if request.device == "cpu":
        command.append("--cpu")
    return command + list(request.train_args)


def pretrain(request: PretrainRequest, say: Callable[[str], None] = print) -> str:
    """Run (or print) the pretraining; returns the path of checkpoint_best.pt."""
    try:
        read_manifest(request.data)
    except (FileNotFoundError, ValueError) as error:
        if not request.dry_run:
            raise UserError(f"{error} (prepare it with: moleblend prep ...)") from None
    command = pretrain_command(request)
    if request.dry_run:
        say(shell_line(command))
        return ""
    output = os.path.abspath(request.output)
    os.makedirs(output, exist_ok=True)
    with open(os.path.join(output, "commands.sh"), "w", encoding="utf-8") as f:
        f.write("#!/usr/bin/env bash\nset -euo pipefail\n" + shell_line(command) + "\n")
    quiet_say = (lambda text: None) if request.quiet else say
    checkpoints = os.path.join(output, "checkpoints")
    if prepare_run_folder(checkpoints, command, request.overwrite, quiet_say) == "done":
        quiet_say(f"already done: {checkpoints}")
        return os.path.join(checkpoints, "checkpoint_best.pt")
    quiet_say(f"pretraining {request.arch} ({request.mode}) for {request.max_update} updates; log: {output}/stdout.log")
    run_training(command, os.path.join(output, "stdout.log"),
                 EpochProgress("loss", request.max_update, quiet_say, unit="update", step_key="valid_num_updates"))
    mark_done(checkpoints)
    return os.path.join(output, "checkpoints", "checkpoint_best.pt")
