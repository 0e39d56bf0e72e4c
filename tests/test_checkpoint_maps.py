"""Key maps from Graphormer, Transformer-M and official MoleBlend checkpoints; safe loading;
pretrain -> fine-tune head swap; a checkpoint written by a real fairseq-train run."""
import argparse
import logging
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import checkpoint_layouts as layouts
from model_inputs import build_encoder, tiny_config
from moleblend_plugin.checkpoints.key_maps import TRUNK, detect_layout, map_state_dict
from moleblend_plugin.checkpoints.map_report import CheckpointLayoutError, CheckpointMismatchError
from moleblend_plugin.checkpoints.safe_loading import load_checkpoint_file
from moleblend_plugin.models.moleblend import MoleBlendConfig, MoleBlendEncoder, MoleBlendModel

FIXTURES = "tests/fixtures"
TINY = dict(layers=2, dim=32, heads=4, ffn=32)


def trunk_keys(model):
    return [k for k in model.state_dict() if k.startswith("molecule_encoder.")]


def encoder_keys(loaded, prefix):
    return {k[len("encoder."):] for k in loaded if k.startswith(prefix)}


@pytest.fixture(scope="module")
def base_finetune_pre_ln():
    torch.manual_seed(0)
    return MoleBlendEncoder(MoleBlendConfig(pre_layernorm=True), 1, False)


@pytest.fixture(scope="module")
def base_pretrain_vector():
    torch.manual_seed(0)
    return MoleBlendEncoder(MoleBlendConfig(distance_target="vector"), 0, True)


# ---- every encoder key of each public layout maps ----

def test_graphormer_base_pre_ln_maps_every_encoder_key(base_finetune_pre_ln):
    source = layouts.graphormer(values=False)  # graphormer_base: 12 x 768, 32 heads, pre-LN
    assert detect_layout(source) == "graphormer"
    mapped, report = map_state_dict(source, base_finetune_pre_ln)
    trunk = set(trunk_keys(base_finetune_pre_ln))
    three_d = {k for k in trunk if ".molecule_3d_bias." in k}
    assert encoder_keys(report.loaded, TRUNK) == trunk - three_d  # Graphormer has no 3D encoder
    assert set(report.missing) == {"encoder." + k for k in three_d}
    assert len(report.renamed) == len(source) - 4  # all but final_layer_norm and masked_lm_pooler (w, b)
    dropped = dict(report.unexpected)
    assert "never applies" in dropped["encoder.graph_encoder.final_layer_norm.weight"]
    assert "unused" in dropped["encoder.masked_lm_pooler.bias"]
    assert {"head.embed_out.weight", "head.lm_output_learned_bias", "head.layer_norm.weight"} <= set(mapped)
    assert any("3D distance encoder" in note for note in report.notes)


def test_transformer_m_base_maps_every_encoder_key(base_pretrain_vector):
    source = layouts.transformer_m(values=False)
    assert detect_layout(source) == "transformer_m"
    mapped, report = map_state_dict(source, base_pretrain_vector)
    assert encoder_keys(report.loaded, TRUNK) == set(trunk_keys(base_pretrain_vector))
    assert ("encoder.molecule_encoder.atom_proc.q_proj.weight", "encoder.noise_head.q_proj.weight") in report.renamed
    dropped = dict(report.unexpected)
    assert "not rotation-equivariant" in dropped["encoder.molecule_encoder.atom_proc.force_proj2.bias"]
    assert "pretraining model" in dropped["encoder.embed_out.weight"]
    assert any("Floyd-Warshall" in note for note in report.notes)
    assert "encoder.noise_head.force_proj.weight" in report.missing


def test_official_moleblend_base_maps_trunk_and_relation_heads(base_pretrain_vector):
    source = layouts.moleblend_official(values=False)
    assert detect_layout(source) == "moleblend_official"
    mapped, report = map_state_dict(source, base_pretrain_vector)
    assert encoder_keys(report.loaded, TRUNK) == set(trunk_keys(base_pretrain_vector))
    heads = {k for k in base_pretrain_vector.state_dict() if k.split(".")[0] in ("spd_head", "edge_head", "distance_head")}
    edge_output = {"edge_head.linear.weight", "edge_head.linear.bias"}
    assert encoder_keys(report.loaded, "encoder.") >= heads - edge_output
    assert sorted(report.missing) == sorted(["encoder.noise_head.force_proj.weight"] + ["encoder." + k for k in edge_output])
    assert "joint (bond type, stereo, conjugation)" in dict(report.unexpected)[
        "encoder.molecule_encoder.blend_edge_pred_head.linear_map_feature.weight"]
    assert any("Floyd-Warshall" in note for note in report.notes)


def test_fine_tuned_transformer_m_classification_head_is_dropped_with_reason():
    target = build_encoder(pretraining=False, num_targets=2)
    source = layouts.transformer_m(**TINY, kernels=16, remove_head=True, num_classes=2)
    _, report = map_state_dict(source, target)
    assert "no LayerNorm" in dict(report.unexpected)["encoder.proj_out.out_proj.weight"]
    assert encoder_keys(report.loaded, TRUNK) == set(trunk_keys(target))


# ---- values and functions after mapping ----

def test_graphormer_values_and_packed_attention_land_in_place():
    target = build_encoder(pretraining=False, num_targets=1, pre_layernorm=True)
    source = layouts.graphormer(**TINY)
    g = "encoder.graph_encoder.layers.1.self_attn."
    packed = torch.cat([source.pop(g + f"{p}_proj.weight") for p in "qkv"])
    source[g + "in_proj_weight"] = packed
    mapped, report = map_state_dict(source, target)
    target.load_state_dict(mapped, strict=False)
    layer = target.molecule_encoder.layers[1]
    assert torch.equal(layer.self_attn.k_proj.weight, packed[32:64])
    assert torch.equal(layer.fc2.weight, source["encoder.graph_encoder.layers.1.fc2.weight"])
    assert torch.equal(target.molecule_encoder.molecule_attn_bias.edge_dis_encoder.weight,
                       source["encoder.graph_encoder.graph_attn_bias.edge_dis_encoder.weight"])
    assert torch.equal(target.head.embed_out.weight, source["encoder.embed_out.weight"])
    assert any(t == "encoder.molecule_encoder.layers.1.self_attn.v_proj.weight" for _, t, _ in report.converted)


def official_factor(source, name, side, h):
    """One factor of the official TransformN2Head: LayerNorm(GELU(Linear(h)))."""
    t = f"encoder.molecule_encoder.blend_{name}_pred_head.transform_n2_head.{side}_"
    x = F.gelu(F.linear(h, source[t + "head.weight"], source[t + "head.bias"]))
    return F.layer_norm(x, x.shape[-1:], source[t + "LayerNorm.weight"], source[t + "LayerNorm.bias"], 1e-12)


def official_relation(source, name, h):
    """The official TransformN2Head outer product z[b, i, j, (c1 c2)] = row_i[c1] column_j[c2]."""
    row, column = official_factor(source, name, "row", h), official_factor(source, name, "column", h)
    b, n, r = row.shape
    return (row[:, :, None, :, None] * column[:, None, :, None, :]).reshape(b, n, n, r * r)


def test_official_heads_compute_the_official_functions():
    target = build_encoder(pretraining=True, relation_head_dim=8, distance_target="vector")
    source = layouts.moleblend_official(**TINY, kernels=16, relation_dim=8, hidden_3d=12)
    mapped, _ = map_state_dict(source, target)
    target.load_state_dict(mapped, strict=False)
    h = torch.randn(2, 5, 32)
    m = "encoder.molecule_encoder."

    def linear(z, key):
        return F.linear(z, source[m + key + ".weight"], source[m + key + ".bias"])

    with torch.no_grad():
        spd = linear(official_relation(source, "spd", h), "blend_spd_pred_head.linear")
        assert torch.allclose(target.spd_head(h)[..., 1:11], spd[..., :10], atol=1e-5)
        u, v = target.edge_head.factors(h)  # the edge head keeps the official factors, its output layer is new
        assert torch.allclose(u, official_factor(source, "edge", "row", h), atol=1e-6)
        assert torch.allclose(v, official_factor(source, "edge", "column", h), atol=1e-6)
        hidden = linear(official_relation(source, "3d", h), "blend_3d_pred_head.linear")
        vector = torch.cat([linear(hidden, f"blend_3d_pred_head.force_proj{i}") for i in (1, 2, 3)], dim=-1)
        assert torch.allclose(target.distance_head(h), vector, atol=1e-4)


def test_official_3d_head_dropped_for_a_distance_target():
    target = build_encoder(pretraining=True, relation_head_dim=8)  # --distance-target distance
    source = layouts.moleblend_official(**TINY, kernels=16, relation_dim=8)
    _, report = map_state_dict(source, target)
    assert "--distance-target vector" in dict(report.unexpected)["encoder.molecule_encoder.blend_3d_pred_head.linear.weight"]
    assert "encoder.distance_head.linear.weight" in report.missing


# ---- errors ----

def test_mis_shaped_key_is_an_error_naming_key_and_shapes():
    target = build_encoder(pretraining=False, pre_layernorm=True)
    source = layouts.graphormer(layers=2, dim=32, heads=8, ffn=32)  # 8 heads, the model has 4
    with pytest.raises(CheckpointMismatchError) as error:
        map_state_dict(source, target)
    message = str(error.value)
    assert "encoder.graph_encoder.graph_attn_bias.spatial_pos_encoder.weight" in message
    assert "(512, 8)" in message and "(512, 4)" in message
    assert error.value.report.mis_shaped


def test_different_depth_is_an_error():
    with pytest.raises(CheckpointMismatchError, match="fewer layers"):
        map_state_dict(layouts.graphormer(layers=1, dim=32, heads=4, ffn=32),
                       build_encoder(pretraining=False, pre_layernorm=True))
    with pytest.raises(CheckpointMismatchError, match="layers.2"):
        map_state_dict(layouts.graphormer(layers=3, dim=32, heads=4, ffn=32),
                       build_encoder(pretraining=False, pre_layernorm=True))


def test_unknown_layouts_and_keys_are_errors():
    target = build_encoder(pretraining=False)
    with pytest.raises(CheckpointLayoutError, match="unknown checkpoint layout"):
        map_state_dict({"decoder.embed_tokens.weight": torch.zeros(2, 2)}, target)
    with pytest.raises(CheckpointLayoutError, match="unknown checkpoint layout 'dgl'"):
        map_state_dict(layouts.graphormer(**TINY), target, layout="dgl")
    source = layouts.graphormer(**TINY, pre_layernorm=False)
    source["encoder.graph_encoder.quant_noise.weight"] = torch.zeros(32, 32)
    with pytest.raises(CheckpointLayoutError, match="quant_noise.weight: not a key of the graphormer layout"):
        map_state_dict(source, target)
    with pytest.raises(CheckpointLayoutError, match="not a moleblend_official checkpoint"):
        map_state_dict({"encoder.graph_encoder.x": torch.zeros(1)}, target, layout="moleblend_official")
    trunk_only = {k: v for k, v in layouts.transformer_m(**TINY, kernels=16).items() if ".atom_proc." not in k
                  and k.startswith(TRUNK)}
    with pytest.raises(CheckpointLayoutError, match="name the layout"):
        map_state_dict(trunk_only, target)
    assert map_state_dict(trunk_only, target, layout="transformer_m")[1].layout == "transformer_m"


def test_layer_norm_placement_and_sandwich_ln_are_checked():
    with pytest.raises(CheckpointLayoutError, match="--pre-layernorm"):
        map_state_dict(layouts.graphormer(**TINY), build_encoder(pretraining=False))
    with pytest.raises(CheckpointLayoutError, match="post-LN"):
        map_state_dict(layouts.transformer_m(**TINY, kernels=16), build_encoder(pretraining=False, pre_layernorm=True))
    source = layouts.transformer_m(**TINY, kernels=16)
    source["encoder.molecule_encoder.layers.0.final_sandwich_layer_norm.weight"] = torch.ones(32)
    with pytest.raises(CheckpointLayoutError, match="sandwich"):
        map_state_dict(source, build_encoder(pretraining=False))


def test_output_layer_policies():
    target = build_encoder(pretraining=False, num_targets=3, pre_layernorm=True)
    source = layouts.graphormer(**TINY, num_classes=1)
    _, report = map_state_dict(source, target)  # auto: 1 target vs 3 -> new output layer
    assert "for 1 targets, the model has 3" in dict(report.unexpected)["encoder.embed_out.weight"]
    assert "encoder.head.embed_out.weight" in report.missing
    assert "encoder.head.lm_head_transform_weight.weight" not in report.missing
    with pytest.raises(CheckpointMismatchError, match=r"embed_out.weight: checkpoint shape \(1, 32\)"):
        map_state_dict(source, target, output_layer="keep")
    three = layouts.graphormer(**TINY, num_classes=3)
    mapped, _ = map_state_dict(three, target, output_layer="keep")  # Graphormer's bias is shared: expanded
    assert torch.equal(mapped["head.lm_output_learned_bias"], three["encoder.lm_output_learned_bias"].expand(3))
    _, report = map_state_dict(three, target, output_layer="reset")
    assert "encoder.head.embed_out.weight" in report.missing


def test_report_format_lists_every_section():
    _, report = map_state_dict(layouts.transformer_m(**TINY, kernels=16), build_encoder(pretraining=False, num_targets=1))
    text = report.format()
    for section in ("matched", "renamed", "converted", "missing (initialised fresh)", "unexpected (dropped)",
                    "mis-shaped", "note: Transformer-M's Floyd-Warshall"):
        assert section in text
    assert "atom_proc.force_proj1, encoder.molecule_encoder.atom_proc.force_proj2" in text


# ---- the model hooks ----

def model_pair(num_targets=2):
    torch.manual_seed(1)
    pretrain = MoleBlendModel(tiny_config(), MoleBlendEncoder(tiny_config(), 0, True))
    finetune = MoleBlendModel(tiny_config(), MoleBlendEncoder(tiny_config(), num_targets, False))
    return pretrain, finetune


def test_finetune_from_pretraining_checkpoint_swaps_heads(caplog):
    pretrain, finetune = model_pair()
    head_before = {k: v.clone() for k, v in finetune.state_dict().items() if k.startswith("encoder.head.")}
    with caplog.at_level(logging.INFO, logger="moleblend_plugin.models.moleblend"):
        finetune.load_state_dict(pretrain.state_dict(), strict=True, model_cfg=None)
    for key, value in pretrain.state_dict().items():
        if key.startswith("encoder.molecule_encoder."):
            assert torch.equal(finetune.state_dict()[key], value), key
    for key, value in head_before.items():
        assert torch.equal(finetune.state_dict()[key], value)
    assert "pretraining head 'spd_head': dropped for fine-tuning" in caplog.text
    assert "missing (initialised fresh): 6" in caplog.text


def test_resume_of_an_exact_match_loads_as_usual(caplog):
    pretrain, _ = model_pair()
    torch.manual_seed(2)
    other = MoleBlendModel(tiny_config(), MoleBlendEncoder(tiny_config(), 0, True))
    with caplog.at_level(logging.INFO, logger="moleblend_plugin.models.moleblend"):
        other.load_state_dict(pretrain.state_dict(), strict=True, model_cfg=None)
    assert "key map" not in caplog.text
    assert all(torch.equal(other.state_dict()[k], v) for k, v in pretrain.state_dict().items())
    state = pretrain.state_dict()
    state["encoder.spd_head.linear.weight"] = torch.zeros(5, 64)
    with pytest.raises(CheckpointMismatchError, match="spd_head.linear.weight"):
        other.load_state_dict(state, strict=True, model_cfg=None)


def test_init_from_checkpoint_file_in_build_model(tmp_path, caplog):
    source = layouts.transformer_m(**TINY, kernels=16)
    path = tmp_path / "transformer_m.pt"
    # A legacy fairseq checkpoint: argparse args and a numpy scalar in its extra state.
    torch.save({"args": argparse.Namespace(arch="transformer_m_base"), "cfg": None, "model": source,
                "extra_state": {"best": np.float64(0.5)}, "optimizer_history": []}, path)
    cfg = tiny_config(num_3d_bias_kernel=16, init_from_checkpoint=str(path))
    with caplog.at_level(logging.INFO, logger="moleblend_plugin.models.moleblend"):
        model = MoleBlendModel.build_model(cfg, SimpleNamespace(is_pretraining=True))
    assert torch.equal(model.encoder.molecule_encoder.layers[0].fc1.weight,
                       source["encoder.molecule_encoder.layers.0.fc1.weight"])
    assert torch.equal(model.encoder.noise_head.v_proj.bias, source["encoder.molecule_encoder.atom_proc.v_proj.bias"])
    assert "checkpoint layout 'transformer_m'" in caplog.text
    assert cfg.init_from_checkpoint == ""  # saved checkpoints must not need the file again


def test_weights_only_loading_refuses_other_classes(tmp_path):
    path = tmp_path / "evil.pt"
    torch.save({"model": {}, "extra": SimpleNamespace(x=1)}, path)
    with pytest.raises(Exception, match="weights_only|Unsupported global"):
        load_checkpoint_file(str(path))


# ---- a checkpoint written by fairseq-train ----

def fairseq_train(*args):
    from fairseq import options
    from fairseq.dataclass.utils import convert_namespace_to_omegaconf
    from fairseq_cli import train

    parser = options.get_training_parser()
    train.main(convert_namespace_to_omegaconf(options.parse_args_and_arch(parser, list(args))))


COMMON = ["--user-dir", "moleblend_plugin", "--cpu", "--arch", "moleblend_tiny", "--batch-size", "4",
          "--optimizer", "adam", "--lr", "1e-3", "--max-update", "2", "--num-workers", "0",
          "--no-epoch-checkpoints", "--disable-validation", "--seed", "1"]


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory):
    from data_prep.__main__ import main as prepare

    root = tmp_path_factory.mktemp("fairseq_run")
    prepare(["sdf", "--input", f"{FIXTURES}/small.sdf", "--target-properties", "gap_eV,mu",
             "--output", str(root / "data"), "--conformers", "1"])
    fairseq_train(str(root / "data"), "--task", "moleblend_pretrain", "--criterion", "moleblend_pretrain",
                  "--save-dir", str(root / "pretrain"), *COMMON)
    return root


def test_fairseq_checkpoint_loads_weights_only(pretrained):
    path = str(pretrained / "pretrain" / "checkpoint_last.pt")
    state = torch.load(path, map_location="cpu", weights_only=True)
    assert any(k.startswith("encoder.spd_head.") for k in state["model"])
    assert load_checkpoint_file(path)["model"].keys() == state["model"].keys()


def test_finetune_from_model_through_fairseq(pretrained, caplog):
    with caplog.at_level(logging.INFO, logger="moleblend_plugin.models.moleblend"):
        fairseq_train(str(pretrained / "data"), "--task", "moleblend_finetune", "--criterion", "moleblend_finetune",
                      "--save-dir", str(pretrained / "finetune"), "--finetune-from-model",
                      str(pretrained / "pretrain" / "checkpoint_last.pt"), *COMMON)
    assert "checkpoint layout 'moleblend'" in caplog.text
    assert "pretraining head 'noise_head': dropped for fine-tuning" in caplog.text
    model = load_checkpoint_file(str(pretrained / "finetune" / "checkpoint_last.pt"))["model"]
    assert "encoder.head.embed_out.weight" in model and not any(k.startswith("encoder.spd_head.") for k in model)
