"""Results of a replay: the artefact's CSV columns (its names, units and rounding) plus
breakdowns per layer, per die and per link (docs/replay.md)."""

from __future__ import annotations

import attrs

__all__ = ["ARTEFACT_MODELS", "ARTEFACT_NAMES", "CSV_HEADER", "ReplayResult", "csv_lines"]

#: Names the study's artefact prints in its CSV, by strategy.
ARTEFACT_NAMES = {"base": "base", "ep": "norm_ep", "allo": "allo_only", "pred": "pred_only",
                  "allo+pred": "allo_and_pred"}
#: Model preset -> the artefact's model name (its CSV's first column).
ARTEFACT_MODELS = {"llama4-maverick": "llama4", "deepseek-v3": "deepseek", "kimi-k2": "kimi",
                   "qwen3-235b": "qwen"}
#: The artefact's CSV columns.
CSV_HEADER = ("model,strategy,y_chips,x_chips,batch,usage,die_max_over_min,"
              "die_max_over_avg,allo_exp_skew,allo_req_skew,dram_access_skew,dram,"
              "local_dram_read,remote_dram_read,local_dram_write,hop,time,prefill,decode,"
              "throughput")


@attrs.define
class ReplayResult:
    """Outputs of one run: the artefact's CSV columns plus breakdowns (docs/replay.md)."""

    model: str
    strategy: str
    mesh_x: int
    mesh_y: int
    batch: int
    usage: float
    die_max_over_min: float
    die_max_over_avg: float
    allo_exp_skew: float
    allo_req_skew: float
    dram_access_skew: float
    dram_GiB: float
    local_dram_read_GiB: float
    remote_dram_read_GiB: float
    local_dram_write_GiB: float
    hops: int
    time_ns: int
    prefill_ns: int
    decode_ns: int
    throughput: float
    clock_MHz: float
    byte_hops: float
    events: int
    wall_s: float
    stalled: bool
    counts: dict = attrs.field(factory=dict)
    per_layer: list = attrs.field(factory=list)
    per_die: dict = attrs.field(factory=dict)
    per_link: list = attrs.field(factory=list)
    #: with ``record_units``: each unit's transactions and answers (not in the JSON)
    unit_streams: dict = attrs.field(factory=dict, repr=False, eq=False)
    #: physical switches that were on (empty: paper mode; then not in the JSON)
    physical: tuple = attrs.field(default=(), converter=tuple)
    #: one-line findings for the user, e.g. paper mode holding more than the HBM (not in
    #: the JSON: printed after the summary)
    notes: list = attrs.field(factory=list, repr=False, eq=False)

    @property
    def time_cycles(self) -> int:
        return round(self.time_ns * self.clock_MHz / 1000)

    @property
    def decode_cycles(self) -> int:
        return round(self.decode_ns * self.clock_MHz / 1000)

    CSV_HEADER = CSV_HEADER

    def row(self) -> str:
        """The artefact's CSV line (same columns, units and rounding)."""
        return (f"{ARTEFACT_MODELS.get(self.model, self.model)},"
                f"{ARTEFACT_NAMES.get(self.strategy, self.strategy)},{self.mesh_y},"
                f"{self.mesh_x},{self.batch},{self.usage:.2f},{self.die_max_over_min:.2f},"
                f"{self.die_max_over_avg:.2f},{self.allo_exp_skew:.2f},"
                f"{self.allo_req_skew:.2f},{self.dram_access_skew:.2f},{self.dram_GiB:.0f},"
                f"{self.local_dram_read_GiB:.0f},{self.remote_dram_read_GiB:.0f},"
                f"{self.local_dram_write_GiB:.0f},{self.hops},{self.time_ns / 1e6:.2f},"
                f"{self.prefill_ns / 1e6:.2f},{self.decode_ns / 1e6:.2f},"
                f"{self.throughput:.0f}")

    def summary(self) -> dict:
        """Scalar outputs as a JSON-ready dict (no per-layer lists)."""
        out = attrs.asdict(self, filter=lambda a, v: a.name not in
                           ("per_layer", "per_die", "per_link", "unit_streams", "notes")
                           and not (a.name == "physical" and not v))
        if self.physical:
            out["physical"] = list(self.physical)
        out["time_cycles"] = self.time_cycles
        out["decode_cycles"] = self.decode_cycles
        return out

    def to_json(self) -> dict:
        """Everything, including per-layer, per-die and per-link breakdowns."""
        out = self.summary()
        out.update(per_layer=self.per_layer, per_die=self.per_die, per_link=self.per_link)
        return out


def csv_lines(results) -> list[str]:
    """The artefact's CSV (header, then one line per result). When any result ran with physical
    switches, a last column ``physical`` names them (``+``-joined; empty for paper mode), so a
    physical row is never read as a paper one; paper-mode runs alone give the artefact's CSV."""
    physical = any(r.physical for r in results)
    if not physical:
        return [CSV_HEADER] + [r.row() for r in results]
    return ([CSV_HEADER + ",physical"]
            + [r.row() + "," + "+".join(r.physical) for r in results])
