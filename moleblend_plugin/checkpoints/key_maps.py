"""Explicit key maps from Graphormer, Transformer-M and official MoleBlend checkpoints.

`map_state_dict(source, model)` renames (and where a head's layout differs, converts)
every key of a checkpoint's model state into this project's names, checks every shape
against the model, and returns the state to load with a `MapReport`. A key no rule knows,
a tensor of the wrong shape or a different number of layers is an error that names the
key and both shapes: nothing is dropped without a reason in the report.

Layouts (names read off the public code):
- `moleblend`: this project (`encoder.molecule_encoder.*`, `encoder.{spd,edge,distance,
  noise}_head.*`, `encoder.head.*`, and `encoder.distance_predictor.*` in models fine-tuned
  with --input-modality 2d+predicted3d).
- `graphormer`: `encoder.graph_encoder.{graph_node_feature,graph_attn_bias,emb_layer_norm,
  layers.N,final_layer_norm}` and `encoder.{lm_head_transform_weight,layer_norm,embed_out,
  lm_output_learned_bias,masked_lm_pooler}`.
- `transformer_m`: the trunk names of this project, plus `molecule_encoder.atom_proc`
  (the 3D denoising head) and Graphormer's head names, or `encoder.proj_out` after
  fine-tuning with --remove-head. Fine-tuned official MoleBlend checkpoints have this
  layout too.
- `moleblend_official`: Transformer-M's names plus `molecule_encoder.blend_{spd,edge,3d}
  _pred_head`.

A fine-tuning model with 2d+predicted3d input holds a frozen distance predictor
(`encoder.distance_predictor.{molecule_encoder,distance_head}.*`): a pretraining
checkpoint's trunk fills both the trunk being fine-tuned and the predictor's copy, and its
distance head the predictor's head.
"""
import re
from typing import Callable, Dict, List, Optional, Tuple

import torch

from .map_report import CheckpointLayoutError, CheckpointMismatchError, MapReport

TRUNK = "encoder.molecule_encoder."
HEAD = "encoder.head."
PRETRAINING_HEADS = ("encoder.spd_head.", "encoder.edge_head.", "encoder.distance_head.", "encoder.noise_head.")
OUTPUT_LAYER = (HEAD + "embed_out.weight", HEAD + "lm_output_learned_bias")
OUTPUT_LAYER_POLICIES = ("auto", "keep", "reset")
DISTANCE_PREDICTOR = "encoder.distance_predictor."
DISTANCE_HEAD = "encoder.distance_head."

FLOYD_WARSHALL_NOTE = (
    "Transformer-M's Floyd-Warshall (also used by the official MoleBlend code) collapses a shortest path "
    "through atom 0 into one hop; this project computes the true paths, so 2D (SPD and edge) outputs differ "
    "on molecules with such paths")

# Names inside one Transformer layer, shared by all three public codes.
_LAYER = r"layers\.(\d+)\.(self_attn\.[qkv]_proj|self_attn\.out_proj|self_attn_layer_norm|fc1|fc2|final_layer_norm)\.(weight|bias)"
_ATOM_FEATURE = r"(atom_encoder|in_degree_encoder|out_degree_encoder|graph_token)\.weight"
_ATTN_BIAS = r"(edge_encoder|edge_dis_encoder|spatial_pos_encoder|graph_token_virtual_distance)\.weight"
_3D_BIAS = r"molecule_3d_bias\.(gbf\.(means|stds|mul|bias)\.weight|gbf_proj\.layer[12]\.(weight|bias)|edge_proj\.(weight|bias))"

# A rule: (pattern, target template or None, reason when dropped or refused, refuse).
Rule = Tuple[str, Optional[str], str, bool]


def _rename(pattern: str, target: str) -> Rule:
    return (pattern, target, "", False)


def _drop(pattern: str, reason: str) -> Rule:
    return (pattern, None, reason, False)


def _refuse(pattern: str, reason: str) -> Rule:
    return (pattern, None, reason, True)


_PREDICTION_HEAD = [
    _rename(r"encoder\.(lm_head_transform_weight|layer_norm)\.(weight|bias)", HEAD + r"\1.\2"),
    _rename(r"encoder\.embed_out\.weight", HEAD + "embed_out.weight"),
    _rename(r"encoder\.lm_output_learned_bias", HEAD + "lm_output_learned_bias"),
]
_CLASSIFICATION_HEAD = _drop(
    r"encoder\.proj_out\..*",
    "RoBERTa-style classification head (dense, activation, out_proj) has no LayerNorm, unlike this model's "
    "head; a new head is initialised")
_SANDWICH_LN = _refuse(
    r"encoder\.molecule_encoder\.layers\.\d+\.(self_attn_sandwich_layer_norm|final_sandwich_layer_norm)\..*",
    "sandwich LayerNorm (--sandwich-ln) changes the layer's function and this model has no such layer")
_TRANSFORMER_M_TRUNK = [
    _rename(rf"encoder\.molecule_encoder\.(atom_feature\.{_ATOM_FEATURE})", TRUNK + r"\1"),
    _rename(rf"encoder\.molecule_encoder\.(molecule_attn_bias\.{_ATTN_BIAS})", TRUNK + r"\1"),
    _rename(rf"encoder\.molecule_encoder\.({_3D_BIAS})", TRUNK + r"\1"),
    _rename(r"encoder\.molecule_encoder\.(emb_layer_norm\.(weight|bias))", TRUNK + r"\1"),
    _rename(rf"encoder\.molecule_encoder\.({_LAYER})", TRUNK + r"\1"),
    _SANDWICH_LN,
    _rename(r"encoder\.molecule_encoder\.atom_proc\.([qkv]_proj\.(weight|bias))", r"encoder.noise_head.\1"),
    _drop(r"encoder\.molecule_encoder\.atom_proc\.force_proj[123]\.(weight|bias)",
          "per-axis force projections with a bias are not rotation-equivariant; this model's noise head shares "
          "one bias-free projection over the axes (initialised fresh)"),
]

RULES: Dict[str, List[Rule]] = {
    "moleblend": [
        _rename(r"(encoder\.(molecule_encoder|spd_head|edge_head|distance_head|noise_head|head|distance_predictor)\..+)",
                r"\1"),
    ],
    "graphormer": [
        _rename(rf"encoder\.graph_encoder\.graph_node_feature\.{_ATOM_FEATURE}", TRUNK + r"atom_feature.\1.weight"),
        _rename(rf"encoder\.graph_encoder\.graph_attn_bias\.{_ATTN_BIAS}", TRUNK + r"molecule_attn_bias.\1.weight"),
        _rename(r"encoder\.graph_encoder\.emb_layer_norm\.(weight|bias)", TRUNK + r"emb_layer_norm.\1"),
        _rename(rf"encoder\.graph_encoder\.{_LAYER}", TRUNK + r"layers.\1.\2.\3"),
        _drop(r"encoder\.graph_encoder\.final_layer_norm\.(weight|bias)",
              "Graphormer builds it with --pre-layernorm but never applies it in its forward"),
        _drop(r"encoder\.masked_lm_pooler\.(weight|bias)", "unused in Graphormer's forward"),
    ] + _PREDICTION_HEAD,
    "transformer_m": _TRANSFORMER_M_TRUNK + _PREDICTION_HEAD + [_CLASSIFICATION_HEAD],
    "moleblend_official": _TRANSFORMER_M_TRUNK + _PREDICTION_HEAD + [_CLASSIFICATION_HEAD] + [
        _drop(r"encoder\.molecule_encoder\.blend_edge_pred_head\.linear_map_feature\.(weight|bias)",
              "the official edge head scores the joint (bond type, stereo, conjugation) class of each hop in one "
              "softmax; this model classifies each bond feature separately, which no linear map of the joint "
              "logits reproduces; the edge output layer is initialised fresh"),
    ],
}
LAYOUTS = tuple(RULES)
SOURCE_PREFIXES = {"graphormer": "encoder.graph_encoder.", "transformer_m": TRUNK, "moleblend_official": TRUNK,
                   "moleblend": TRUNK}


def model_state(checkpoint: dict) -> Dict[str, torch.Tensor]:
    """The model state of a fairseq checkpoint (its "model" entry), or a bare state dict."""
    state = checkpoint.get("model", checkpoint) if isinstance(checkpoint, dict) else None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointLayoutError("expected a fairseq checkpoint (with a 'model' state dict) or a state dict of tensors")
    return state


def detect_layout(keys) -> str:
    """The layout of a state dict, from its key names."""
    keys = list(keys)

    def has(*prefixes):
        return any(k.startswith(prefixes) for k in keys)

    if has("encoder.graph_encoder."):
        return "graphormer"
    if not has(TRUNK):
        raise CheckpointLayoutError(
            "unknown checkpoint layout: no 'encoder.graph_encoder.*' (Graphormer) or 'encoder.molecule_encoder.*' "
            f"(Transformer-M, MoleBlend) keys; first keys: {keys[:5]}")
    if has(TRUNK + "blend_"):
        return "moleblend_official"
    if has(*PRETRAINING_HEADS, HEAD):
        return "moleblend"
    if has(TRUNK + "atom_proc.", "encoder.lm_head_transform_weight.", "encoder.embed_out.", "encoder.proj_out."):
        return "transformer_m"
    raise CheckpointLayoutError(
        "cannot tell a MoleBlend checkpoint from a Transformer-M one (trunk keys only); name the layout "
        f"explicitly: one of {', '.join(LAYOUTS)}")


# ---- converters for keys whose layout differs (official MoleBlend heads, packed attention) ----
# A converter takes the keys it knows out of `source` and returns items
# (checkpoint key(s), model key, tensor, how it was converted or None for a plain rename).

Item = Tuple[str, str, torch.Tensor, Optional[str]]
Converter = Callable[[Dict[str, torch.Tensor], Dict[str, torch.Tensor], MapReport], List[Item]]


def _split_in_proj(source, target, report) -> List[Item]:
    """fairseq's old packed `in_proj_weight` / `in_proj_bias` -> q, k, v projections (in that order)."""
    items = []
    for key in [k for k in source if re.search(r"\.self_attn\.in_proj_(weight|bias)$", k)]:
        packed = source.pop(key)
        stem, kind = key.rsplit(".in_proj_", 1)
        for name, part in zip("qkv", packed.chunk(3, dim=0)):
            items.append((key, _rename_split(stem, name, kind, report), part, f"{name} third of the packed projection"))
    return items


def _rename_split(stem, name, kind, report):
    """The model key of one third of a packed projection, through the layout's own layer rule."""
    key = f"{stem}.{name}_proj.{kind}"
    for pattern, template, _, _ in RULES[report.layout]:
        match = re.fullmatch(pattern, key)
        if match and template is not None:
            return match.expand(template)
    raise CheckpointLayoutError(f"{stem}.in_proj_{kind}: not a key of the {report.layout} layout this loader knows")


# The official SPD head: classes SPD 1..10 and one for SPD 11-19.
OFFICIAL_SPD_CLASSES = 11


def _official_spd_linear(source, target, report) -> List[Item]:
    """Official SPD classes: c = SPD - 1 (c < 10), 10 = SPD 11-19, unreachable ignored. Here: 0 = unreachable,
    k = SPD k, the last class SPD >= K. Rows move to their SPD; 'unreachable' keeps its fresh initialisation."""
    items = []
    for kind in ("weight", "bias"):
        key, dest = TRUNK + f"blend_spd_pred_head.linear.{kind}", f"encoder.spd_head.linear.{kind}"
        if key not in source:
            continue
        src = source.pop(key)
        if dest not in target:
            items.append((key, dest, src, None))
            continue
        if src.shape[1:] != target[dest].shape[1:] or src.shape[0] != OFFICIAL_SPD_CLASSES:
            report.mis_shaped.append((key, dest, tuple(src.shape), tuple(target[dest].shape)))
            continue
        rows = min(target[dest].shape[0] - 1, OFFICIAL_SPD_CLASSES - 1)
        value = target[dest].clone()
        value[1:rows + 1] = src[:rows]
        items.append((key, dest, value, f"classes re-indexed: official SPD 1..{rows} -> classes 1..{rows}; "
                                        "'unreachable' (class 0) initialised fresh, official SPD 11-19 dropped"))
    return items


def _official_3d_head(source, target, report) -> List[Item]:
    """Official 3D head: z -> linear (256) -> three per-axis projections, all linear: it is one linear map
    z -> relative position vector, which is this model's distance head with --distance-target vector."""
    head = TRUNK + "blend_3d_pred_head."
    keys = sorted(k for k in source if k.startswith(head))
    if not keys:
        return []
    dest = "encoder.distance_head.linear.weight"
    if dest not in target or target[dest].shape[0] != 3:
        why = ("the model has no 3D relation head" if dest not in target else
               "the official head predicts the relative position vector; this model's distance head regresses the "
               "distance (--distance-target distance); use --distance-target vector to load it")
        for key in keys:
            report.unexpected.append((key, why))
            source.pop(key)
        return []
    items = []
    for key in keys:
        match = re.fullmatch(re.escape(head) + r"transform_n2_head\.(row|column)_(head|LayerNorm)\.(weight|bias)", key)
        if match:
            part = "head" if match.group(2) == "head" else "layer_norm"
            items.append((key, f"encoder.distance_head.{match.group(1)}_{part}.{match.group(3)}", source.pop(key), None))
    try:
        hidden_w, hidden_b = source.pop(head + "linear.weight"), source.pop(head + "linear.bias")
        axes_w = torch.cat([source.pop(head + f"force_proj{i}.weight") for i in (1, 2, 3)], dim=0)  # [3, hidden]
        axes_b = torch.cat([source.pop(head + f"force_proj{i}.bias") for i in (1, 2, 3)], dim=0)
    except KeyError as missing:
        raise CheckpointLayoutError(f"official 3D head incomplete: no {missing}") from None
    how = "linear, then per-axis projections, composed into one linear map"
    items.append((f"{head}{{linear,force_proj1..3}}.weight", dest, axes_w @ hidden_w, how))
    items.append((f"{head}{{linear,force_proj1..3}}.bias", "encoder.distance_head.linear.bias",
                  axes_w @ hidden_b + axes_b, how))
    for key in [k for k in source if k.startswith(head)]:
        raise CheckpointLayoutError(f"{key}: not a key of the moleblend_official layout this loader knows")
    return items


def _official_factor_renames(source, target, report) -> List[Item]:
    """Row / column factors of the official SPD and edge heads -> this project's outer-product heads."""
    items = []
    for key in list(source):
        match = re.fullmatch(re.escape(TRUNK) + r"blend_(spd|edge)_pred_head\.transform_n2_head\."
                             r"(row|column)_(head|LayerNorm)\.(weight|bias)", key)
        if match:
            part = "head" if match.group(3) == "head" else "layer_norm"
            items.append((key, f"encoder.{match.group(1)}_head.{match.group(2)}_{part}.{match.group(4)}",
                          source.pop(key), None))
    return items


CONVERTERS: Dict[str, List[Converter]] = {
    "moleblend": [],
    "graphormer": [_split_in_proj],
    "transformer_m": [_split_in_proj],
    "moleblend_official": [_split_in_proj, _official_spd_linear, _official_3d_head,
                           _official_factor_renames],
}


# ---- the map ----

def _absent_reason(target_key: str, pretraining_model: bool) -> Optional[str]:
    """Why a mapped key has no place in this model; None where its absence is an error."""
    if target_key.startswith(HEAD):
        return "prediction head: the model is a pretraining model"
    if target_key.startswith(DISTANCE_PREDICTOR):
        return "frozen distance predictor of 2d+predicted3d input: this model's input does not use it"
    if target_key.startswith(PRETRAINING_HEADS):
        head = target_key.split(".")[1]
        return (f"pretraining head '{head}': not used by this pretraining mode" if pretraining_model
                else f"pretraining head '{head}': dropped for fine-tuning")
    return None


def _check_layer_norm_placement(layout, source, model, report):
    cfg = getattr(model, "cfg", None)
    if cfg is None or not hasattr(cfg, "pre_layernorm"):
        return
    if layout == "graphormer":
        pre_ln = "encoder.graph_encoder.final_layer_norm.weight" in source
        origin = "it has graph_encoder.final_layer_norm" if pre_ln else "it has no graph_encoder.final_layer_norm"
    elif layout in ("transformer_m", "moleblend_official"):
        pre_ln, origin = False, "Transformer-M layers are post-LN"
    else:
        return
    if bool(cfg.pre_layernorm) != pre_ln:
        wanted = "--pre-layernorm" if pre_ln else "no --pre-layernorm (post-LN)"
        raise CheckpointLayoutError(
            f"the {layout} checkpoint is {'pre' if pre_ln else 'post'}-LN ({origin}); build the model with {wanted}")
    report.notes.append(f"LayerNorm placement: {'pre' if pre_ln else 'post'}-LN, as the checkpoint")


def map_state_dict(source_state_dict: Dict[str, torch.Tensor], target_model: torch.nn.Module, layout: str = "auto",
                   output_layer: str = "auto") -> Tuple[Dict[str, torch.Tensor], MapReport]:
    """Map a checkpoint's model state onto `target_model` (a MoleBlendModel or MoleBlendEncoder).

    output_layer: what to do with the checkpoint's task output layer (`embed_out`, `lm_output_learned_bias`):
    'keep' loads it (a different number of targets is an error), 'reset' drops it for a new task (as
    Graphormer does without --load-pretrained-model-output-layer), 'auto' keeps it when the number of
    targets matches and resets it otherwise. Returns the state dict to load (the model's own key names)
    and the report; raises CheckpointLayoutError or CheckpointMismatchError.
    """
    if output_layer not in OUTPUT_LAYER_POLICIES:
        raise ValueError(f"output_layer must be one of {OUTPUT_LAYER_POLICIES}, not {output_layer!r}")
    source = dict(model_state(source_state_dict))
    layout = detect_layout(source) if layout == "auto" else layout
    if layout not in RULES:
        raise CheckpointLayoutError(f"unknown checkpoint layout {layout!r}; known: auto, {', '.join(LAYOUTS)}")
    if not any(k.startswith(SOURCE_PREFIXES[layout]) for k in source):
        raise CheckpointLayoutError(f"not a {layout} checkpoint: no '{SOURCE_PREFIXES[layout]}*' keys")
    own = target_model.state_dict()
    prefix = "" if any(k.startswith("encoder.") for k in own) else "encoder."
    target = {prefix + k: v for k, v in own.items()}
    pretraining_model = not any(k.startswith(HEAD) for k in target)
    report = MapReport(layout)
    _check_layer_norm_placement(layout, source, getattr(target_model, "encoder", target_model), report)

    items: List[Item] = []
    for converter in CONVERTERS[layout]:
        items.extend(converter(source, target, report))
    for key, value in source.items():
        for pattern, template, why, refuse in RULES[layout]:
            match = re.fullmatch(pattern, key)
            if match is None:
                continue
            if refuse:
                raise CheckpointLayoutError(f"{key}: {why}")
            if template is None:
                report.unexpected.append((key, why))
            else:
                items.append((key, match.expand(template), value, None))
            break
        else:
            raise CheckpointLayoutError(f"{key}: not a key of the {layout} layout this loader knows")

    items = _fill_distance_predictor(items, target, report)
    problems: List[str] = []
    loaded: Dict[str, torch.Tensor] = {}
    for key, dest, value, how in _apply_output_layer_policy(items, target, output_layer, report):
        if dest not in target:
            why = _absent_reason(dest, pretraining_model)
            if why is None:
                problems.append(f"{key} -> {dest}: the model has no such parameter (different depth or modules)")
            else:
                report.unexpected.append((key, why))
            continue
        if dest in OUTPUT_LAYER and dest.endswith("lm_output_learned_bias") and tuple(value.shape) == (1,):
            value = value.expand(target[dest].shape).clone()  # Graphormer / Transformer-M: one shared bias
        if tuple(value.shape) != tuple(target[dest].shape):
            report.mis_shaped.append((key, dest, tuple(value.shape), tuple(target[dest].shape)))
            continue
        loaded[dest] = value
        if how is not None:
            report.converted.append((key, dest, how))
        elif key == dest:
            report.matched.append(key)
        else:
            report.renamed.append((key, dest))

    report.missing = [k for k in target if k not in loaded]
    if any(k.startswith(TRUNK + "layers.") for k in loaded):
        problems += [f"{k}: the checkpoint has fewer layers than the model"
                     for k in report.missing if k.startswith(TRUNK + "layers.")]
    _add_notes(layout, report)
    if report.mis_shaped or problems:
        lines = [f"{k} -> {t}: checkpoint shape {a}, model shape {b}" for k, t, a, b in report.mis_shaped]
        lines += problems
        raise CheckpointMismatchError(
            f"cannot load the {layout} checkpoint into this model:\n  " + "\n  ".join(lines[:20])
            + (f"\n  ... and {len(lines) - 20} more" if len(lines) > 20 else ""), report)
    return {k[len(prefix):]: v for k, v in loaded.items()}, report


def _fill_distance_predictor(items: List[Item], target, report) -> List[Item]:
    """For a model with a distance predictor: the checkpoint's trunk also fills the predictor's
    trunk, and its distance head moves to the predictor's head. A checkpoint that holds a
    predictor of its own (fine-tuned with 2d+predicted3d) keeps it. A distance head with
    another output than the distance (--distance-target vector: a direction scored by cosine,
    with no length) is dropped, which leaves the predictor's head missing."""
    if not any(k.startswith(DISTANCE_PREDICTOR) for k in target):
        return items
    if any(dest.startswith(DISTANCE_PREDICTOR) for _, dest, _, _ in items):
        return items
    predictor_trunk, predictor_head = DISTANCE_PREDICTOR + "molecule_encoder.", DISTANCE_PREDICTOR + "distance_head."
    head = {dest: (key, value, how) for key, dest, value, how in items if dest.startswith(DISTANCE_HEAD)}
    output = head.get(DISTANCE_HEAD + "linear.weight")
    wanted = target.get(predictor_head + "linear.weight")
    head_fits = output is not None and wanted is not None and tuple(output[1].shape) == tuple(wanted.shape)
    kept: List[Item] = []
    for key, dest, value, how in items:
        if dest.startswith(DISTANCE_HEAD):
            if head_fits:
                kept.append((key, predictor_head + dest[len(DISTANCE_HEAD):], value,
                             how or "distance head of the frozen distance predictor"))
            else:
                report.unexpected.append((key, "distance head with other outputs than the distance "
                                               "(--distance-target vector): cannot predict distances"))
            continue
        kept.append((key, dest, value, how))
        if dest.startswith(TRUNK):
            kept.append((key, predictor_trunk + dest[len(TRUNK):], value, "copied into the frozen distance predictor"))
    return kept


def _apply_output_layer_policy(items: List[Item], target, policy, report) -> List[Item]:
    output = [item for item in items if item[1] in OUTPUT_LAYER]
    if not output or OUTPUT_LAYER[0] not in target:
        return items
    weight = [item for item in output if item[1] == OUTPUT_LAYER[0]]
    fits = bool(weight) and tuple(weight[0][2].shape) == tuple(target[OUTPUT_LAYER[0]].shape)
    if policy == "keep" or (policy == "auto" and fits):
        return items
    if policy == "reset":
        why = "task output layer of the checkpoint: reset for this task"
    else:
        targets = weight[0][2].shape[0] if weight else "?"
        why = (f"task output layer for {targets} targets, the model has {target[OUTPUT_LAYER[0]].shape[0]}: "
               "a new output layer is initialised")
    report.unexpected.extend((item[0], why) for item in output)
    return [item for item in items if item[1] not in OUTPUT_LAYER]


def _add_notes(layout, report):
    missing = report.missing
    if layout in ("transformer_m", "moleblend_official"):
        report.notes.append(FLOYD_WARSHALL_NOTE)
    if any(k.startswith(TRUNK + "molecule_3d_bias.") for k in missing):
        report.notes.append("the 3D distance encoder (molecule_3d_bias) is initialised fresh: 3D inputs start untrained")
    if any(k.startswith(TRUNK + "emb_layer_norm.") for k in missing):
        report.notes.append("the checkpoint has no emb_layer_norm (built without --encoder-normalize-before); this "
                            "model applies one, initialised to the identity affine map, so outputs differ")
    if any(k.startswith(TRUNK + "atom_feature.") for k in missing):
        report.notes.append("atom embeddings are initialised fresh")
