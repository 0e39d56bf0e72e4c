"""The encoder's dropout on CPUs: torch's dropout in distribution, with a cheaper random source."""
import pytest
import torch
import torch.nn.functional as F

from moleblend_plugin.modules.dropout import LANE_BITS, Dropout, dropout, keep_mask, random_lanes
from moleblend_plugin.modules.encoder_layer import BiasedSelfAttention


@pytest.mark.parametrize("p", [0.1, 0.5, 0.9])
def test_the_mask_drops_each_element_with_probability_p_and_keeps_the_mean(p):
    torch.manual_seed(0)
    mask = keep_mask((1000, 1000), p, torch.float32)
    dropped = float((mask == 0).float().mean())
    quantized = round(p * (1 << LANE_BITS)) / (1 << LANE_BITS)
    assert abs(dropped - quantized) < 5 * (p * (1 - p) / mask.numel()) ** 0.5  # 5 standard errors
    assert abs(quantized - p) <= 2 ** -(LANE_BITS + 1)
    torch.testing.assert_close(mask[mask > 0], torch.full_like(mask[mask > 0], 1 / (1 - quantized)))
    assert abs(float(mask.mean()) - 1.0) < 5 * (p / (1 - p) / mask.numel()) ** 0.5


def test_every_bit_of_every_lane_is_random_and_lanes_are_independent():
    # the four 16-bit lanes of each int64 draw: each of the 15 bits used must be set half
    # the time in every lane (the top lane has only 15 random bits, the sign bit being 0),
    # and neighbouring lanes must not repeat one another
    torch.manual_seed(1)
    lanes = random_lanes(4 * 200_000).view(-1, 4).int()
    assert int(lanes.min()) >= 0 and int(lanes.max()) < 1 << LANE_BITS
    for bit in range(LANE_BITS):
        rates = ((lanes >> bit) & 1).float().mean(0)
        assert ((rates - 0.5).abs() < 0.006).all(), (bit, rates)
    same_bit = (((lanes[:, 0] ^ lanes[:, 1]) >> 3) & 1).float().mean()
    assert abs(float(same_bit) - 0.5) < 0.006
    assert random_lanes(5).shape == (5,)  # a count not divisible by 4


def test_probabilities_near_one_drop_everything():
    assert not keep_mask((3, 3), 0.99999, torch.float32).any()


def test_gradient_uses_the_forward_mask_and_eval_or_p0_is_identity():
    torch.manual_seed(2)
    x = torch.randn(64, 33, requires_grad=True)
    out = dropout(x, 0.3, training=True)
    out.sum().backward()
    kept = out.detach() != 0
    torch.testing.assert_close(x.grad[~kept], torch.zeros_like(x.grad[~kept]))
    torch.testing.assert_close(x.grad[kept], (out.detach() / x.detach())[kept])
    layer = Dropout(0.3).eval()
    assert layer(x) is x and dropout(x, 0.0, training=True) is x


def test_seeded_masks_repeat():
    torch.manual_seed(3)
    first = keep_mask((5, 7), 0.2, torch.float32)
    torch.manual_seed(3)
    assert torch.equal(first, keep_mask((5, 7), 0.2, torch.float32))


def test_attention_with_cpu_dropout_is_scaled_dot_product_attention_with_the_same_mask(monkeypatch):
    torch.manual_seed(4)
    attention = BiasedSelfAttention(embed_dim=16, num_heads=4, attention_dropout=0.25)
    q, k, v = (torch.randn(3, 4, 6, 4) for _ in range(3))
    bias = torch.randn(3, 4, 6, 6)
    bias[0, :, :, 5] = float("-inf")  # a padded key
    masks = []

    def recorded_dropout(x, p, training):
        masks.append(keep_mask(x.shape, p, x.dtype))
        return x * masks[-1]

    monkeypatch.setattr("moleblend_plugin.modules.encoder_layer.dropout", recorded_dropout)
    ours = attention.attention_with_cpu_dropout(q, k, v, bias)
    probabilities = torch.softmax(q @ k.transpose(-1, -2) / 2.0 + bias, dim=-1)  # head_dim 4: scale 1/2
    torch.testing.assert_close(ours, (probabilities * masks[0]) @ v)
    # without the mask, the same function as torch's attention
    torch.testing.assert_close(probabilities @ v, F.scaled_dot_product_attention(q, k, v, attn_mask=bias))
    assert float((masks[0] == 0).float().mean()) > 0  # some probabilities were dropped
