"""Does a model's expert set fit a wafer's HBM?

Every routed expert of every MoE layer lives in some die's HBM (docs/replay.md: experts are
spread over the dies). A model whose experts need more bytes than the usable HBM of all dies
(capacity minus the reserved share) cannot be served by that wafer; replaying it anyway gives a
silent wrong answer, so the command line refuses it with :func:`check_experts_fit`. Dead dies
store nothing (docs/replay.md#overrides-and-faults), so only the live dies' HBM counts.

:func:`check_run` is the one check of a run's inputs that ``hwmodel replay`` and
``hwmodel sweep`` both make: a trace holding the requested batch, a model that fits the wafer.
"""

from __future__ import annotations

__all__ = ["check_batch", "check_experts_fit", "check_run", "expert_set_bytes",
           "usable_hbm_bytes"]


def expert_set_bytes(model) -> int:
    """Bytes of all routed experts: ``expert_bytes x MoE layers x experts``."""
    return model.expert_bytes * model.num_moe_layers * model.num_experts


def usable_hbm_bytes(wafer) -> int:
    """Usable HBM of the wafer's live dies (each die's capacity minus its reserved share)."""
    return sum(die.hbm.usable_bytes for die in wafer.dies if die.alive)


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
            f"({_live_dies(wafer)}); expected a model that fits")


def _live_dies(wafer) -> str:
    live = sum(die.alive for die in wafer.dies)
    return f"{live} dies" if live == wafer.num_dies else f"{live} live of {wafer.num_dies} dies"


def check_batch(store, batch: int | None, trace, option: str = "batch") -> None:
    """Raise ``ValueError`` if ``store`` is empty or holds fewer than ``batch`` requests.

    Parameters
    ----------
    store : TraceStore
        The trace as opened (at most ``batch`` requests when opened with a limit).
    batch : int or None
        The requests asked for (None: the whole trace).
    trace : str
        The trace's name in the message.
    option : str
        The batch's name in the message (``--batch`` on the command line).
    """
    if len(store) == 0:
        raise ValueError(f"--trace {trace}: holds no requests; expected at least one")
    if batch is not None and batch > len(store):
        raise ValueError(f"{option} {batch}: the trace {trace} holds only {len(store)} "
                         f"requests; expected a batch of at most {len(store)}")


def check_run(model, wafer, store, batch: int | None, trace, option: str = "batch",
              ignore_capacity: bool = False) -> None:
    """The checks every replay of ``store`` on ``wafer`` passes before it runs:
    :func:`check_batch` and (unless ``ignore_capacity``) :func:`check_experts_fit`."""
    check_batch(store, batch, trace, option)
    if not ignore_capacity:
        check_experts_fit(model, wafer)
