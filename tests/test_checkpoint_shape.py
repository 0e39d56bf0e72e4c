"""--init-from-checkpoint takes the encoder's shape from the checkpoint; flags that
contradict it are an error naming both values."""
import argparse

import pytest
import torch
from fairseq import options

import checkpoint_layouts as layouts
from finetune_runs import PLUGIN_DIR
from moleblend_plugin.checkpoints.encoder_shape import checkpoint_encoder_shape
from moleblend_plugin.checkpoints.key_maps import map_state_dict
from moleblend_plugin.checkpoints.map_report import CheckpointLayoutError
from moleblend_plugin.inference import model_config
from moleblend_plugin.models.moleblend import MoleBlendEncoder, MoleBlendModel

SHAPE = ("encoder_layers", "encoder_embed_dim", "encoder_ffn_embed_dim", "encoder_attention_heads",
         "num_3d_bias_kernel", "pre_layernorm")


def parse(*extra):
    parser = options.get_training_parser()
    return options.parse_args_and_arch(parser, input_args=[
        "unused-data", "--user-dir", PLUGIN_DIR, "--task", "moleblend_finetune", "--criterion",
        "moleblend_finetune", "--arch", "moleblend_tiny", *extra])


def shape_of(args):
    return {k: getattr(args, k) for k in SHAPE}


@pytest.mark.parametrize("layout, state, expected", [
    ("transformer_m", lambda: layouts.transformer_m(layers=3, dim=32, heads=4, ffn=48, kernels=16, values=False),
     dict(encoder_layers=3, encoder_embed_dim=32, encoder_ffn_embed_dim=48, encoder_attention_heads=4,
          num_3d_bias_kernel=16, pre_layernorm=False)),
    ("graphormer", lambda: layouts.graphormer(layers=2, dim=24, heads=6, ffn=40, pre_layernorm=True, values=False),
     dict(encoder_layers=2, encoder_embed_dim=24, encoder_ffn_embed_dim=40, encoder_attention_heads=6,
          num_3d_bias_kernel=32, pre_layernorm=True)),  # no 3D encoder: the arch's kernels stay
])
def test_shape_comes_from_the_checkpoint_and_the_model_loads_it(tmp_path, layout, state, expected):
    path = tmp_path / f"{layout}.pt"
    torch.save({"model": state()}, path)
    args = parse("--init-from-checkpoint", str(path))
    assert shape_of(args) == expected  # not moleblend_tiny's 2 / 64 / 64 / 4 / 32 / post-LN
    cfg = model_config({k: v for k, v in vars(args).items()})
    model = MoleBlendModel(cfg, MoleBlendEncoder(cfg, 1, pretraining=False))
    map_state_dict(torch.load(path)["model"], model, output_layer="reset")  # every shape fits


def test_given_flags_that_agree_are_accepted_and_contradicting_ones_refused(tmp_path):
    path = tmp_path / "tm.pt"
    torch.save({"model": layouts.transformer_m(layers=3, dim=32, heads=4, ffn=48, kernels=16, values=False)}, path)
    assert parse("--init-from-checkpoint", str(path), "--encoder-layers", "3").encoder_layers == 3
    with pytest.raises(ValueError, match=r"--encoder-layers 5 contradicts .*encoder_layers=3"):
        parse("--init-from-checkpoint", str(path), "--encoder-layers", "5")
    with pytest.raises(ValueError, match=r"--encoder-embed-dim 64 contradicts .*encoder_embed_dim=32"):
        parse("--init-from-checkpoint", str(path), "--encoder-embed-dim", "64")
    with pytest.raises(ValueError, match=r"--pre-layernorm contradicts .*pre_layernorm=False"):
        parse("--init-from-checkpoint", str(path), "--pre-layernorm")


def test_stored_configuration_is_read_and_checked_against_the_tensors():
    state = layouts.transformer_m(layers=2, dim=32, heads=8, ffn=48, kernels=16, values=False)
    stored = {"model": state, "cfg": {"model": {"encoder_layers": 2, "encoder_attention_heads": 8,
                                                "encoder_embed_dim": 32}}}
    assert checkpoint_encoder_shape(stored)["encoder_attention_heads"] == 8
    old_style = {"model": state, "args": argparse.Namespace(encoder_layers=2, encoder_ffn_embed_dim=48)}
    assert checkpoint_encoder_shape(old_style)["encoder_ffn_embed_dim"] == 48
    wrong = {"model": state, "cfg": {"model": {"encoder_layers": 4}}}
    with pytest.raises(CheckpointLayoutError, match="encoder_layers=4, its tensors 2"):
        checkpoint_encoder_shape(wrong)
