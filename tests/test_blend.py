import math

import pytest
import torch

from moleblend_plugin.modules import relation_mixing as mixing


def _pair_mask(sizes, n):
    mask = torch.zeros(len(sizes), n, dtype=torch.bool)
    for k, s in enumerate(sizes):
        mask[k, :s] = True
    return mask[:, :, None] & mask[:, None, :]


def test_blend_frequencies_match_ratio_and_are_symmetric():
    torch.manual_seed(0)
    pair_mask = _pair_mask([40, 25, 40, 10], 40)
    ratio = mixing.parse_ratio("2:2:6")
    counts = torch.zeros(3)
    total = 0
    for _ in range(20):
        sources = mixing.sample_blend_sources(pair_mask, ratio, torch.ones(4, dtype=torch.bool))
        assert torch.equal(sources, sources.transpose(1, 2))
        assert bool((sources[~pair_mask] == -1).all()), "padding must not take part"
        assert bool((sources[pair_mask] >= 0).all())
        upper = torch.triu(pair_mask)  # one draw per unordered pair
        for s in range(3):
            counts[s] += ((sources == s) & upper).sum()
        total += int(upper.sum())
    for s, p in enumerate(ratio):
        sigma = math.sqrt(total * p * (1 - p))
        assert abs(counts[s] - total * p) < 4 * sigma, (s, counts[s].item(), total * p)


def test_molecules_without_3d_draw_2d_sources_in_proportion():
    torch.manual_seed(1)
    pair_mask = _pair_mask([30, 30], 30)
    has_3d = torch.tensor([True, False])
    sources = mixing.sample_blend_sources(pair_mask, (0.2, 0.2, 0.6), has_3d)
    assert not bool((sources[1] == mixing.DISTANCE).any())
    share_spd = (sources[1] == mixing.SPD).float().mean().item()
    assert 0.4 < share_spd < 0.6
    assert bool((sources[0] == mixing.DISTANCE).any())


def test_blend_input_gives_each_pair_exactly_one_modality():
    pair_mask = _pair_mask([7, 5], 7)
    sources = mixing.sample_blend_sources(pair_mask, (0.3, 0.3, 0.4), torch.ones(2, dtype=torch.bool))
    relation = mixing.blend_input(sources)
    total = relation.spd + relation.edge + relation.distance
    assert torch.equal(total, pair_mask.float())


def test_mask_keeps_the_requested_fraction_symmetrically():
    torch.manual_seed(2)
    pair_mask = _pair_mask([60], 60)
    keep = mixing.symmetric_keep_mask(pair_mask, 0.3)
    assert torch.equal(keep, keep.transpose(1, 2))
    assert abs(keep.mean().item() - 0.7) < 0.05


@pytest.mark.parametrize("text", ["2:2", "a:b:c", "-1:1:1", "0:0:0"])
def test_bad_ratio_is_a_clear_error(text):
    with pytest.raises(ValueError, match="blend ratio"):
        mixing.parse_ratio(text)
