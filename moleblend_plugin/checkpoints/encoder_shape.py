"""The encoder's shape (layers, width, heads, FFN width, Gaussian kernels, LayerNorm
placement, width of the relation heads) read off a checkpoint, so that
`--init-from-checkpoint` builds the model the checkpoint needs without the user copying
its sizes by hand.

The stored configuration (fairseq's `cfg["model"]` or an old `args` namespace) is read
first; tensor shapes give what it does not say and must agree with what it says.
"""
import re
from typing import Dict, Optional

import torch

from .key_maps import detect_layout, model_state
from .map_report import CheckpointLayoutError

# The model flags the checkpoint decides, as MoleBlendConfig names them.
# relation_head_dim matters where a pretrained relation head is kept (the distance
# predictor of 2d+predicted3d input, further pretraining).
SHAPE_FIELDS = ("encoder_layers", "encoder_embed_dim", "encoder_ffn_embed_dim", "encoder_attention_heads",
                "num_3d_bias_kernel", "pre_layernorm", "relation_head_dim")

# Where each layout keeps its trunk.
_TRUNK = {"graphormer": "encoder.graph_encoder.", "transformer_m": "encoder.molecule_encoder.",
          "moleblend_official": "encoder.molecule_encoder.", "moleblend": "encoder.molecule_encoder."}
_BIAS = {"graphormer": "graph_attn_bias.", "transformer_m": "molecule_attn_bias.",
         "moleblend_official": "molecule_attn_bias.", "moleblend": "molecule_attn_bias."}


def _stored_config(checkpoint) -> Dict[str, object]:
    """Shape fields of the checkpoint's stored model configuration (empty when none)."""
    if not isinstance(checkpoint, dict):
        return {}
    stored = None
    cfg = checkpoint.get("cfg")
    if cfg is not None and hasattr(cfg, "get") and cfg.get("model") is not None:
        stored = cfg.get("model")
    elif checkpoint.get("args") is not None:
        stored = checkpoint["args"]
    if stored is None:
        return {}
    get = stored.get if hasattr(stored, "get") else (lambda key, default=None: getattr(stored, key, default))
    found = {}
    for key in SHAPE_FIELDS:
        value = get(key, None)
        if value is not None:
            found[key] = bool(value) if key == "pre_layernorm" else int(value)
    return found


def _from_tensors(state: Dict[str, torch.Tensor], layout: str) -> Dict[str, object]:
    """Shape fields that the tensors of a model state fix."""
    trunk = _TRUNK[layout]
    found: Dict[str, object] = {}
    layers = {int(m.group(1)) for k in state for m in [re.match(re.escape(trunk) + r"layers\.(\d+)\.", k)] if m}
    if layers:
        found["encoder_layers"] = max(layers) + 1
    for key, field, dim in ((f"{trunk}layers.0.self_attn.q_proj.weight", "encoder_embed_dim", 1),
                            (f"{trunk}layers.0.self_attn.in_proj_weight", "encoder_embed_dim", 1),
                            (f"{trunk}layers.0.fc1.weight", "encoder_ffn_embed_dim", 0),
                            (f"{trunk}{_BIAS[layout]}spatial_pos_encoder.weight", "encoder_attention_heads", 1),
                            (f"{trunk}molecule_3d_bias.gbf.means.weight", "num_3d_bias_kernel", 1)):
        if key in state:
            found[field] = int(state[key].shape[dim])
    if layout == "moleblend":
        for head in ("spd_head", "edge_head", "distance_head", "distance_predictor.distance_head"):
            key = f"encoder.{head}.row_head.weight"
            if key in state:
                found["relation_head_dim"] = int(state[key].shape[0])
    if layout == "graphormer":
        # Graphormer builds graph_encoder.final_layer_norm exactly when it is pre-LN.
        found["pre_layernorm"] = f"{trunk}final_layer_norm.weight" in state
    elif layout in ("transformer_m", "moleblend_official"):
        found["pre_layernorm"] = False  # Transformer-M layers are post-LN
    return found


def checkpoint_encoder_shape(checkpoint, layout: str = "auto", origin: str = "checkpoint") -> Dict[str, object]:
    """{MoleBlendConfig field: value} of the encoder a checkpoint holds; CheckpointLayoutError
    when its stored configuration and its tensors disagree."""
    state = model_state(checkpoint)
    layout = detect_layout(state) if layout == "auto" else layout
    stored = _stored_config(checkpoint)
    measured = _from_tensors(state, layout)
    for key in set(stored) & set(measured):
        if stored[key] != measured[key]:
            raise CheckpointLayoutError(f"{origin}: its stored configuration says {key}={stored[key]}, "
                                        f"its tensors {measured[key]}")
    return {key: {**measured, **stored}[key] for key in SHAPE_FIELDS if key in {**measured, **stored}}


def apply_checkpoint_shape(args, explicit: Dict[str, object], shape: Dict[str, object],
                           origin: str) -> Optional[str]:
    """Set the shape fields of `args` from `shape`; `explicit` holds the values the user gave.
    ValueError naming both values when a given flag contradicts the checkpoint. Returns a
    line saying what was taken from the checkpoint (None when nothing was)."""
    for key, value in shape.items():
        if key in explicit and explicit[key] != value:
            flag = "--" + key.replace("_", "-")
            given = flag if key == "pre_layernorm" else f"{flag} {explicit[key]}"
            raise ValueError(f"{given} contradicts --init-from-checkpoint {origin}, whose encoder has "
                             f"{key}={value}; drop the flag (the checkpoint's shape is used)")
        setattr(args, key, value)
    if not shape:
        return None
    return f"encoder shape from {origin}: " + ", ".join(f"{k}={v}" for k, v in shape.items())
