"""A die's streaming multiprocessors, seen as one compute unit, as a node of the graph.

The analytical behaviour (GEMM time per expert slice from the peak throughput and a utilisation
table, docs/replay.md) is added to this class by the system model; this module declares its
place in the graph: its ports and parameters.
"""

from __future__ import annotations

import math

from ..graph import Component, Port
from ..params import ComputeParams

__all__ = ["Compute"]


class Compute(Component):
    """One die's compute unit (its SMs).

    Parameters
    ----------
    name : str
        Component name (``"compute"`` inside a die).
    params : ComputeParams
        Peak FP16/BF16 throughput and number of SMs.

    Members
    -------
    mem : Port (out, mem)
        Weight and activation reads through the LLC.
    cmd : Port (in, cmd)
        Tasks (expert, token count) handed out by the die's Local CP.
    """

    kind = "compute"

    def __init__(self, name: str = "compute", params: ComputeParams | None = None):
        params = ComputeParams() if params is None else params
        if not isinstance(params, ComputeParams):
            raise TypeError(f"params must be ComputeParams, not {params!r}")
        super().__init__(name, params)
        self.add_port(Port("mem", "out", "mem", doc="reads through the LLC"))
        self.add_port(Port("cmd", "in", "cmd", message="Task",
                           doc="tasks from the Local CP"))

    # ---- analytical model (docs/replay.md) ----------------------------------------------
    def slice_latency_ns(self, tokens: int, model) -> int:
        """GEMM time of ``tokens`` tokens on one weight matrix of an expert of ``model``:
        ``ceil(2 x hidden x ffn x tokens / (peak x u(tokens)))`` ns, with the model's
        utilisation bucket ``u``. Evaluated in the artefact's float order
        (``2 * m * h * f * t / m``) so the ceiling agrees with it exactly.
        """
        if tokens < 0:
            raise ValueError(f"tokens must be zero or more, not {tokens!r}")
        m = model.matrices_per_expert
        operations = 2 * m * model.hidden_dim * model.expert_ffn_dim * tokens / m
        return self.operations_latency_ns(operations, model.utilisation(tokens))

    def operations_latency_ns(self, operations: float, utilisation: float) -> int:
        """Time of ``operations`` floating-point operations at ``utilisation`` of the peak:
        ``ceil(operations / (peak x utilisation))`` ns (the GEMM of an expert slice, and the
        attention of physical mode's ``attention_time``)."""
        return math.ceil(operations / (self.params.peak_TFLOPS * 1000 * utilisation))
