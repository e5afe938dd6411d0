"""Sizes and field widths of the Global CP, and the check that a wafer's units hold a model.

This is the one definition the Global CP's graph node, twin and RTL read:

* an EDT entry is a home die id (``ceil(log2(num_dies))`` bits) and a presence bitmap (one bit
  per die), stored byte-aligned: 6 + 64 = 70 bits rounded up to 72 for a 64-die wafer, the
  paper's Table II entry (512 entries = 4.5 KB);
* the cross-token heatmap holds ``layers x experts x experts`` saturating counters of
  ``count_bits`` bits in the CP's DRAM, one layer of it cached on chip.

:func:`check_fits` asks whether the table sizes a wafer carries (``die.atu_entries``,
``die.pdu_experts``, ``global_cp.edt_entries``, ``global_cp.heatmap_*``) hold a model.
"""

from __future__ import annotations

import numbers

import attrs

from ...checks import check_int, index_bits, positive_int
from ...config import ConfigError

__all__ = ["HEATMAP_COUNT_BITS", "PAPER", "PAPER_BLOCK_SIZE", "PAPER_CANDIDATE_DISTANCE",
           "PAPER_MIN_CANDIDATES", "PAPER_TOP_N_SHARE", "EDTLayout", "check_fits",
           "check_positive_ints"]

#: Bits of one saturating heatmap counter (the paper's 16-bit counters: 50 MB for 100 layers
#: of 512 x 512); the default of the predictor's twin and RTL.
HEATMAP_COUNT_BITS = 16
#: Algorithm 1 as the study's artefact runs it (docs/replay.md): tokens per allocation block,
#: the Manhattan distance (hops) within which remote candidates lie, candidates kept at least.
PAPER_BLOCK_SIZE = 512
PAPER_CANDIDATE_DISTANCE = 1
PAPER_MIN_CANDIDATES = 5
#: The predictor keeps the top ``ceil(0.2 x E)`` successors of an expert (docs/replay.md).
PAPER_TOP_N_SHARE = 0.2


_POSITIVE = positive_int("EDTLayout")


@attrs.frozen(kw_only=True)
class EDTLayout:
    """Size and entry format of the Expert Distribution Table.

    Parameters
    ----------
    entries : int
        Entries (experts of the current layer; paper: 512).
    num_dies : int
        Dies on the wafer: one presence bit each, and the width of the home-die field.
    """

    entries: int = attrs.field(default=512, validator=_POSITIVE)
    num_dies: int = attrs.field(default=64, validator=_POSITIVE)

    @property
    def home_bits(self) -> int:
        """Bits of the home-die field: ``ceil(log2(num_dies))``, at least 1."""
        return index_bits(self.num_dies)

    @property
    def presence_bits(self) -> int:
        """Bits of the presence bitmap: one per die."""
        return self.num_dies

    @property
    def entry_bits(self) -> int:
        """Stored bits of one entry: home + presence rounded up to a whole byte (72 for 64
        dies, Table II)."""
        return -(-(self.home_bits + self.presence_bits) // 8) * 8

    @property
    def expert_bits(self) -> int:
        """Bits of an entry index (an expert id)."""
        return index_bits(self.entries)

    @property
    def size_bytes(self) -> int:
        """Table bytes (4608 = 4.5 KB for the paper's 512 entries on 64 dies)."""
        return self.entries * self.entry_bits // 8


#: The paper's EDT: 512 entries of 72 bits (a wafer of up to 64 dies).
PAPER = EDTLayout()


def check_fits(wafer, *, num_experts: int, num_moe_layers: int,
               source: str | None = None) -> None:
    """Check that the unit sizes a wafer carries hold a model (call at replay set-up).

    Every die-id, bitmap and address width derives from the wafer and the model, so only the
    table sizes can be too small: the ATU and PDU of every die and the EDT are indexed by
    expert id within a layer; the heatmap covers experts x experts per MoE layer.

    Parameters
    ----------
    wafer : hwmodel.params.WaferParams
        The wafer's parameters (as loaded from its YAML).
    num_experts : int
        Routed experts per MoE layer of the model.
    num_moe_layers : int
        MoE layers of the model.
    source : str, optional
        The wafer's file, named in the error.

    Raises
    ------
    hwmodel.config.ConfigError
        Naming the first YAML path whose value cannot hold the model, the value and the size
        that would hold it.
    """
    num_experts = check_int("num_experts", num_experts, 1)
    num_moe_layers = check_int("num_moe_layers", num_moe_layers, 1)
    experts = f"a model of {num_experts} experts per layer"
    checks = [("wafer.die.atu_entries", wafer.die.atu_entries, num_experts, experts),
              ("wafer.die.pdu_experts", wafer.die.pdu_experts, num_experts, experts),
              ("wafer.global_cp.edt_entries", wafer.global_cp.edt_entries, num_experts, experts),
              ("wafer.global_cp.heatmap_experts", wafer.global_cp.heatmap_experts, num_experts,
               experts),
              ("wafer.global_cp.heatmap_layers", wafer.global_cp.heatmap_layers, num_moe_layers,
               f"a model of {num_moe_layers} MoE layers")]
    for path, have, need, what in checks:
        if have < need:
            raise ConfigError(path, f"{have} is too small: {what} needs at least {need}",
                              source)


def check_positive_ints(**values) -> None:
    """``TypeError`` / ``ValueError`` naming the first value that is not an integer >= 1."""
    for name, value in values.items():
        if isinstance(value, bool) or not isinstance(value, numbers.Integral):
            raise TypeError(f"{name} must be an integer, not {value!r}")
        if value < 1:
            raise ValueError(f"{name} must be at least 1, not {value!r}")
