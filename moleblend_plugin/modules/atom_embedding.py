"""Atom tokens: the sum of the 9 OGB feature embeddings, a degree embedding, and the graph token.

Names follow Transformer-M's `atom_feature` module. Graphormer keeps separate in- and
out-degree tables; molecules are undirected, so both are indexed by the same degree.
"""
import torch
import torch.nn as nn
import torch.nn.functional as F

from . import vocabulary as vocab


class AtomEmbedding(nn.Module):
    def __init__(self, embed_dim: int):
        super().__init__()
        self.atom_encoder = nn.Embedding(vocab.ATOM_TABLE_SIZE, embed_dim, padding_idx=0)
        self.in_degree_encoder = nn.Embedding(vocab.DEGREE_TABLE_SIZE, embed_dim, padding_idx=0)
        self.out_degree_encoder = nn.Embedding(vocab.DEGREE_TABLE_SIZE, embed_dim, padding_idx=0)
        self.graph_token = nn.Embedding(1, embed_dim)

    def atoms(self, atom_features: torch.Tensor, atom_mask: torch.Tensor) -> torch.Tensor:
        """[B, N, 9] -> [B, N, D]: the sum of the atom's 9 feature rows, as one embedding bag
        (without building the [B, N, 9, D] rows). Real atoms never index the padding row;
        padded atoms index only it and get zeros, as nn.Embedding gives them."""
        index = vocab.atom_feature_index(atom_features, atom_mask)
        summed = F.embedding_bag(index.reshape(-1, index.shape[-1]), self.atom_encoder.weight, mode="sum",
                                 padding_idx=self.atom_encoder.padding_idx)
        return summed.view(*index.shape[:-1], -1)

    def atoms_reference(self, atom_features: torch.Tensor, atom_mask: torch.Tensor) -> torch.Tensor:
        """The same function as `atoms`, through nn.Embedding."""
        return self.atom_encoder(vocab.atom_feature_index(atom_features, atom_mask)).sum(dim=-2)

    def degrees(self, degree: torch.Tensor, atom_mask: torch.Tensor) -> torch.Tensor:
        index = vocab.degree_index(degree, atom_mask)
        return self.in_degree_encoder(index) + self.out_degree_encoder(index)

    def prepend_graph_token(self, atoms: torch.Tensor) -> torch.Tensor:
        token = self.graph_token.weight.unsqueeze(0).expand(atoms.shape[0], -1, -1)
        return torch.cat([token, atoms], dim=1)
