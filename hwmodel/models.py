"""Mixture-of-Experts model shapes (SPEC section 4) and their YAML presets.

A :class:`MoEModel` carries what the system model and the trace reader need to know about a
model: its layers, which of them are MoE layers, the routed experts and top-k, the shape and size
of one expert's weights, and the compute-utilisation table of the study's artefact (SPEC section
6). Shared experts are not in the traces and not modelled.

Presets are YAML files in ``hwmodel/presets/models/`` with a top-level ``model:`` mapping;
:func:`load_model` takes a preset name or any YAML file of the same form. Each preset lists the
Hugging Face ids of its checkpoints, so the model of a trace can be inferred from its path
(``profiling_result/<org>/<model>/...``) with :func:`model_from_path`.
"""

from __future__ import annotations

import itertools
from pathlib import Path

import attrs

from .config import load_preset, param, positive

__all__ = ["MODEL_PRESETS", "MoEModel", "UtilisationBucket", "load_model", "model_from_path"]


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
        Token-count buckets -> share of peak compute (the artefact's table, SPEC section 6).
    hf_ids : tuple of str
        Hugging Face ids (``<org>/<model>``) of the checkpoints this shape describes.
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

    def __attrs_post_init__(self):
        if self.moe_layers[0] < 0 or self.moe_layers[-1] >= self.num_layers:
            raise ValueError(f"moe_layers must lie in 0..{self.num_layers - 1} (num_layers "
                             f"{self.num_layers}), not {list(self.moe_layers)!r}")
        if self.top_k > self.num_experts:
            raise ValueError(f"top_k ({self.top_k}) must not exceed num_experts "
                             f"({self.num_experts})")

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
    return load_preset(MoEModel, name_or_path, root="model", presets=MODEL_PRESETS)


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
