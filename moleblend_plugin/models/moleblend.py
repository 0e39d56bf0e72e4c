"""The MoleBlend model: a Transformer-M style encoder with pretraining and prediction heads.

Parameter names follow Transformer-M (`encoder.molecule_encoder.*` for the trunk,
`encoder.lm_head_transform_weight`, `encoder.layer_norm`, `encoder.embed_out`,
`encoder.lm_output_learned_bias` for the prediction head), so that Graphormer and
Transformer-M checkpoints map onto it by renaming only.
"""
import logging
from dataclasses import dataclass, field

import torch
import torch.nn as nn
import torch.nn.functional as F
from fairseq.dataclass import ChoiceEnum, FairseqDataclass
from fairseq.models import BaseFairseqModel, register_model, register_model_architecture
from fairseq.utils import safe_getattr

from ..checkpoints.encoder_shape import SHAPE_FIELDS, apply_checkpoint_shape, checkpoint_encoder_shape
from ..checkpoints.key_maps import DISTANCE_PREDICTOR, LAYOUTS, OUTPUT_LAYER_POLICIES, map_state_dict, model_state
from ..checkpoints.safe_loading import load_checkpoint_file
from ..errors import UserError
from moleblend_data.relations import MULTI_HOP_MAX_DIST
from ..modules import relation_mixing as mixing
from ..modules.distance_predictor import DistancePredictor
from ..modules.encoder_layer import LAYER_NORM_EPS
from ..modules.molecule_encoder import MoleculeEncoder, init_bert_params
from ..modules.noise_head import NoiseHead
from ..modules.relation_heads import OuterProductHead
from .pretraining_modes import PRETRAIN_MODES, bond_feature_classes

logger = logging.getLogger(__name__)

# The 3D input of 2d+predicted3d is distances that a frozen copy of the pretrained model
# predicts from the 2D graph (modules/distance_predictor.py), not coordinates.
PREDICTED_3D = "2d+predicted3d"
INPUT_MODALITIES = {"2d": (mixing.SPD, mixing.EDGE), "3d": (mixing.DISTANCE,),
                    "2d+3d": (mixing.SPD, mixing.EDGE, mixing.DISTANCE),
                    PREDICTED_3D: (mixing.SPD, mixing.EDGE, mixing.DISTANCE)}
# Pretraining modes whose distance head can predict the 3D input of 2d+predicted3d.
DISTANCE_HEAD_MODES = tuple(name for name, mode in PRETRAIN_MODES.items() if "3d" in mode.heads)


def needs_coordinates(input_modality: str) -> bool:
    """Whether a fine-tuning input reads the molecules' coordinates (conformers)."""
    return mixing.DISTANCE in INPUT_MODALITIES[input_modality] and input_modality != PREDICTED_3D


@dataclass
class MoleBlendConfig(FairseqDataclass):
    encoder_layers: int = field(default=12, metadata={"help": "number of Transformer layers"})
    encoder_embed_dim: int = field(default=768, metadata={"help": "hidden size"})
    encoder_ffn_embed_dim: int = field(default=768, metadata={"help": "feed-forward inner size"})
    encoder_attention_heads: int = field(default=32, metadata={"help": "attention heads"})
    dropout: float = field(default=0.0, metadata={"help": "dropout on embeddings and residual branches"})
    attention_dropout: float = field(default=0.1, metadata={"help": "dropout on attention weights"})
    act_dropout: float = field(default=0.1, metadata={"help": "dropout after the feed-forward activation"})
    droppath_prob: float = field(default=0.0, metadata={"help": "stochastic depth, rising linearly to this over the layers"})
    pre_layernorm: bool = field(default=False, metadata={"help": "pre-LN layers h + f(LN(h)) (Graphormer); default post-LN (Transformer-M)"})
    num_3d_bias_kernel: int = field(default=128, metadata={"help": "Gaussian basis kernels of the 3D distance encoder"})
    multi_hop_max_dist: int = field(default=MULTI_HOP_MAX_DIST, metadata={"help": "hops of the multi-hop edge encoding"})
    max_positions: int = field(default=512, metadata={"help": "largest molecule (atoms) the model accepts"})
    pretrain_mode: ChoiceEnum(list(PRETRAIN_MODES)) = field(
        default="moleblend", metadata={"help": "pretraining objective: " + "; ".join(f"{k}: {v.description}" for k, v in PRETRAIN_MODES.items())})
    blend_ratio: str = field(default="2:2:6", metadata={"help": "SPD:Edge:3D probabilities of the blend, per unordered atom pair"})
    mask_ratio: float = field(default=0.5, metadata={"help": "fraction of pairs hidden in the single-modality mask_* modes"})
    noise_scale: float = field(default=0.2, metadata={"help": "std (Angstrom) of the Gaussian coordinate noise of the noisy-node objective"})
    relation_head_dim: int = field(default=32, metadata={"help": "r, the width of the outer-product factors u_i, v_j"})
    max_spd_class: int = field(default=10, metadata={"help": "SPD classes 1..K (longer paths clipped to K), plus 'unreachable'"})
    distance_target: ChoiceEnum(["distance", "vector"]) = field(
        default="distance", metadata={"help": "3D head target: clean distance (regression) or clean relative position vector (cosine)"})
    input_modality: ChoiceEnum(list(INPUT_MODALITIES)) = field(
        default="2d", metadata={"help": "fine-tuning input: 2d (SPD + edge biases), 3d (3D bias), 2d+3d (all three "
                                        "summed), 2d+predicted3d (SPD + edge + the 3D bias of distances that the "
                                        "pretrained model's distance head predicts from the 2D graph; needs "
                                        "--init-from-checkpoint or --finetune-from-model with a checkpoint pretrained "
                                        "in mode " + ", ".join(DISTANCE_HEAD_MODES) + " and --distance-target distance; "
                                        "no conformers)"})
    readout: ChoiceEnum(["graph_token", "mean"]) = field(default="graph_token", metadata={"help": "molecule representation for prediction"})
    freeze_layers: int = field(
        default=0, metadata={"help": "freeze the input embeddings (atom features, graph token, SPD / edge / 3D relation "
                                     "encoders, embedding LayerNorm) and the first N encoder layers: their weights get "
                                     "no gradient and are not in the optimizer (default 0: nothing frozen)"})
    init_from_checkpoint: str = field(
        default="", metadata={"help": "start from the weights of this Graphormer, Transformer-M or MoleBlend checkpoint "
                                      "(mapped by key; see docs/checkpoints.md); new modules are initialised fresh. The "
                                      "encoder's shape (layers, widths, heads, kernels, LayerNorm placement) is taken "
                                      "from the checkpoint"})
    init_checkpoint_layout: ChoiceEnum(["auto"] + list(LAYOUTS)) = field(
        default="auto", metadata={"help": "layout of --init-from-checkpoint; auto tells it from the key names"})
    init_checkpoint_output_layer: ChoiceEnum(list(OUTPUT_LAYER_POLICIES)) = field(
        default="reset", metadata={"help": "the checkpoint's task output layer (embed_out, lm_output_learned_bias): "
                                           "reset for the new task, keep, or auto (keep when the target count matches)"})


class PredictionHead(nn.Module):
    """embed_out(LN(gelu(W h))) + bias, Graphormer's head."""

    def __init__(self, embed_dim: int, num_targets: int):
        super().__init__()
        self.lm_head_transform_weight = nn.Linear(embed_dim, embed_dim)
        self.layer_norm = nn.LayerNorm(embed_dim, eps=LAYER_NORM_EPS)
        self.embed_out = nn.Linear(embed_dim, num_targets, bias=False)
        self.lm_output_learned_bias = nn.Parameter(torch.zeros(num_targets))
        self.lm_head_transform_weight.apply(init_bert_params)
        self.embed_out.apply(init_bert_params)

    def forward(self, x):
        return self.embed_out(self.layer_norm(F.gelu(self.lm_head_transform_weight(x)))) + self.lm_output_learned_bias


def _trunk(cfg: MoleBlendConfig) -> MoleculeEncoder:
    return MoleculeEncoder(
        num_layers=cfg.encoder_layers, embed_dim=cfg.encoder_embed_dim, ffn_embed_dim=cfg.encoder_ffn_embed_dim,
        num_heads=cfg.encoder_attention_heads, dropout=cfg.dropout, attention_dropout=cfg.attention_dropout,
        activation_dropout=cfg.act_dropout, droppath=cfg.droppath_prob, pre_layernorm=cfg.pre_layernorm,
        num_kernels=cfg.num_3d_bias_kernel, multi_hop_max_dist=cfg.multi_hop_max_dist,
    )


class MoleBlendEncoder(nn.Module):
    """Trunk plus the heads the task needs: pretraining heads or a prediction head."""

    def __init__(self, cfg: MoleBlendConfig, num_targets: int, pretraining: bool):
        super().__init__()
        self.cfg = cfg
        self.molecule_encoder = _trunk(cfg)
        d, r = cfg.encoder_embed_dim, cfg.relation_head_dim
        self.pretraining = pretraining
        self.mode = PRETRAIN_MODES[str(cfg.pretrain_mode)] if pretraining else None
        if pretraining:
            heads = self.mode.heads
            self.spd_head = OuterProductHead(d, r, cfg.max_spd_class + 1) if "spd" in heads else None
            self.edge_head = (OuterProductHead(d, r, cfg.multi_hop_max_dist * sum(bond_feature_classes()))
                              if "edge" in heads else None)
            distance_outputs = 1 if cfg.distance_target == "distance" else 3
            self.distance_head = OuterProductHead(d, r, distance_outputs) if "3d" in heads else None
            self.noise_head = NoiseHead(d, cfg.encoder_attention_heads) if self.mode.noisy_node else None
            self.blend_ratio = mixing.parse_ratio(cfg.blend_ratio)
        else:
            self.head = PredictionHead(d, num_targets)
            self.input_modalities = INPUT_MODALITIES[str(cfg.input_modality)]
            # Filled from the pretrained checkpoint when the model is loaded (MoleBlendModel.load_mapped_state).
            self.distance_predictor = (DistancePredictor(_trunk(cfg), OuterProductHead(d, r, 1))
                                       if str(cfg.input_modality) == PREDICTED_3D else None)

    def pretrain(self, batch):
        atom_mask = batch["atom_mask"]
        pair_mask = atom_mask[:, :, None] & atom_mask[:, None, :]
        coordinates = batch["coordinates"]
        noise = None
        if self.noise_head is not None:
            has_3d = (batch["has_3d"][:, None] & atom_mask)[..., None]
            noise = torch.randn_like(coordinates) * self.cfg.noise_scale * has_3d
            coordinates = coordinates + noise
        relations = self.mode.relation_input(pair_mask, batch["has_3d"], self)
        out = self.molecule_encoder(batch, relations, coordinates)
        # the atom rows of [B, 1 + N, D] copied out once, not by each head's linear maps
        h = out.atom_states.contiguous()
        b, n, _ = h.shape
        result = {"relations": relations, "noise": noise, "atom_states": h}
        if self.spd_head is not None:
            result["spd_logits"] = self.spd_head(h)
        if self.edge_head is not None:
            result["edge_logits"] = self.edge_head(h).view(b, n, n, self.cfg.multi_hop_max_dist, -1)
        if self.distance_head is not None:
            pred = self.distance_head(h)
            result["distance_pred"] = pred.squeeze(-1) if pred.shape[-1] == 1 else pred
        if self.noise_head is not None:
            if out.directions is None:
                raise RuntimeError("the noisy-node head needs 3D input; pretrain mode has no 3D encoder")
            result["noise_pred"] = self.noise_head(h, out.pair_bias, out.directions)
        return result

    def embed(self, batch):
        atom_mask = batch["atom_mask"]
        pair_mask = atom_mask[:, :, None] & atom_mask[:, None, :]
        if needs_coordinates(str(self.cfg.input_modality)) and not bool(batch["has_3d"].all()):
            raise ValueError(f"input modality {self.cfg.input_modality} needs 3D coordinates for every molecule; "
                             "prepare the data with conformers or use --input-modality 2d")
        distances = self.distance_predictor(batch) if self.distance_predictor is not None else None
        out = self.molecule_encoder(batch, mixing.whole_modalities(pair_mask, self.input_modalities),
                                    distances=distances)
        if self.cfg.readout == "mean":
            weights = atom_mask[..., None].to(out.atom_states.dtype)
            return (out.atom_states * weights).sum(1) / weights.sum(1).clamp(min=1)
        return out.graph_state

    def forward(self, batch):
        if self.pretraining:
            return self.pretrain(batch)
        graph = self.embed(batch)
        return {"prediction": self.head(graph), "graph_state": graph}


def freeze_encoder(encoder, num_layers: int) -> None:
    """No gradient for the input embeddings and the first `num_layers` layers (fairseq's
    optimizer takes only parameters that require one)."""
    if not 0 <= num_layers <= len(encoder.layers):
        count = len(encoder.layers)
        raise UserError(f"--freeze-layers {num_layers}: the encoder has {count} layer{'s' if count != 1 else ''}")
    embeddings = [encoder.atom_feature, encoder.molecule_attn_bias, encoder.molecule_3d_bias, encoder.emb_layer_norm]
    for module in embeddings + list(encoder.layers[:num_layers]):
        module.requires_grad_(False)


@register_model("moleblend", dataclass=MoleBlendConfig)
class MoleBlendModel(BaseFairseqModel):
    def __init__(self, cfg: MoleBlendConfig, encoder: MoleBlendEncoder):
        super().__init__()
        self.cfg = cfg
        self.encoder = encoder

    @classmethod
    def build_model(cls, cfg, task):
        pretraining = bool(getattr(task, "is_pretraining", False))
        num_targets = 0 if pretraining else int(task.num_targets)
        model = cls(cfg, MoleBlendEncoder(cfg, num_targets, pretraining))
        if cfg.init_from_checkpoint:
            model.load_mapped_state(load_checkpoint_file(cfg.init_from_checkpoint), str(cfg.init_checkpoint_layout),
                                    str(cfg.init_checkpoint_output_layer), origin=cfg.init_from_checkpoint)
            # Applied once: the checkpoints this run saves hold these weights, so rebuilding the model from
            # their configuration (evaluation, inference) must not need the file again.
            cfg.init_from_checkpoint = ""
        if cfg.freeze_layers:
            freeze_encoder(model.encoder.molecule_encoder, int(cfg.freeze_layers))
        trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
        total = sum(p.numel() for p in model.parameters())
        logger.info("%s: %.2fM parameters, %.2fM trainable, %.2fM frozen (pretraining=%s)", cls.__name__,
                    total / 1e6, trainable / 1e6, (total - trainable) / 1e6, pretraining)
        return model

    def forward(self, batch, **unused):
        return self.encoder(batch)

    def load_state_dict(self, state_dict, strict=True, model_cfg=None, args=None):
        """Load an exact match as usual (resume); map anything else by key, with a logged report.

        fairseq's --finetune-from-model comes here with a pretraining checkpoint: its pretraining heads are
        dropped and the prediction head initialised. A mis-shaped key is an error, never skipped.
        """
        own = self.state_dict()
        if set(state_dict) == set(own) and all(state_dict[k].shape == own[k].shape for k in own):
            return super().load_state_dict(state_dict, strict=strict, model_cfg=model_cfg, args=args)
        return self.load_mapped_state(state_dict, "auto", "auto", origin="the checkpoint")

    def load_mapped_state(self, checkpoint, layout="auto", output_layer="auto", origin="checkpoint"):
        """Map a checkpoint (or a model state) onto this model, load it and log what was kept and dropped."""
        mapped, report = map_state_dict(model_state(checkpoint), self, layout=layout, output_layer=output_layer)
        if any(key.startswith(DISTANCE_PREDICTOR) for key in report.missing):
            raise UserError(
                f"--input-modality {PREDICTED_3D} predicts distances with the pretrained model's distance head, and "
                f"{origin} has none that predicts distances; load a checkpoint pretrained with --pretrain-mode "
                f"{' / '.join(DISTANCE_HEAD_MODES)} and --distance-target distance")
        result = nn.Module.load_state_dict(self, mapped, strict=False)
        if result.unexpected_keys or set(result.missing_keys) != set(report.missing):
            raise RuntimeError(f"key map and model disagree: {result}")
        logger.info("loaded %s by key map\n%s", origin, report.format())
        return report

    def max_positions(self):
        return self.cfg.max_positions + 1


def _take_shape_from_checkpoint(args) -> None:
    """With --init-from-checkpoint, the encoder's shape is the checkpoint's: flags the user
    did not give are set from it (before the architecture's defaults), and a given flag
    that contradicts it is an error naming both values."""
    path = safe_getattr(args, "init_from_checkpoint", "")
    if not path:
        return
    # Model flags the user did not give are None here (fairseq parses model flags without
    # defaults so that architectures can set them); a store-true flag reads False.
    explicit = {k: getattr(args, k) for k in SHAPE_FIELDS if getattr(args, k, None) not in (None, False)}
    shape = checkpoint_encoder_shape(load_checkpoint_file(path), str(safe_getattr(args, "init_checkpoint_layout", "auto")),
                                     origin=path)
    logger.info(apply_checkpoint_shape(args, explicit, shape, path))


def _architecture(name, **defaults):
    @register_model_architecture("moleblend", name)
    def arch(args):
        _take_shape_from_checkpoint(args)
        for key, value in defaults.items():
            setattr(args, key, safe_getattr(args, key, value))

    return arch


# The paper's model: 12 layers, 768 wide, 32 heads (as Transformer-M).
_architecture("moleblend_base", encoder_layers=12, encoder_embed_dim=768, encoder_ffn_embed_dim=768,
              encoder_attention_heads=32)
# A 6-layer model for single machines.
_architecture("moleblend_small", encoder_layers=6, encoder_embed_dim=256, encoder_ffn_embed_dim=256,
              encoder_attention_heads=8)
# For tests, CI and laptops.
_architecture("moleblend_tiny", encoder_layers=2, encoder_embed_dim=64, encoder_ffn_embed_dim=64,
              encoder_attention_heads=4, num_3d_bias_kernel=32, relation_head_dim=16)
