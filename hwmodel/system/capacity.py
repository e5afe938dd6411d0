"""Does a model's expert set fit a wafer's HBM?

Every routed expert of every MoE layer lives in some die's HBM (SPEC section 6: experts are
spread over the dies). A model whose experts need more bytes than the usable HBM of all dies
(capacity minus the reserved share) cannot be served by that wafer; replaying it anyway gives a
silent wrong answer, so the command line refuses it with :func:`check_experts_fit`.
"""

from __future__ import annotations

__all__ = ["check_experts_fit", "expert_set_bytes", "usable_hbm_bytes"]


def expert_set_bytes(model) -> int:
    """Bytes of all routed experts: ``expert_bytes x MoE layers x experts``."""
    return model.expert_bytes * model.num_moe_layers * model.num_experts


def usable_hbm_bytes(wafer) -> int:
    """Usable HBM of all the wafer's dies (each die's capacity minus its reserved share)."""
    return sum(die.hbm.usable_bytes for die in wafer.dies)


def check_experts_fit(model, wafer) -> None:
    """Raise ``ValueError`` if the model's experts exceed the wafer's usable HBM.

    Parameters
    ----------
    model : MoEModel
    wafer : Wafer
    """
    need, have = expert_set_bytes(model), usable_hbm_bytes(wafer)
    if need > have:
        raise ValueError(
            f"model {model.name}: its experts need {need / 1e9:.1f} GB ({model.num_experts} "
            f"experts x {model.num_moe_layers} MoE layers x {model.expert_bytes / 1e6:.1f} MB), "
            f"more than the {have / 1e9:.1f} GB of usable HBM of wafer {wafer.params.name} "
            f"({wafer.num_dies} dies); expected a model that fits")
