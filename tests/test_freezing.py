"""Fine-tuning with the input embeddings and the first N encoder layers frozen."""

import pytest
import torch

from finetune_runs import bbbp_dataset, finetune, pretrain
from moleblend_plugin.checkpoints.safe_loading import load_checkpoint_file
from moleblend_plugin.errors import UserError

EMBEDDINGS = ("atom_feature.", "molecule_attn_bias.", "molecule_3d_bias.", "emb_layer_norm.")


def _trunk(state):
    prefix = "encoder.molecule_encoder."
    return {k[len(prefix):]: v for k, v in state["model"].items() if k.startswith(prefix)}


def test_frozen_weights_stay_bitwise_and_the_rest_trains(tmp_path):
    pretrained = pretrain(str(tmp_path / "pretrain"), "--encoder-layers", "2", "--max-update", "2")
    start = _trunk(load_checkpoint_file(pretrained))
    tuned = finetune(bbbp_dataset(), str(tmp_path / "ft"), "--encoder-layers", "2", "--input-modality", "2d",
                     "--finetune-from-model", pretrained, "--freeze-layers", "1", "--max-epoch", "2",
                     "--best-checkpoint-metric", "loss", "--weight-decay", "0.1")
    end = _trunk(load_checkpoint_file(tuned))
    frozen = [k for k in start if k.startswith(EMBEDDINGS) or k.startswith("layers.0.")]
    trained = [k for k in start if k.startswith("layers.1.")]
    assert frozen and trained
    for key in frozen:  # weight decay included: frozen weights are not in the optimizer
        assert torch.equal(start[key], end[key]), key
    assert any(not torch.equal(start[k], end[k]) for k in trained if k.endswith("weight"))


def test_freezing_more_layers_than_the_encoder_has_is_one_line(tmp_path):
    with pytest.raises(UserError, match="--freeze-layers 3: the encoder has 1 layer$"):
        finetune(bbbp_dataset(), str(tmp_path / "ft"), "--input-modality", "2d", "--freeze-layers", "3",
                 "--max-epoch", "1")
