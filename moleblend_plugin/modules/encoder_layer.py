"""A Transformer layer whose attention logits get a per-head pair bias.

attn = softmax(Q K^T / sqrt(d) + b) V. Post-LN `LN(h + f(h))` (Transformer-M) or pre-LN
`h + f(LN(h))` (Graphormer with --pre-layernorm). Parameter names follow fairseq's
`MultiheadAttention` and Transformer-M's encoder layer.
"""
import torch
import torch.nn as nn
import torch.nn.functional as F

from .dropout import Dropout, dropout

LAYER_NORM_EPS = 1e-5


def split_heads(x: torch.Tensor, num_heads: int) -> torch.Tensor:
    """[B, L, H * d] -> [B, H, L, d], a view."""
    b, n, _ = x.shape
    return x.view(b, n, num_heads, -1).transpose(1, 2)


class DropPath(nn.Module):
    """Drops the whole residual branch of a sample with probability p (stochastic depth)."""

    def __init__(self, p: float = 0.0):
        super().__init__()
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x
        keep = 1.0 - self.p
        mask = x.new_empty((x.shape[0],) + (1,) * (x.dim() - 1)).bernoulli_(keep)
        return x * mask / keep


class BiasedSelfAttention(nn.Module):
    def __init__(self, embed_dim: int, num_heads: int, attention_dropout: float):
        super().__init__()
        if embed_dim % num_heads:
            raise ValueError(f"embed_dim {embed_dim} is not divisible by num_heads {num_heads}")
        self.num_heads = num_heads
        self.head_dim = embed_dim // num_heads
        self.attention_dropout = attention_dropout
        self.q_proj = nn.Linear(embed_dim, embed_dim)
        self.k_proj = nn.Linear(embed_dim, embed_dim)
        self.v_proj = nn.Linear(embed_dim, embed_dim)
        self.out_proj = nn.Linear(embed_dim, embed_dim)

    def forward(self, x: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        """x [B, L, D], bias [B, H, L, L] (-inf on padded keys) -> [B, L, D]."""
        q, k, v = (split_heads(proj(x), self.num_heads) for proj in (self.q_proj, self.k_proj, self.v_proj))
        if self.training and self.attention_dropout > 0 and x.device.type == "cpu":
            out = self.attention_with_cpu_dropout(q, k, v, bias)
        else:
            out = F.scaled_dot_product_attention(
                q, k, v, attn_mask=bias.to(q.dtype), dropout_p=self.attention_dropout if self.training else 0.0
            )
        b, _, n, _ = out.shape
        return self.out_proj(out.transpose(1, 2).reshape(b, n, -1))

    def attention_with_cpu_dropout(self, q, k, v, bias):
        """softmax(Q K^T / sqrt(d) + b) V with the probabilities dropped out by
        `dropout.keep_mask`: what scaled_dot_product_attention computes on a CPU (its
        math form there), with the faster random source. Scores, bias and softmax in
        fp32 also under bf16 autocast."""
        scores = torch.matmul(q, k.transpose(-1, -2)).float().mul_(self.head_dim ** -0.5).add_(bias.float())
        probabilities = dropout(torch.softmax(scores, dim=-1), self.attention_dropout, True)
        return torch.matmul(probabilities.to(v.dtype), v)


class BiasedEncoderLayer(nn.Module):
    def __init__(self, embed_dim: int, ffn_embed_dim: int, num_heads: int, dropout: float,
                 attention_dropout: float, activation_dropout: float, droppath: float,
                 pre_layernorm: bool):
        super().__init__()
        self.pre_layernorm = pre_layernorm
        self.self_attn = BiasedSelfAttention(embed_dim, num_heads, attention_dropout)
        self.self_attn_layer_norm = nn.LayerNorm(embed_dim, eps=LAYER_NORM_EPS)
        self.fc1 = nn.Linear(embed_dim, ffn_embed_dim)
        self.fc2 = nn.Linear(ffn_embed_dim, embed_dim)
        self.final_layer_norm = nn.LayerNorm(embed_dim, eps=LAYER_NORM_EPS)
        self.dropout = Dropout(dropout)
        self.activation_dropout = Dropout(activation_dropout)
        self.drop_path = DropPath(droppath)

    def _residual(self, x, norm, branch):
        if self.pre_layernorm:
            return x + self.drop_path(self.dropout(branch(norm(x))))
        return norm(x + self.drop_path(self.dropout(branch(x))))

    def forward(self, x: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        x = self._residual(x, self.self_attn_layer_norm, lambda h: self.self_attn(h, bias))
        return self._residual(
            x, self.final_layer_norm, lambda h: self.fc2(self.activation_dropout(F.gelu(self.fc1(h))))
        )
