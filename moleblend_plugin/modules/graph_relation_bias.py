"""2D relation encoders: shortest-path-distance bias and multi-hop edge bias.

Parameter names and shapes follow Graphormer / Transformer-M (`spatial_pos_encoder`,
`edge_encoder`, `edge_dis_encoder`, `graph_token_virtual_distance`).
"""
import torch
import torch.nn as nn

from . import vocabulary as vocab


def _row_counts(rows: torch.Tensor, num_rows: int):
    """rows [P, S] of a table with num_rows rows -> (the rows that occur [U], sorted;
    counts [P, U]: how often each of them occurs in each of the P lists)."""
    # a count, not `present[rows] = True`: that writes the same few entries from every
    # thread, over a million times a batch
    present = torch.bincount(rows.reshape(-1), minlength=num_rows) > 0
    used = present.nonzero().squeeze(1)
    compact = torch.cumsum(present, 0) - 1
    counts = torch.zeros(rows.shape[0], used.shape[0], device=rows.device)
    counts.scatter_add_(1, compact[rows], torch.ones(rows.shape, device=rows.device))
    return used, counts


class GraphRelationBias(nn.Module):
    def __init__(self, num_heads: int, multi_hop_max_dist: int = 5):
        super().__init__()
        self.num_heads = num_heads
        self.multi_hop_max_dist = multi_hop_max_dist
        self.spatial_pos_encoder = nn.Embedding(vocab.SPATIAL_TABLE_SIZE, num_heads, padding_idx=0)
        self.edge_encoder = nn.Embedding(vocab.BOND_TABLE_SIZE, num_heads, padding_idx=0)
        # One H x H matrix per hop, stored flat as in Graphormer.
        self.edge_dis_encoder = nn.Embedding(vocab.EDGE_DISTANCE_TABLE_SIZE * num_heads * num_heads, 1)
        self.graph_token_virtual_distance = nn.Embedding(1, num_heads)

    def spd_bias(self, spd: torch.Tensor, pair_mask: torch.Tensor) -> torch.Tensor:
        """[B, N, N] SPD -> [B, H, N, N]."""
        return self.spatial_pos_encoder(vocab.spatial_index(spd, pair_mask)).permute(0, 3, 1, 2)

    def edge_bias(self, edge_path: torch.Tensor, spd: torch.Tensor) -> torch.Tensor:
        """[B, N, N, hops, 3] bond features along paths -> [B, H, N, N].

        Per hop, the mean of the bond-feature embeddings times that hop's H x H matrix;
        summed over hops and divided by the path length clipped to [1, max hops].
        Both maps are linear, so hop k's contribution of a feature row is row k of the
        table E W_k / 3, and a pair's bias is a sum of table rows. Molecules use few
        distinct rows (tens: bond types, stereo and conjugation per hop), so the sum is a
        [pairs, rows used] count matrix times those rows: no [B, N, N, hops, 3, H]
        embeddings as in `edge_bias_reference`, and a matrix product as the backward.
        """
        hops = min(edge_path.shape[3], self.multi_hop_max_dist)
        index = vocab.hop_bond_index(edge_path[:, :, :, :hops])
        table = self.edge_encoder.weight
        # The padding row (no hop) takes part in the sum but, as in nn.Embedding, gets no gradient.
        table = torch.cat([table[:1].detach(), table[1:]])
        hop_weights = self.edge_dis_encoder.weight.view(-1, self.num_heads, self.num_heads)[:hops]
        hop_tables = torch.einsum("vh,khg->kvg", table, hop_weights).reshape(-1, self.num_heads) / index.shape[-1]
        rows = index + (torch.arange(hops, device=index.device) * table.shape[0]).view(hops, 1)
        used, counts = _row_counts(rows.reshape(-1, rows.shape[-2] * rows.shape[-1]), hop_tables.shape[0])
        bias = (counts.to(hop_tables.dtype) @ hop_tables[used]).view(*index.shape[:3], self.num_heads)
        path_length = spd.clamp(min=1, max=self.multi_hop_max_dist).to(bias.dtype)
        return (bias / path_length[..., None]).permute(0, 3, 1, 2)

    def edge_bias_reference(self, edge_path: torch.Tensor, spd: torch.Tensor) -> torch.Tensor:
        """The same function as `edge_bias`, written as Graphormer states it."""
        hops = min(edge_path.shape[3], self.multi_hop_max_dist)
        hop_embedding = self.edge_encoder(vocab.hop_bond_index(edge_path[:, :, :, :hops])).mean(-2)
        hop_weights = self.edge_dis_encoder.weight.view(-1, self.num_heads, self.num_heads)[:hops]
        bias = torch.einsum("bijkh,khg->bijg", hop_embedding, hop_weights)
        path_length = spd.clamp(min=1, max=self.multi_hop_max_dist).to(bias.dtype)
        return (bias / path_length[..., None]).permute(0, 3, 1, 2)

    def add_graph_token_distance(self, bias: torch.Tensor) -> torch.Tensor:
        """bias [B, H, N+1, N+1] with the graph token at 0: add the virtual distance to row 0
        and to column 0 of the atom rows."""
        t = self.graph_token_virtual_distance.weight.view(1, self.num_heads, 1)
        bias = bias.clone()
        bias[:, :, 1:, 0] = bias[:, :, 1:, 0] + t
        bias[:, :, 0, :] = bias[:, :, 0, :] + t
        return bias
