import pytest
import torch

from moleblend_plugin.criterions.pretrain import PretrainCriterion
from moleblend_plugin.modules.relation_heads import OuterProductHead

from model_inputs import (ASPIRIN, CAFFEINE, ETHANOL, NAPHTHOL, SALT, CriterionModel, all_modalities, batch_of,
                          build_encoder, rotation)


def test_outputs_do_not_depend_on_other_molecules_in_the_batch():
    encoder = build_encoder().eval()
    alone = batch_of(ETHANOL)
    together = batch_of(ETHANOL, CAFFEINE, SALT)
    with torch.no_grad():
        a = encoder.molecule_encoder(alone, all_modalities(alone))
        b = encoder.molecule_encoder(together, all_modalities(together))
        n = int(alone["atom_mask"].sum())
        assert torch.allclose(a.atom_states[0, :n], b.atom_states[0, :n], atol=1e-5)
        assert torch.allclose(a.graph_state[0], b.graph_state[0], atol=1e-5)
        assert torch.allclose(encoder.spd_head(a.atom_states)[0, :n, :n],
                              encoder.spd_head(b.atom_states)[0, :n, :n], atol=1e-5)


def test_3d_encoding_and_distance_prediction_are_invariant_to_rotation_and_translation():
    encoder = build_encoder().eval()
    batch = batch_of(ASPIRIN, CAFFEINE)
    moved = dict(batch)
    moved["coordinates"] = batch["coordinates"] @ rotation(3).T + torch.tensor([1.5, -2.0, 0.7])
    with torch.no_grad():
        a = encoder.molecule_encoder(batch, all_modalities(batch))
        b = encoder.molecule_encoder(moved, all_modalities(moved))
        mask = batch["atom_mask"]
        assert torch.allclose(a.atom_states[mask], b.atom_states[mask], atol=1e-4)
        pairs = mask[:, :, None] & mask[:, None, :]
        assert torch.allclose(a.pair_bias.permute(0, 2, 3, 1)[pairs], b.pair_bias.permute(0, 2, 3, 1)[pairs], atol=1e-4)
        assert torch.allclose(encoder.distance_head(a.atom_states)[pairs],
                              encoder.distance_head(b.atom_states)[pairs], atol=1e-4)
        # a real test: the encoding does change when the geometry changes shape
        stretched = dict(batch)
        stretched["coordinates"] = batch["coordinates"] * 1.3
        c = encoder.molecule_encoder(stretched, all_modalities(stretched))
        assert not torch.allclose(a.atom_states[mask], c.atom_states[mask], atol=1e-3)


def test_noise_prediction_rotates_with_the_input():
    encoder = build_encoder().eval()
    batch = batch_of(ASPIRIN, NAPHTHOL)
    rot = rotation(5)
    moved = dict(batch)
    moved["coordinates"] = batch["coordinates"] @ rot.T + torch.tensor([0.3, 4.0, -1.0])
    mask = batch["atom_mask"]
    with torch.no_grad():
        outputs = []
        for b in (batch, moved):
            out = encoder.molecule_encoder(b, all_modalities(b))
            outputs.append(encoder.noise_head(out.atom_states, out.pair_bias, out.directions))
    assert torch.allclose(outputs[0][mask] @ rot.T, outputs[1][mask], atol=1e-4)
    assert outputs[0][mask].abs().max() > 1e-3


def test_factorized_relation_head_equals_the_materialized_outer_product():
    torch.manual_seed(0)
    head = OuterProductHead(embed_dim=24, rank=6, num_outputs=7)
    torch.nn.init.normal_(head.linear.bias)  # a bias to add (it starts at 0)
    states = torch.randn(3, 9, 24)
    upstream = torch.randn(3, 9, 9, 7)
    values, grads = [], []
    for form in (head.forward, head.forward_materialized):
        head.zero_grad()
        x = states.clone().requires_grad_()
        out = form(x)
        (out * upstream).sum().backward()
        values.append(out.detach())
        grads.append([x.grad] + [p.grad.clone() for p in head.parameters()])
    torch.testing.assert_close(values[0], values[1], rtol=1e-5, atol=1e-5)
    for fast, reference in zip(*grads):
        torch.testing.assert_close(fast, reference, rtol=1e-4, atol=1e-5)


def test_relation_head_under_cpu_autocast_adds_its_bias_in_fp32():
    """As nn.Linear under autocast: the product in bf16, the fp32 bias added to it, so the
    logits the losses read are fp32 and hold the bias unrounded."""
    torch.manual_seed(1)
    head = OuterProductHead(embed_dim=24, rank=6, num_outputs=7)
    torch.nn.init.zeros_(head.linear.bias)
    states = torch.randn(3, 9, 24)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        without_bias = head(states)
        torch.nn.init.normal_(head.linear.bias, std=100.0)  # large enough for bf16 to round it by ~0.3
        with_bias = head(states)
    assert with_bias.dtype == torch.float32
    assert float((with_bias - without_bias - head.linear.bias).abs().max()) < 1e-3
    assert float((head.linear.bias.bfloat16().float() - head.linear.bias).abs().max()) > 0.05


def _criterion():
    return PretrainCriterion(None, 1.0, 1.0, 1.0, 1.0, "l1", "cosine")


def _sample(batch):
    return {"net_input": {"batch": batch}, "nsentences": batch["atom_mask"].shape[0],
            "ntokens": int(batch["atom_mask"].sum())}


@pytest.mark.parametrize("mode", ["moleblend", "blend", "noisy_node", "mask_spd", "mask_edge", "mask_3d"])
def test_every_parameter_of_every_pretraining_mode_gets_a_gradient(mode):
    model = CriterionModel(build_encoder(pretrain_mode=mode)).train()
    batch = batch_of(ASPIRIN, CAFFEINE, SALT)
    loss, _, log = _criterion()(model, _sample(batch))
    loss.backward()
    missing = [name for name, p in model.named_parameters() if p.grad is None or not bool(p.grad.abs().sum() > 0)]
    unused_by_design = set()
    if mode in ("noisy_node", "mask_3d"):  # no 2D input: SPD/edge encoders and degree tables are not used
        unused_by_design = {n for n, _ in model.named_parameters()
                            if ".molecule_attn_bias." in n and "virtual_distance" not in n or "degree_encoder" in n}
    if mode in ("mask_spd", "mask_edge"):  # no 3D input
        unused_by_design = {n for n, _ in model.named_parameters() if ".molecule_3d_bias." in n}
        other = "edge" if mode == "mask_spd" else "spd"
        unused_by_design |= {n for n, _ in model.named_parameters()
                             if ("spatial_pos_encoder" if other == "spd" else "edge_") in n and ".molecule_attn_bias." in n}
    assert sorted(set(missing) - unused_by_design) == []


def test_a_tiny_batch_overfits():
    torch.manual_seed(0)
    model = CriterionModel(build_encoder(pretrain_mode="moleblend", seed=1, encoder_embed_dim=64,
                                 encoder_ffn_embed_dim=64, relation_head_dim=16)).train()
    batch = batch_of(ASPIRIN, CAFFEINE, NAPHTHOL, ETHANOL)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    criterion = _criterion()
    losses = []
    for _ in range(150):
        optimizer.zero_grad()
        loss, _, log = criterion(model, _sample(batch))
        loss.backward()
        optimizer.step()
        losses.append(log)
    first, last = losses[0], losses[-1]
    # Every relation term falls (the blend and the noise are drawn anew each step, so
    # the terms cannot reach zero; SPD from atom states alone is the slowest to learn).
    def mean(log, key, count):
        return log[key] / log[count]

    assert mean(last, "edge_loss_sum", "edge_hops") < mean(first, "edge_loss_sum", "edge_hops") / 10
    assert mean(last, "distance_abs_error", "distance_pairs") < mean(first, "distance_abs_error", "distance_pairs") / 3
    assert mean(last, "spd_loss_sum", "spd_pairs") < mean(first, "spd_loss_sum", "spd_pairs") / 1.6


def test_gaussian_kernels_equal_the_normal_density_of_the_affine_distance():
    import math

    from moleblend_plugin.modules.gaussian_distance_bias import MIN_KERNEL_WIDTH, GaussianLayer

    torch.manual_seed(0)
    layer = GaussianLayer(num_kernels=16)
    torch.nn.init.normal_(layer.mul.weight, 1.0, 0.1)
    torch.nn.init.normal_(layer.bias.weight, 0.0, 0.1)
    distance = torch.rand(2, 5, 5) * 6
    pair_types = torch.randint(1, 600, (2, 5, 5, 2))
    x = (layer.mul(pair_types).sum(-2) * distance.unsqueeze(-1) + layer.bias(pair_types).sum(-2))
    std = layer.stds.weight.view(-1).abs() + MIN_KERNEL_WIDTH
    expected = torch.exp(-0.5 * ((x - layer.means.weight.view(-1)) / std) ** 2) / (math.sqrt(2 * math.pi) * std)
    assert torch.allclose(layer(distance, pair_types), expected, rtol=1e-5, atol=1e-7)
