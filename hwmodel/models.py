"""Mixture-of-Experts model shapes (docs/traces.md#models) and their YAML presets.

A :class:`MoEModel` carries what the system model and the trace reader need to know about a
model: its layers, which of them are MoE layers, the routed experts and top-k, the shape and size
of one expert's weights, and the compute-utilisation table of the study's artefact
(docs/replay.md). Shared experts are not in the traces and not modelled in paper mode; physical mode
(``docs/physical.md``) reads the attention shape, the dense layers and the shared experts, which
the presets carry with their source (the checkpoint's ``config.json``).

Presets are YAML files in ``hwmodel/presets/models/`` with a top-level ``model:`` mapping;
:func:`load_model` takes a preset name or any YAML file of the same form. Each preset lists the
Hugging Face ids of its checkpoints, so the model of a trace can be inferred from its path
(``profiling_result/<org>/<model>/...``) with :func:`model_from_path`.
"""

from __future__ import annotations

import functools
import itertools
from pathlib import Path

import attrs

from .config import load_preset, param, positive

__all__ = ["ATTENTION_KINDS", "MODEL_PRESETS", "AttentionShape", "MoEModel", "UtilisationBucket",
           "load_model", "model_from_path"]

#: Attention kinds the physical mode knows: DeepSeek's multi-head latent attention, grouped-query.
ATTENTION_KINDS = ("mla", "gqa")
#: Fields each attention kind needs (the checkpoint's ``config.json`` names in parentheses).
_ATTENTION_FIELDS = {"mla": ("kv_lora_rank", "qk_nope_head_dim", "qk_rope_head_dim",
                             "v_head_dim"),
                     "gqa": ("num_kv_heads", "head_dim")}


@attrs.frozen
class UtilisationBucket:
    """One row of a compute-utilisation table: up to ``max_tokens`` tokens run at ``utilisation``.

    Unpacks as a pair: ``max_tokens, utilisation = bucket``.
    """
    max_tokens: int | None = param("largest token count of the bucket; null for 'all larger'",
                                   default=None)
    utilisation: float = param("share of the peak compute achieved", default=0.7)

    def __attrs_post_init__(self):
        if self.max_tokens is not None and self.max_tokens <= 0:
            raise ValueError(f"max_tokens must be greater than zero or null, "
                             f"not {self.max_tokens!r}")
        if not 0 < self.utilisation <= 1:
            raise ValueError(f"utilisation must be in (0, 1], not {self.utilisation!r}")

    def __iter__(self):
        return iter((self.max_tokens, self.utilisation))


def _optional_positive(instance, attribute, value):
    if value is not None and (isinstance(value, bool) or value <= 0):
        raise ValueError(f"{attribute.name} must be null or greater than zero, not {value!r}")


@attrs.frozen
class AttentionShape:
    """One attention layer's shape, as far as its weights and KV cache go (physical mode).

    ``kind`` is ``mla`` (multi-head latent attention: the cache holds the compressed latent,
    ``kv_lora_rank``, plus the shared rope key, ``qk_rope_head_dim``, per token and layer) or
    ``gqa`` (grouped-query attention: the cache holds a key and a value of ``head_dim`` per KV
    head). Weights: the query, key/value and output projections (norms are left out: they are
    a few kB per layer).
    """
    kind: str = param("'mla' (multi-head latent attention) or 'gqa' (grouped-query)")
    num_heads: int = param("query heads (num_attention_heads)", validator=positive)
    num_kv_heads: int | None = param("gqa: key/value heads (num_key_value_heads)",
                                     default=None, validator=_optional_positive)
    head_dim: int | None = param("gqa: width of one head (head_dim)", default=None,
                                 validator=_optional_positive)
    q_lora_rank: int | None = param("mla: rank of the query compression (null: queries are "
                                    "projected directly)", default=None,
                                    validator=_optional_positive)
    kv_lora_rank: int | None = param("mla: width of the cached key/value latent",
                                     default=None, validator=_optional_positive)
    qk_nope_head_dim: int | None = param("mla: per-head query/key width without rope",
                                         default=None, validator=_optional_positive)
    qk_rope_head_dim: int | None = param("mla: per-head rope width (one rope key is cached)",
                                         default=None, validator=_optional_positive)
    v_head_dim: int | None = param("mla: per-head value width", default=None,
                                   validator=_optional_positive)

    def __attrs_post_init__(self):
        if self.kind not in ATTENTION_KINDS:
            raise ValueError(f"kind must be one of {', '.join(ATTENTION_KINDS)}, not "
                             f"{self.kind!r}")
        missing = [f for f in _ATTENTION_FIELDS[self.kind] if getattr(self, f) is None]
        if missing:
            raise ValueError(f"{self.kind} attention needs {', '.join(missing)}; expected "
                             "a positive integer for each")

    def kv_values_per_token(self) -> int:
        """Values cached per token and layer."""
        if self.kind == "mla":
            return self.kv_lora_rank + self.qk_rope_head_dim
        return 2 * self.num_kv_heads * self.head_dim

    def score_flops_per_pair(self) -> int:
        """Operations of one query token against one cached token, all heads: the score
        (query . key) and the value product, 2 operations per multiply-add. GQA: ``2 x heads
        x head_dim`` each. MLA runs on the cached latent (the weight-absorbed form of DeepSeek's
        decode): ``2 x heads x (kv_lora_rank + qk_rope_head_dim)`` for the score and ``2 x
        heads x kv_lora_rank`` for the value."""
        h = self.num_heads
        if self.kind == "gqa":
            return 2 * (2 * h * self.head_dim)
        return 2 * h * (self.kv_lora_rank + self.qk_rope_head_dim) + 2 * h * self.kv_lora_rank

    def weight_count(self, hidden: int) -> int:
        """Weights of one layer's attention projections (model width ``hidden``)."""
        h = self.num_heads
        if self.kind == "gqa":
            q_and_o = 2 * hidden * h * self.head_dim
            return q_and_o + 2 * hidden * self.num_kv_heads * self.head_dim
        qk = self.qk_nope_head_dim + self.qk_rope_head_dim
        q = (hidden * h * qk if self.q_lora_rank is None
             else hidden * self.q_lora_rank + self.q_lora_rank * h * qk)
        kv_down = hidden * (self.kv_lora_rank + self.qk_rope_head_dim)
        kv_up = self.kv_lora_rank * h * (self.qk_nope_head_dim + self.v_head_dim)
        return q + kv_down + kv_up + h * self.v_head_dim * hidden


def _ascending_layers(instance, attribute, value):
    if len(value) == 0:
        raise ValueError("moe_layers must list at least one layer, not ()")
    if any(b <= a for a, b in itertools.pairwise(value)):
        raise ValueError(f"moe_layers must be strictly ascending, not {list(value)!r}")


def _bucket_table(instance, attribute, value):
    if len(value) == 0 or value[-1].max_tokens is not None:
        raise ValueError("compute_utilisation must end with a bucket whose max_tokens is null "
                         f"(all larger token counts), not {[tuple(b) for b in value]!r}")
    bounds = [b.max_tokens for b in value[:-1]]
    if None in bounds or any(b <= a for a, b in itertools.pairwise(bounds)):
        raise ValueError("compute_utilisation max_tokens must be strictly ascending with only "
                         f"the last null, not {bounds + [None]!r}")


def _optional_fraction(instance, attribute, value):
    if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))
                              or not 0 < value <= 1):
        raise ValueError(f"{attribute.name} must be null or in (0, 1], not {value!r}")


@attrs.frozen
class MoEModel:
    """The shape of a Mixture-of-Experts LLM as far as expert routing and weights go.

    Parameters
    ----------
    name : str
        Preset or user name (``deepseek-v3``).
    num_layers : int
        All transformer layers, dense ones included.
    moe_layers : tuple of int
        Indices of the layers with routed experts, ascending (the non-null keys of a trace).
    num_experts, top_k : int
        Routed experts per MoE layer, and experts chosen per token.
    hidden_dim, expert_ffn_dim : int
        Model width and one expert's intermediate (FFN) width.
    dtype_bytes, matrices_per_expert : int
        Bytes per weight (2, BF16) and weight matrices per expert (3: gate, up, down).
    compute_utilisation : tuple of UtilisationBucket
        Token-count buckets -> share of peak compute (the artefact's table, docs/replay.md).
    hf_ids : tuple of str
        Hugging Face ids (``<org>/<model>``) of the checkpoints this shape describes.
    hbm_efficiency : float or None
        Share of the HBM peak the model's expert reads reach on the dies that do not set their
        own (the study's artefact: 0.85 for Llama-4); None keeps the wafer's.
    attention : AttentionShape or None
        Attention shape (physical mode's KV cache and attention weights; null: unknown).
    dense_ffn_dim : int or None
        Intermediate width of the dense layers' FFN (the layers not in ``moe_layers``).
    shared_experts, shared_expert_ffn_dim : int, int or None
        Shared experts per MoE layer and the intermediate width of each.
    shape_source : str
        Where ``attention``, ``dense_ffn_dim`` and the shared experts come from.
    """
    name: str = param("preset or user name")
    num_layers: int = param("all transformer layers, dense ones included", validator=positive)
    moe_layers: tuple[int, ...] = param("indices of the MoE layers, ascending",
                                        validator=_ascending_layers)
    num_experts: int = param("routed experts per MoE layer", validator=positive)
    top_k: int = param("experts chosen per token", validator=positive)
    hidden_dim: int = param("model width (activations per token)", validator=positive)
    expert_ffn_dim: int = param("one expert's intermediate width", validator=positive)
    dtype_bytes: int = param("bytes per weight (BF16: 2)", default=2, validator=positive)
    matrices_per_expert: int = param("weight matrices per expert (gate, up, down)", default=3,
                                     validator=positive)
    compute_utilisation: tuple[UtilisationBucket, ...] = param(
        "token-count buckets of compute utilisation (last bucket max_tokens null)",
        default=(UtilisationBucket(max_tokens=None, utilisation=0.7),),
        validator=_bucket_table)
    hf_ids: tuple[str, ...] = param("Hugging Face ids <org>/<model> of the checkpoints",
                                    default=())
    notes: str = param("where the numbers come from", default="")
    hbm_efficiency: float | None = param(
        "share of the HBM peak this model's expert reads reach, on every die that does not "
        "set its own efficiency (null: the wafer's)", default=None,
        validator=_optional_fraction)
    attention: AttentionShape | None = param(
        "attention shape for physical mode's KV cache and weights (null: unknown)",
        default=None)
    dense_ffn_dim: int | None = param("intermediate width of the dense layers' FFN (null: "
                                      "unknown, or no dense layer)", default=None,
                                      validator=_optional_positive)
    shared_experts: int = param("shared experts per MoE layer", default=0)
    shared_expert_ffn_dim: int | None = param("intermediate width of one shared expert",
                                              default=None, validator=_optional_positive)
    shape_source: str = param("source of attention, dense_ffn_dim and the shared experts "
                              "(the checkpoint's config.json)", default="")

    def __attrs_post_init__(self):
        if self.moe_layers[0] < 0 or self.moe_layers[-1] >= self.num_layers:
            raise ValueError(f"moe_layers must lie in 0..{self.num_layers - 1} (num_layers "
                             f"{self.num_layers}), not {list(self.moe_layers)!r}")
        if self.top_k > self.num_experts:
            raise ValueError(f"top_k ({self.top_k}) must not exceed num_experts "
                             f"({self.num_experts})")
        if isinstance(self.shared_experts, bool) or self.shared_experts < 0:
            raise ValueError(f"shared_experts must be 0 or more, not {self.shared_experts!r}")

    @property
    def num_moe_layers(self) -> int:
        return len(self.moe_layers)

    @property
    def expert_bytes(self) -> int:
        """Bytes of one expert's weights (all its matrices)."""
        return self.matrices_per_expert * self.hidden_dim * self.expert_ffn_dim * self.dtype_bytes

    @property
    def slice_bytes(self) -> int:
        """Bytes of one weight matrix of an expert (the unit moved and cached: a slice)."""
        return self.hidden_dim * self.expert_ffn_dim * self.dtype_bytes

    def physical_shape_missing(self) -> list[str]:
        """Fields physical mode needs that this model lacks (empty: it has them all)."""
        missing = [] if self.attention is not None else ["attention"]
        if self.num_layers > self.num_moe_layers and self.dense_ffn_dim is None:
            missing.append("dense_ffn_dim")
        if self.shared_experts and self.shared_expert_ffn_dim is None:
            missing.append("shared_expert_ffn_dim")
        return missing

    @property
    def kv_bytes_per_token_layer(self) -> int:
        """KV-cache bytes of one token in one layer (``dtype_bytes`` per value)."""
        return self.attention.kv_values_per_token() * self.dtype_bytes

    def layer_weight_bytes(self) -> list[int]:
        """Bytes of each layer's weights other than its routed experts: attention, plus the
        dense FFN (a dense layer) or the shared experts (a MoE layer); gate, up and down
        matrices as the routed experts'."""
        attention = self.attention.weight_count(self.hidden_dim) * self.dtype_bytes
        ffn = lambda width: self.matrices_per_expert * self.hidden_dim * width * self.dtype_bytes
        shared = self.shared_experts * ffn(self.shared_expert_ffn_dim or 0)
        dense = ffn(self.dense_ffn_dim or 0)
        moe = set(self.moe_layers)
        return [attention + (shared if layer in moe else dense)
                for layer in range(self.num_layers)]

    def utilisation(self, tokens: int) -> float:
        """Compute utilisation for a task of ``tokens`` tokens (first bucket that holds it)."""
        for max_tokens, value in self.compute_utilisation:
            if max_tokens is None or tokens <= max_tokens:
                return value
        raise AssertionError("unreachable: the last bucket is open-ended")  # pragma: no cover


MODEL_PRESETS = ("deepseek-v3", "qwen3-235b", "kimi-k2", "llama4-maverick", "deepseek-v2-lite",
                 "qwen1.5-moe-a2.7b", "gpt-oss-20b")


def load_model(name_or_path) -> MoEModel:
    """A model preset by name (see :data:`MODEL_PRESETS`) or a YAML file with a ``model:`` key.

    An :class:`MoEModel` is returned unchanged.

    Raises
    ------
    ConfigError
        Unknown preset, unreadable file, or a bad value (naming file and YAML path).
    """
    if isinstance(name_or_path, MoEModel):
        return name_or_path
    if isinstance(name_or_path, str) and name_or_path in MODEL_PRESETS:
        return _preset(name_or_path)
    return load_preset(MoEModel, name_or_path, root="model", presets=MODEL_PRESETS)


@functools.cache
def _preset(name: str) -> MoEModel:
    """A built-in preset, parsed once per process (the model is frozen, so it is shared):
    reading a trace matches its path against every preset's Hugging Face ids."""
    return load_preset(MoEModel, name, root="model", presets=MODEL_PRESETS)


def model_from_path(path) -> str | None:
    """The preset whose Hugging Face id ``<org>/<model>`` appears in ``path``, or None.

    Two consecutive components of the path are compared, case-insensitively, with every
    preset's ``hf_ids`` (``.../meta-llama/Llama-4-Maverick-17B-128E-Instruct/mmlu/...`` ->
    ``llama4-maverick``).
    """
    parts = [p.lower() for p in Path(path).parts]
    pairs = {f"{a}/{b}" for a, b in itertools.pairwise(parts)}
    for name in MODEL_PRESETS:
        if any(hf.lower() in pairs for hf in load_model(name).hf_ids):
            return name
    return None
