"""The relation losses computed on the heads' logits in place equal F.cross_entropy on
the valid entries gathered out: values, accuracy counts and gradients."""
import pytest
import torch

from moleblend_plugin.criterions.grouped_cross_entropy import grouped_cross_entropy, grouped_cross_entropy_reference
from moleblend_plugin.criterions.relation_targets import bond_feature_sizes, off_diagonal_pairs

from model_inputs import ASPIRIN, CAFFEINE, SALT, batch_of, build_encoder


def _edge_logits_and_targets(scale=1.0):
    """A tiny model's edge logits on a padded batch of real molecules (the head's own
    strided layout), the batch's bond-feature paths and which hops are valid."""
    batch = batch_of(ASPIRIN, CAFFEINE, SALT)
    encoder = build_encoder(pretrain_mode="moleblend")
    torch.nn.init.normal_(encoder.edge_head.linear.weight, std=scale)
    with torch.no_grad():
        logits = encoder(batch)["edge_logits"]
    hops = logits.shape[3]
    path = batch["edge_path"][:, :, :, :hops]
    valid = (path[..., 0] >= 0) & off_diagonal_pairs(batch["atom_mask"])[..., None]
    return logits, path, valid


def _value_and_gradient(loss, logits, path, valid, upstream=1.7):
    x = logits.detach().clone().requires_grad_()
    total, correct = loss(x, path, valid, bond_feature_sizes())
    (upstream * total).backward()
    return total.detach(), int(correct), x.grad


@pytest.mark.parametrize("scale", [1.0, 300.0])  # ordinary logits, and logits in the thousands
def test_edge_loss_equals_cross_entropy_of_the_gathered_entries(scale):
    logits, path, valid = _edge_logits_and_targets(scale)
    assert not logits.is_contiguous() and 0 < int(valid.sum()) < valid.numel()
    fast = _value_and_gradient(grouped_cross_entropy, logits, path, valid)
    reference = _value_and_gradient(grouped_cross_entropy_reference, logits, path, valid)
    torch.testing.assert_close(fast[0], reference[0], rtol=1e-5, atol=0)
    assert fast[1] == reference[1]
    if scale == 1.0:
        assert 0 < fast[1] < int(valid.sum())  # some hops right, some wrong
    torch.testing.assert_close(fast[2], reference[2], rtol=1e-5, atol=1e-6)
    assert fast[2].stride() == logits.stride()  # the gradient keeps the head's layout
    assert torch.isfinite(fast[2]).all() and not fast[2][~valid].any()


def test_one_group_is_the_plain_cross_entropy():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(4, 6, 6, 11, generator=g)
    target = torch.randint(0, 11, (4, 6, 6, 1), generator=g)
    valid = torch.rand(4, 6, 6, generator=g) > 0.3
    total, correct = grouped_cross_entropy(logits, target, valid, [11])
    expected = torch.nn.functional.cross_entropy(logits[valid], target[valid][:, 0], reduction="sum")
    torch.testing.assert_close(total, expected)
    assert int(correct) == int((logits[valid].argmax(-1) == target[valid][:, 0]).sum())


def test_bf16_logits_are_scored_in_fp32():
    logits, path, valid = _edge_logits_and_targets()
    logits = logits.bfloat16()  # bf16 rounding makes ties at the top: argmax's rule decides them
    fast = _value_and_gradient(grouped_cross_entropy, logits, path, valid)
    reference = _value_and_gradient(grouped_cross_entropy_reference, logits, path, valid)
    torch.testing.assert_close(fast[0], reference[0], rtol=1e-5, atol=0)
    assert fast[1] == reference[1]
    assert fast[2].dtype == torch.bfloat16
    torch.testing.assert_close(fast[2].float(), reference[2].float(), rtol=1e-2, atol=1e-3)


def test_unscored_entries_take_no_part_even_when_not_finite():
    logits, path, valid = _edge_logits_and_targets()
    spoiled = logits.clone()
    invalid = (~valid).nonzero()
    spoiled[tuple(invalid[0])] = float("inf")
    spoiled[tuple(invalid[1])] = float("nan")
    fast = _value_and_gradient(grouped_cross_entropy, spoiled, path, valid)
    clean = _value_and_gradient(grouped_cross_entropy, logits, path, valid)
    assert torch.isfinite(fast[0]) and torch.equal(fast[0], clean[0]) and fast[1] == clean[1]
    assert torch.equal(fast[2], clean[2])


def test_no_valid_entry_gives_zero_loss_and_gradient():
    logits, path, _ = _edge_logits_and_targets()
    total, correct, grad = _value_and_gradient(grouped_cross_entropy, logits, path, torch.zeros(logits.shape[:-1], dtype=torch.bool))
    assert float(total) == 0 and correct == 0 and not grad.any()


def test_mismatched_groups_are_refused():
    with pytest.raises(ValueError, match="do not match class groups"):
        grouped_cross_entropy(torch.zeros(2, 12), torch.zeros(2, 3, dtype=torch.long), torch.ones(2, dtype=torch.bool), [5, 6, 2])


@pytest.mark.parametrize("layout", ["contiguous", "classes before partners"])
def test_ties_follow_argmax_first_of_ties_rule(layout):
    rows = torch.tensor([[2.0, 2.0, 1.0], [2.0, 2.0, 1.0], [0.0, 3.0, 1.0], [1.0, 1.0, 1.0], [1.0, 1.0, 1.0], [0.5, 0.1, 0.2]])
    target = torch.tensor([[1], [0], [2], [0], [2], [0]])
    if layout == "contiguous":
        logits, targets = rows, target
    else:  # [1, 3 classes, 6 entries] seen as [1, 6 entries, 3 classes], as the heads lay them out
        logits, targets = rows.t().contiguous().unsqueeze(0).transpose(1, 2), target.unsqueeze(0)
    valid = torch.ones(logits.shape[:-1], dtype=torch.bool)
    total, correct = grouped_cross_entropy(logits, targets, valid, [3])
    # argmax takes the first of tied classes: right on rows 2, 4 and 6 only
    assert int(correct) == int((rows.argmax(-1) == target[:, 0]).sum()) == 3
    torch.testing.assert_close(total, torch.nn.functional.cross_entropy(rows, target[:, 0], reduction="sum"))
