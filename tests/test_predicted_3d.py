"""Fine-tuning on 2D data with distances predicted by the pretrained model (2d+predicted3d)."""
import os

import pytest
import torch

from finetune_runs import REPO, bbbp_dataset, finetune, pretrain_checkpoint
from model_inputs import ASPIRIN, CAFFEINE, ETHANOL, SALT, batch_of, build_encoder
from moleblend_plugin.checkpoints.safe_loading import load_checkpoint_file
from moleblend_plugin.embeddings import MoleculeEmbedder
from moleblend_plugin.errors import UserError
from moleblend_plugin.inference import MoleBlendPredictor, model_config
from moleblend_plugin.models.moleblend import MoleBlendEncoder, MoleBlendModel
from moleblend_plugin.modules import relation_mixing as mixing
from moleblend_plugin.modules import vocabulary

PREDICTED_3D = "2d+predicted3d"


def _model(encoder):
    return MoleBlendModel(encoder.cfg, encoder)


def _fine_tuning_model(pretrained_encoder, seed=1, **overrides):
    model = _model(build_encoder(pretraining=False, input_modality=PREDICTED_3D, seed=seed, **overrides))
    model.load_mapped_state({"model": _model(pretrained_encoder).state_dict()}, origin="the test's pretrained model")
    return model.eval()


def _distance_head_on_2d(pretrained, batch):
    """What the pretrained model's own distance head outputs when it sees SPD and edge only."""
    pair_mask = batch["atom_mask"][:, :, None] & batch["atom_mask"][:, None, :]
    with torch.no_grad():
        states = pretrained.molecule_encoder(batch, mixing.whole_modalities(pair_mask, (mixing.SPD, mixing.EDGE)))
        return pretrained.distance_head(states.atom_states).squeeze(-1)


def test_the_gaussian_encoding_of_a_distance_matrix_is_that_of_the_coordinates_it_comes_from():
    encoder = build_encoder(pretraining=False, input_modality="2d+3d").molecule_encoder
    batch = batch_of(ASPIRIN, SALT)
    pair_mask = batch["atom_mask"][:, :, None] & batch["atom_mask"][:, None, :]
    pair_types = vocabulary.pair_type_index(batch["atomic_numbers"], batch["atom_mask"])
    coordinates = batch["coordinates"]
    weights = pair_mask.float()
    from_coordinates = encoder.molecule_3d_bias(coordinates, pair_types, weights)
    distances = (coordinates[:, None, :, :] - coordinates[:, :, None, :]).norm(dim=-1)
    from_distances = encoder.molecule_3d_bias.encode_distances(distances, pair_types, weights)
    torch.testing.assert_close(from_distances.bias, from_coordinates.bias)
    torch.testing.assert_close(from_distances.atom_features, from_coordinates.atom_features)
    assert from_distances.directions is None
    # and through the whole encoder
    relations = mixing.whole_modalities(pair_mask, (mixing.SPD, mixing.EDGE, mixing.DISTANCE))
    torch.testing.assert_close(encoder(batch, relations, distances=distances).graph_state,
                               encoder(batch, relations).graph_state)


def test_predicted_distances_are_the_distance_head_on_2d_input_symmetric_and_non_negative():
    pretrained = build_encoder(pretraining=True, seed=0).eval()
    model = _fine_tuning_model(pretrained)
    batch = batch_of(ASPIRIN, CAFFEINE, SALT, with_3d=False)
    predicted = model.encoder.distance_predictor(batch)
    raw = _distance_head_on_2d(pretrained, batch)
    pairs = batch["atom_mask"][:, :, None] & batch["atom_mask"][:, None, :]
    off_diagonal = pairs & ~torch.eye(pairs.shape[1], dtype=torch.bool)
    # The untrained head outputs negative and asymmetric values: both rules below are exercised.
    assert (raw[off_diagonal] < 0).any()
    assert not torch.allclose(raw, raw.transpose(1, 2))
    expected = (0.5 * (raw + raw.transpose(1, 2))).clamp(min=0)
    torch.testing.assert_close(predicted[off_diagonal], expected[off_diagonal])
    assert torch.equal(predicted, predicted.transpose(1, 2))
    assert (predicted >= 0).all()
    assert (predicted[~off_diagonal] == 0).all()  # self pairs and padding
    # They are the 3D input of the model (the batch's coordinates, all zero here, are not).
    every = mixing.whole_modalities(pairs, (mixing.SPD, mixing.EDGE, mixing.DISTANCE))
    with torch.no_grad():
        graph = model.encoder.embed(batch)
        trunk = model.encoder.molecule_encoder
        torch.testing.assert_close(graph, trunk(batch, every, distances=predicted).graph_state)
        assert not torch.allclose(graph, trunk(batch, every, distances=torch.zeros_like(predicted)).graph_state)


def test_predicted_distances_of_a_molecule_do_not_depend_on_its_batch():
    model = _fine_tuning_model(build_encoder(pretraining=True, seed=0))
    alone = model.encoder.distance_predictor(batch_of(ETHANOL, with_3d=False))
    padded = model.encoder.distance_predictor(batch_of(ETHANOL, CAFFEINE, with_3d=False))
    torch.testing.assert_close(padded[0, :3, :3], alone[0])


def test_a_fairseq_pretraining_checkpoint_gives_its_distance_heads_output():
    """A checkpoint of fairseq's moleblend pretraining (QM9 fixture): the fine-tuning model's
    predicted distances are the checkpoint's own distance head on the 2D graph."""
    state = load_checkpoint_file(pretrain_checkpoint())
    cfg = model_config(state["cfg"]["model"])
    pretrained = MoleBlendModel(cfg, MoleBlendEncoder(cfg, 0, pretraining=True))
    torch.nn.Module.load_state_dict(pretrained, state["model"], strict=True)
    tuned_cfg = model_config({**state["cfg"]["model"], "input_modality": PREDICTED_3D})
    tuned = MoleBlendModel(tuned_cfg, MoleBlendEncoder(tuned_cfg, 1, pretraining=False))
    tuned.load_mapped_state(state, origin="pretrain_checkpoint")
    batch = batch_of(ASPIRIN, CAFFEINE, with_3d=False)
    raw = _distance_head_on_2d(pretrained.encoder.eval(), batch)
    predicted = tuned.encoder.distance_predictor(batch)
    pairs = batch["atom_mask"][:, :, None] & batch["atom_mask"][:, None, :]
    off_diagonal = pairs & ~torch.eye(pairs.shape[1], dtype=torch.bool)
    torch.testing.assert_close(predicted[off_diagonal],
                               (0.5 * (raw + raw.transpose(1, 2))).clamp(min=0)[off_diagonal])


def test_fine_tuning_with_predicted_3d_trains_through_fairseq_and_keeps_the_predictor_frozen(tmp_path):
    pretrained = pretrain_checkpoint()
    start = load_checkpoint_file(pretrained)["model"]
    best = finetune(bbbp_dataset(), str(tmp_path / "ft"), "--input-modality", PREDICTED_3D,
                    "--init-from-checkpoint", pretrained, "--max-epoch", "2", "--best-checkpoint-metric", "loss",
                    "--weight-decay", "0.1")
    end = load_checkpoint_file(best)["model"]
    trunk, predictor = "encoder.molecule_encoder.", "encoder.distance_predictor."
    for key in [k for k in start if k.startswith(trunk)]:
        copy = predictor + "molecule_encoder." + key[len(trunk):]
        assert torch.equal(end[copy], start[key]), copy  # frozen (weight decay included)
    for key in [k for k in start if k.startswith("encoder.distance_head.")]:
        assert torch.equal(end[predictor + key[len("encoder."):]], start[key]), key
    layers = [k for k in start if k.startswith(trunk + "layers.") and k.endswith("weight")]
    assert any(not torch.equal(end[k], start[k]) for k in layers)  # the trunk being fine-tuned trains

    # The fine-tuned model predicts from SMILES alone: no conformers.
    predictor_model = MoleBlendPredictor.from_checkpoint(best)
    assert not predictor_model.uses_3d
    values, errors = predictor_model.predict([ASPIRIN, "CCO"])
    assert errors == ["", ""] and torch.isfinite(torch.as_tensor(values)).all()
    embedder = MoleculeEmbedder.from_checkpoint(best)  # with the model's own input, predicted distances included
    assert not embedder.uses_3d
    torch.testing.assert_close(torch.as_tensor(embedder.embed([ASPIRIN, "CCO"]).graph_token),
                               torch.as_tensor(predictor_model.embed([ASPIRIN, "CCO"]).values))


def test_finetune_from_model_fills_the_predictor_too(tmp_path):
    best = finetune(bbbp_dataset(), str(tmp_path / "ft"), "--input-modality", PREDICTED_3D,
                    "--finetune-from-model", pretrain_checkpoint(), "--max-update", "2",
                    "--best-checkpoint-metric", "loss")
    start = load_checkpoint_file(pretrain_checkpoint())["model"]
    end = load_checkpoint_file(best)["model"]
    key = "encoder.distance_head.linear.weight"
    assert torch.equal(end["encoder.distance_predictor." + key[len("encoder."):]], start[key])


@pytest.mark.parametrize("pretraining", [dict(pretrain_mode="noisy_node"), dict(pretrain_mode="mask_spd"),
                                         dict(distance_target="vector")])
def test_a_checkpoint_without_a_distance_regression_head_is_refused_in_one_line(tmp_path, pretraining):
    encoder = build_encoder(pretraining=True, encoder_layers=1, **pretraining)
    path = str(tmp_path / "pretrained.pt")
    torch.save({"model": _model(encoder).state_dict()}, path)
    with pytest.raises(UserError, match="has none that predicts distances") as refused:
        finetune(bbbp_dataset(), str(tmp_path / "ft"), "--input-modality", PREDICTED_3D,
                 "--init-from-checkpoint", path, "--max-epoch", "1")
    assert "\n" not in str(refused.value)
    with pytest.raises(UserError, match="has none that predicts distances"):
        _fine_tuning_model(encoder, encoder_layers=1)


def test_predicted_3d_without_a_pretrained_checkpoint_is_refused(tmp_path):
    with pytest.raises(UserError, match="needs a pretrained checkpoint"):
        finetune(bbbp_dataset(), str(tmp_path / "ft"), "--input-modality", PREDICTED_3D, "--max-epoch", "1")


def test_moleblend_finetune_builds_no_conformers_for_predicted_3d_and_needs_pretrained(tmp_path):
    from moleblend_plugin.workflows.finetune import FinetuneRequest, finetune as workflow

    esol = os.path.join(REPO, "examples", "data", "esol", "esol.csv")
    target = ["measured log solubility in mols per litre"]
    with pytest.raises(UserError, match="give --pretrained"):
        workflow(FinetuneRequest(input=esol, output=str(tmp_path / "a"), target_columns=target,
                                 input_modality=PREDICTED_3D))
    lines = []
    workflow(FinetuneRequest(input=esol, output=str(tmp_path / "b"), target_columns=target,
                             input_modality=PREDICTED_3D, pretrained=pretrain_checkpoint(), dry_run=True),
             say=lines.append)
    prep = next(line for line in lines if " -m data_prep csv " in line)
    train = next(line for line in lines if " -m moleblend_plugin.train " in line)
    assert "--conformers 0" in prep
    assert f"--input-modality {PREDICTED_3D}" in train and "--relation-head-dim 16" in train
