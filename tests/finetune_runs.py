"""Tiny prepared datasets from the committed fixtures, and fine-tuned checkpoints trained on
them with fairseq's own training loop (in this process, a few updates), shared by the
fine-tuning and inference tests. Each is made once per test session."""
import atexit
import importlib.util
import os
import shutil
import tempfile
from functools import lru_cache

from data_prep.__main__ import main as data_prep

FIXTURES = os.path.join(os.path.dirname(__file__), "fixtures")
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PLUGIN_DIR = os.path.join(REPO, "moleblend_plugin")


@lru_cache(maxsize=None)
def workdir() -> str:
    path = tempfile.mkdtemp(prefix="moleblend_finetune_tests_")
    atexit.register(shutil.rmtree, path, ignore_errors=True)
    return path


@lru_cache(maxsize=None)
def qm9_dataset() -> str:
    """40 QM9 molecules with their DFT geometries (random split 24/8/8)."""
    out = os.path.join(workdir(), "qm9")
    assert data_prep(["qm9", "--input", f"{FIXTURES}/qm9_sample.csv", "--output", out,
                      "--valid-size", "8", "--test-size", "8", "--quiet"]) == 0
    return out


@lru_cache(maxsize=None)
def bbbp_dataset() -> str:
    """The BBBP fixture (a few bad rows rejected), 2D only, scaffold split."""
    out = os.path.join(workdir(), "bbbp")
    assert data_prep(["moleculenet", "--dataset", "bbbp", "--input", f"{FIXTURES}/bbbp_bad.csv",
                      "--output", out, "--conformers", "0", "--quiet"]) == 0
    return out


def fairseq_train(argv) -> None:
    from fairseq import distributed_utils, options
    from fairseq.dataclass.utils import convert_namespace_to_omegaconf
    from fairseq_cli import train

    args = options.parse_args_and_arch(options.get_training_parser(), argv)
    forget_best()
    try:
        distributed_utils.call_main(convert_namespace_to_omegaconf(args), train.main)
    finally:
        forget_best()


def forget_best() -> None:
    """fairseq keeps the best validation score in a function attribute for the process; a
    second training run in the same process must not compare against the first one's."""
    from fairseq import checkpoint_utils

    if hasattr(checkpoint_utils.save_checkpoint, "best"):
        del checkpoint_utils.save_checkpoint.best


def finetune(data: str, save_dir: str, *flags: str) -> str:
    fairseq_train([data, "--user-dir", PLUGIN_DIR, "--task", "moleblend_finetune", "--criterion", "moleblend_finetune",
                   "--arch", "moleblend_tiny", "--encoder-layers", "1", "--cpu", "--num-workers", "0",
                   "--batch-size", "8", "--required-batch-size-multiple", "1", "--optimizer", "adam", "--lr", "1e-3",
                   "--save-dir", save_dir, "--no-epoch-checkpoints", "--no-progress-bar", "--seed", "3", *flags])
    return os.path.join(save_dir, "checkpoint_best.pt")


@lru_cache(maxsize=None)
def regression_checkpoint() -> str:
    """2d+3d model of two QM9 targets (meV), 2 epochs."""
    return finetune(qm9_dataset(), os.path.join(workdir(), "qm9_ft"), "--input-modality", "2d+3d",
                    "--targets", "gap,homo", "--max-epoch", "2", "--best-checkpoint-metric", "mae")


@lru_cache(maxsize=None)
def classification_checkpoint() -> str:
    """2d model of BBBP's p_np, 2 epochs."""
    return finetune(bbbp_dataset(), os.path.join(workdir(), "bbbp_ft"), "--input-modality", "2d",
                    "--max-epoch", "2", "--best-checkpoint-metric", "loss")


@lru_cache(maxsize=None)
def pcqm4mv2_dataset() -> str:
    """30 PCQM4Mv2-layout molecules (OGB split 20/5/3/2), 2D only."""
    out = os.path.join(workdir(), "pcqm4mv2")
    assert data_prep(["pcqm4mv2", "--root", f"{FIXTURES}/pcqm4mv2", "--output", out, "--conformers", "0",
                      "--quiet"]) == 0
    return out


@lru_cache(maxsize=None)
def pcqm4mv2_checkpoint() -> str:
    """2d HOMO-LUMO gap model (eV), 1 epoch, L1 loss as for the OGB MAE."""
    return finetune(pcqm4mv2_dataset(), os.path.join(workdir(), "pcqm4mv2_ft"), "--input-modality", "2d",
                    "--max-epoch", "1", "--regression-loss", "l1", "--best-checkpoint-metric", "mae")


def seed_runner():
    """examples/finetune/run_seeds.py as a module."""
    path = os.path.join(REPO, "examples", "finetune", "run_seeds.py")
    spec = importlib.util.spec_from_file_location("run_seeds", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def pretrain(save_dir: str, *flags: str) -> str:
    """moleblend_tiny pretrained with MoleBlend on the QM9 fixture; returns checkpoint_last.pt."""
    fairseq_train([qm9_dataset(), "--user-dir", PLUGIN_DIR, "--task", "moleblend_pretrain",
                   "--criterion", "moleblend_pretrain", "--arch", "moleblend_tiny", "--cpu",
                   "--num-workers", "0", "--batch-size", "8", "--required-batch-size-multiple", "1",
                   "--optimizer", "adam", "--lr", "1e-3", "--save-dir", save_dir,
                   "--no-epoch-checkpoints", "--no-progress-bar", "--seed", "5", *flags])
    return os.path.join(save_dir, "checkpoint_last.pt")


@lru_cache(maxsize=None)
def pretrain_checkpoint() -> str:
    """moleblend_tiny with 1 layer, pretrained for 6 updates."""
    return pretrain(os.path.join(workdir(), "qm9_pretrain"), "--encoder-layers", "1", "--max-update", "6")


@lru_cache(maxsize=None)
def ogb_dataset(name: str) -> str:
    """An OGB benchmark fixture in OGB's raw layout (tests/fixtures/ogb), official split, 2D."""
    out = os.path.join(workdir(), name)
    assert data_prep(["ogb", "--name", name, "--root", os.path.join(FIXTURES, "ogb"), "--output", out,
                      "--conformers", "0", "--quiet"]) == 0
    return out
