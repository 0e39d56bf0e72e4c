"""The fast forms of the encoder compute the same function, and the same gradients, as
their plain references (Graphormer's and Transformer-M's formulas through autograd)."""
import pytest
import torch

from moleblend_plugin.criterions import pretrain as pretrain_criterion
from moleblend_plugin.criterions.grouped_cross_entropy import grouped_cross_entropy_reference
from moleblend_plugin.criterions.pretrain import PretrainCriterion
from moleblend_plugin.modules import vocabulary as vocab
from moleblend_plugin.modules.atom_embedding import AtomEmbedding
from moleblend_plugin.modules import gaussian_distance_bias
from moleblend_plugin.modules.gaussian_distance_bias import GaussianDistanceBias, GaussianLayer
from moleblend_plugin.modules.graph_relation_bias import GraphRelationBias
from moleblend_plugin.modules.native import build as native_build
from moleblend_plugin.modules.native import gaussian_kernels as fused_kernels
from moleblend_plugin.modules.noise_head import NoiseHead
from moleblend_plugin.modules.relation_heads import OuterProductHead

from model_inputs import ASPIRIN, CAFFEINE, NAPHTHOL, SALT, CriterionModel, all_modalities, batch_of, build_encoder


def _randomize(module, seed):
    """Weights far from their initialisation (including padding rows), so that no term
    of the function vanishes by accident."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.5 + p)


def _value_and_gradients(module, fn, upstream):
    module.zero_grad()
    outputs = fn()
    outputs = outputs if isinstance(outputs, tuple) else (outputs,)
    sum(float(i + 1) * (o * u).sum() for i, (o, u) in enumerate(zip(outputs, upstream))).backward()
    return [o.detach() for o in outputs], {n: p.grad.clone() for n, p in module.named_parameters() if p.grad is not None}


def _close(a, b, rtol, msg=None):
    """Equal up to float32 rounding: sums taken in another order differ by a few ulps of
    the tensor's largest entries, so the absolute tolerance scales with them."""
    torch.testing.assert_close(a, b, rtol=rtol, atol=rtol * float(b.detach().abs().max()), msg=msg and (lambda m: f"{msg}: {m}"))


def _assert_same(fast, reference, rtol=1e-5):
    (fast_out, fast_grads), (ref_out, ref_grads) = fast, reference
    for a, b in zip(fast_out, ref_out):
        _close(a, b, rtol)
    assert fast_grads.keys() == ref_grads.keys() and fast_grads
    for name in ref_grads:
        _close(fast_grads[name], ref_grads[name], rtol, msg=name)


def test_edge_bias_tables_equal_graphormers_multi_hop_encoding():
    batch = batch_of(ASPIRIN, CAFFEINE, SALT, NAPHTHOL)
    module = GraphRelationBias(num_heads=6, multi_hop_max_dist=5)
    _randomize(module, 0)
    upstream = [torch.randn(4, 6, *batch["spd"].shape[1:])]
    fast = _value_and_gradients(module, lambda: module.edge_bias(batch["edge_path"], batch["spd"]), upstream)
    reference = _value_and_gradients(module, lambda: module.edge_bias_reference(batch["edge_path"], batch["spd"]), upstream)
    _assert_same(fast, reference)
    assert fast[0][0].abs().max() > 0.1  # not a comparison of zeros


@pytest.mark.parametrize("hops", [1, 3, 5])
def test_edge_bias_with_fewer_hops_than_the_paths_hold(hops):
    batch = batch_of(ASPIRIN, CAFFEINE)
    module = GraphRelationBias(num_heads=4, multi_hop_max_dist=hops)
    _randomize(module, 1)
    _close(module.edge_bias(batch["edge_path"], batch["spd"]),
           module.edge_bias_reference(batch["edge_path"], batch["spd"]), rtol=1e-5)


def test_atom_feature_bags_equal_the_summed_embeddings():
    batch = batch_of(ASPIRIN, SALT, NAPHTHOL)
    module = AtomEmbedding(embed_dim=12)
    _randomize(module, 4)  # also the padding row, which real atoms never index
    mask = batch["atom_mask"]
    upstream = [torch.randn(*mask.shape, 12) * mask[..., None]]  # padded atoms feed nothing
    fast = _value_and_gradients(module, lambda: module.atoms(batch["atom_features"], mask), upstream)
    reference = _value_and_gradients(module, lambda: module.atoms_reference(batch["atom_features"], mask), upstream)
    _close(fast[0][0][mask], reference[0][0][mask], rtol=1e-5)
    _close(fast[1]["atom_encoder.weight"], reference[1]["atom_encoder.weight"], rtol=1e-5)
    assert not bool(mask.all())  # the batch has padded atoms


def _use_kernels(monkeypatch, form):
    """The 3D bias's kernels in C ("fused", which must build wherever a C compiler is) or
    through PyTorch ("eager", as on CPUs without a compiler). Returns the C functions'
    calls by name, counted, so that a test can tell that they ran."""
    calls = {"kernels": 0, "backward": 0}
    if form == "fused":
        if native_build.compiler() is None:
            pytest.skip("no C compiler: the fused kernels cannot be built here")
        for name in calls:
            def counted(*args, _name=name, _function=getattr(fused_kernels, name), **kwargs):
                calls[_name] += 1
                return _function(*args, **kwargs)
            monkeypatch.setattr(fused_kernels, name, counted)
    else:
        monkeypatch.setattr(fused_kernels, "available", lambda x, dtype: False)
    return calls


def _check_kernels_ran(calls, form):
    assert (calls["kernels"] > 0 and calls["backward"] > 0) == (form == "fused"), calls


@pytest.mark.parametrize("kernels", ["fused", "eager"])
@pytest.mark.parametrize("pairs_per_block", [None, 30, 1])
def test_gaussian_bias_and_atom_sums_equal_their_autograd_reference(monkeypatch, pairs_per_block, kernels):
    # pairs_per_block: the default (one block here), blocks of a few atoms, one atom per block
    calls = _use_kernels(monkeypatch, kernels)
    if pairs_per_block is not None:
        monkeypatch.setattr(gaussian_distance_bias, "PAIRS_PER_BLOCK", pairs_per_block)
    batch = batch_of(ASPIRIN, CAFFEINE, SALT)
    mask = batch["atom_mask"]
    coordinates = batch["coordinates"]
    pair_types = vocab.pair_type_index(batch["atomic_numbers"], mask)
    # a blend-like 0/1 weight per pair, 0 on padding
    weights = ((torch.rand(mask.shape + mask.shape[-1:], generator=torch.Generator().manual_seed(2)) > 0.4)
               & mask[:, :, None] & mask[:, None, :]).float()
    layer = GaussianDistanceBias(num_heads=4, embed_dim=8, num_kernels=16)
    _randomize(layer, 3)
    g = torch.Generator().manual_seed(5)
    upstream = [torch.randn(len(mask), 4, *weights.shape[1:], generator=g), torch.randn(*mask.shape, 8, generator=g)]

    def encode(method):
        # distances with a gradient, as predicted distances have
        distance = (coordinates.unsqueeze(1) - coordinates.unsqueeze(2)).norm(dim=-1).requires_grad_()
        values, grads = _value_and_gradients(
            layer, lambda: tuple(vars(method(distance, pair_types, weights)).values())[:2], upstream)
        return values + [distance.grad], grads

    fast, reference = encode(layer.encode_distances), encode(layer.encode_distances_reference)
    _check_kernels_ran(calls, kernels)
    # sums over many blocks add up in another order than over the whole tensor: a few more ulps
    _assert_same(fast, reference, rtol=1e-5 if pairs_per_block is None else 1e-4)
    assert set(fast[1]) == {"gbf.means.weight", "gbf.stds.weight", "gbf.mul.weight", "gbf.bias.weight",
                            "gbf_proj.layer1.weight", "gbf_proj.layer1.bias", "gbf_proj.layer2.weight",
                            "gbf_proj.layer2.bias", "edge_proj.weight", "edge_proj.bias"}


@pytest.mark.parametrize("kernels", ["fused", "eager"])
@pytest.mark.parametrize("pairs_per_block", [None, 30])
def test_gaussian_bias_under_cpu_autocast_matches_its_reference_under_autocast(monkeypatch, pairs_per_block, kernels):
    """bf16 products in the forward and the written-out backward alike, fp32 gradients;
    the backward outside autocast, as a training step runs it."""
    calls = _use_kernels(monkeypatch, kernels)
    if pairs_per_block is not None:
        monkeypatch.setattr(gaussian_distance_bias, "PAIRS_PER_BLOCK", pairs_per_block)
    batch = batch_of(ASPIRIN, CAFFEINE)
    mask = batch["atom_mask"]
    coordinates = batch["coordinates"]
    pair_types = vocab.pair_type_index(batch["atomic_numbers"], mask)
    weights = (mask[:, :, None] & mask[:, None, :]).float()
    layer = GaussianDistanceBias(num_heads=4, embed_dim=8, num_kernels=16)
    _randomize(layer, 4)
    upstream = [torch.randn(len(mask), 4, *weights.shape[1:]), torch.randn(*mask.shape, 8)]
    results = []
    for method in (layer.encode_distances, layer.encode_distances_reference):
        layer.zero_grad()
        distance = (coordinates.unsqueeze(1) - coordinates.unsqueeze(2)).norm(dim=-1).requires_grad_()
        with torch.autocast("cpu", dtype=torch.bfloat16):
            encoded = method(distance, pair_types, weights)
        assert encoded.bias.dtype == torch.bfloat16
        ((encoded.bias.float() * upstream[0]).sum() + 2 * (encoded.atom_features.float() * upstream[1]).sum()).backward()
        results.append(([encoded.bias.detach().float(), encoded.atom_features.detach().float(), distance.grad],
                        {n: p.grad.clone() for n, p in layer.named_parameters()}))
    _check_kernels_ran(calls, kernels)
    (fast_out, fast_grads), (ref_out, ref_grads) = results
    for a, b in zip(fast_out, ref_out):
        _close(a, b, rtol=3e-2)
    for name in ref_grads:
        assert fast_grads[name].dtype == torch.float32
        _close(fast_grads[name], ref_grads[name], rtol=3e-2, msg=name)


def _encoded(batch):
    """Final atom states, the layers' pair bias (-inf on padded keys) and unit directions of
    a real batch, from a randomized tiny trunk."""
    encoder = build_encoder(pretrain_mode="moleblend")
    _randomize(encoder, 9)
    with torch.no_grad():
        out = encoder.molecule_encoder(batch, all_modalities(batch))
    return out.atom_states, out.pair_bias, out.directions


@pytest.mark.parametrize("autocast", [False, True])
def test_noise_head_equals_its_per_axis_reference(autocast):
    batch = batch_of(ASPIRIN, CAFFEINE, SALT)
    states, pair_bias, directions = _encoded(batch)
    assert torch.isinf(pair_bias).any() and not bool(batch["atom_mask"].all())  # padded keys are masked
    head = NoiseHead(embed_dim=states.shape[-1], num_heads=pair_bias.shape[1])
    _randomize(head, 6)
    upstream = [torch.randn(*states.shape[:2], 3, generator=torch.Generator().manual_seed(8))]

    def run(method):
        inputs = states.clone().requires_grad_()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
            values, grads = _value_and_gradients(head, lambda: method(inputs, pair_bias, directions).float(), upstream)
        return values + [inputs.grad], grads

    fast, reference = run(head.forward), run(head.forward_reference)
    if autocast:
        # the reference rounds its [B, H, 3, N, d] products to bf16: values agree to bf16's
        # precision, and bf16 gradients through the softmax too loosely to compare
        _close(fast[0][0], reference[0][0], rtol=2e-2)
        return
    # The key bias shifts each row's logits by a constant: softmax ignores it, its gradient
    # is 0 but for rounding (of the other gradients' size in both forms).
    scale = float(reference[1]["k_proj.weight"].abs().max())
    for form in (fast, reference):
        assert float(form[1].pop("k_proj.bias").abs().max()) < 1e-5 * scale
    _assert_same(fast, reference)
    assert reference[0][0].abs().max() > 1e-3 and len(fast[1]) == len(list(head.parameters())) - 1


def test_gaussian_bias_takes_the_block_form_on_cpus_and_the_whole_tensor_form_elsewhere(monkeypatch):
    def block_form(*args):
        raise AssertionError("block form taken")

    monkeypatch.setattr(gaussian_distance_bias._KernelBiasAndAtomSums, "apply", block_form)
    layer = GaussianDistanceBias(num_heads=4, embed_dim=8, num_kernels=16)
    inputs = (torch.rand(2, 5, 5), torch.ones(2, 5, 5, 2, dtype=torch.long), torch.ones(2, 5, 5))
    with pytest.raises(AssertionError, match="block form taken"):
        layer.encode_distances(*inputs)
    # the device of a GPU as far as the dispatch can tell, without one
    encoded = layer.to("meta").encode_distances(*(t.to("meta") for t in inputs))
    assert encoded.bias.shape == (2, 4, 5, 5) and encoded.atom_features.shape == (2, 5, 8)


@pytest.mark.parametrize("batch_size, atoms", [(2, 0), (0, 5), (3, 1)])
def test_gaussian_bias_of_empty_batches_and_single_atoms(batch_size, atoms):
    layer = GaussianDistanceBias(num_heads=4, embed_dim=8, num_kernels=16)
    distance = torch.rand(batch_size, atoms, atoms, requires_grad=True)
    pair_types = torch.ones(batch_size, atoms, atoms, 2, dtype=torch.long)
    weights = torch.ones(batch_size, atoms, atoms)
    fast = layer.encode_distances(distance, pair_types, weights)
    reference = layer.encode_distances_reference(distance, pair_types, weights)
    assert fast.bias.shape == reference.bias.shape == (batch_size, 4, atoms, atoms)
    assert fast.atom_features.shape == reference.atom_features.shape == (batch_size, atoms, 8)
    torch.testing.assert_close(fast.bias, reference.bias)
    (fast.bias.sum() + fast.atom_features.sum()).backward()
    assert distance.grad.shape == distance.shape


def test_gaussian_kernels_below_the_smallest_normal_float_are_zero():
    layer = GaussianLayer(num_kernels=2)
    with torch.no_grad():
        layer.means.weight.copy_(torch.tensor([[0.0, 3.0]]))
        layer.stds.weight.copy_(torch.tensor([[0.0, 1.0]]))  # widths 0.01 and 1.01
    # x = 2 d (the pair's two type rows each multiply by 1). x = 0.1309 is 13.09 widths
    # from the narrow kernel: log density -82.0, a density of 2.4e-36; x = 0.136, 13.6
    # widths: log density -88.8, under the log of fp32's smallest normal (-87.3)
    distance = torch.tensor([[[0.06545, 0.068]]])
    kernels = layer(distance, torch.ones(1, 1, 2, 2, dtype=torch.long))
    narrow = kernels[0, 0, :, 0]
    assert 0 < narrow[0] < 1e-35 and narrow[1] == 0
    wide = torch.distributions.Normal(3.0, 1.01).log_prob(2 * distance[0, 0]).exp()
    torch.testing.assert_close(kernels[0, 0, :, 1], wide)  # normal densities unchanged
    # the fast form's kernels, from the same x, means and widths
    _, fast = gaussian_distance_bias._kernels(*layer.affine_and_widths(distance, torch.ones(1, 1, 2, 2, dtype=torch.long)))
    assert torch.equal(fast, kernels)


def test_pair_affine_by_index_equals_the_embedding_lookup_and_skips_the_padding_row():
    """x = a d + c through indexing vs nn.Embedding: values and gradients, with pair types
    that include the padding row 0 (which gets no gradient in both)."""
    layer = GaussianLayer(num_kernels=4)
    _randomize(layer, 6)
    g = torch.Generator().manual_seed(8)
    pair_types = torch.randint(0, 40, (3, 5, 5, 2), generator=g)
    pair_types[0, 0, 0] = 0
    upstream = [torch.randn(3, 5, 5, generator=g)]

    def affine(method):
        distance = (torch.rand(3, 5, 5, generator=torch.Generator().manual_seed(9)) * 5).requires_grad_()
        values, grads = _value_and_gradients(layer, lambda: method(distance, pair_types)[0], upstream)
        return values + [distance.grad], grads

    fast, reference = affine(layer.affine_and_widths), affine(layer.affine_and_widths_reference)
    _assert_same(fast, reference)
    assert set(fast[1]) == {"mul.weight", "bias.weight"}
    assert fast[1]["mul.weight"][0] == 0 and fast[1]["bias.weight"][0] == 0
    assert fast[1]["mul.weight"][1:40].abs().min() > 0


def test_a_pretraining_step_has_the_gradients_of_the_reference_forms(monkeypatch):
    """Loss and every parameter's gradient of a whole MoleBlend step, fast forms vs references
    (encoder, heads through the materialized outer product, losses on gathered entries)."""
    batch = batch_of(ASPIRIN, CAFFEINE, SALT)
    criterion = PretrainCriterion(None, 1.0, 1.0, 1.0, 1.0, "l1", "cosine")

    def step():
        model = CriterionModel(build_encoder(pretrain_mode="moleblend")).train()
        torch.manual_seed(7)  # the same blend draw and coordinate noise in both runs
        loss, _, _ = criterion(model, {"net_input": {"batch": batch}, "nsentences": 3, "ntokens": 0})
        loss.backward()
        return loss.detach(), {n: p.grad for n, p in model.named_parameters() if p.grad is not None}

    fast_loss, fast_grads = step()
    monkeypatch.setattr(GraphRelationBias, "edge_bias", GraphRelationBias.edge_bias_reference)
    monkeypatch.setattr(GaussianDistanceBias, "encode_distances", GaussianDistanceBias.encode_distances_reference)
    monkeypatch.setattr(AtomEmbedding, "atoms", AtomEmbedding.atoms_reference)
    monkeypatch.setattr(NoiseHead, "forward", NoiseHead.forward_reference)
    monkeypatch.setattr(OuterProductHead, "forward", OuterProductHead.forward_materialized)
    monkeypatch.setattr(pretrain_criterion, "grouped_cross_entropy", grouped_cross_entropy_reference)
    reference_loss, reference_grads = step()
    _close(fast_loss, reference_loss, rtol=1e-5)
    assert fast_grads.keys() == reference_grads.keys()
    for name in reference_grads:
        if name.endswith("k_proj.bias"):
            # softmax ignores a constant per row: 0 but for rounding, at the weights' scale
            scale = float(reference_grads[name.replace("bias", "weight")].abs().max())
            assert max(float(fast_grads[name].abs().max()), float(reference_grads[name].abs().max())) < 1e-5 * scale
            continue
        _close(fast_grads[name], reference_grads[name], rtol=1e-4, msg=name)
