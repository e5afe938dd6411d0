"""Parameter classes of the wafer and its dies, and the wafer presets of SPEC section 3.

All are frozen, keyword-only attrs classes loaded from YAML with :mod:`hwmodel.config`, so an
unknown key, a wrong type or an impossible value is an error naming the file and the YAML path
(e.g. ``wafer.die.d2d.bandwidth_GBps``). Units are in the field names; 1 GB/s is 1 byte/ns.
"""

from __future__ import annotations

from pathlib import Path

import attrs

from .config import fraction, load_preset, non_negative, param, positive

__all__ = [
    "WAFER_PRESETS",
    "ComputeParams",
    "D2DParams",
    "DieParams",
    "GlobalCPParams",
    "HBMParams",
    "LLCParams",
    "WaferParams",
    "load_wafer",
]


def _below_one(instance, attribute, value):
    if not 0 <= value < 1:
        raise ValueError(f"{attribute.name} must be in [0, 1), not {value!r}")


@attrs.frozen
class HBMParams:
    """One die's high-bandwidth memory."""
    bandwidth_GBps: float = param("peak read bandwidth (bytes/ns)", default=3350.0,
                                  validator=positive)
    efficiency: float = param("share of the peak bandwidth achieved", default=0.9,
                              validator=fraction)
    latency_ns: float = param("access latency before the first byte", default=300.0,
                              validator=non_negative)
    capacity_bytes: int = param("capacity", default=80 * 10**9, validator=positive)
    reserved_fraction: float = param("share of the capacity reserved for the system",
                                     default=0.1, validator=_below_one)


@attrs.frozen
class LLCParams:
    """One die's last-level cache; a line holds one expert weight matrix (a slice)."""
    capacity_bytes: int = param("capacity", default=64 * 2**20, validator=positive)
    associativity: int = param("ways per set (LRU replacement)", default=2, validator=positive)
    hit_latency_ns: float = param("latency of a hit", default=100.0, validator=non_negative)
    miss_penalty_ns: float = param("latency of a lookup that misses", default=110.0,
                                   validator=non_negative)
    write_latency_ns: float = param("latency of a line fill", default=30.0,
                                    validator=non_negative)


@attrs.frozen
class D2DParams:
    """A die-to-die link of the mesh (one channel per mesh edge, both directions)."""
    bandwidth_GBps: float = param("link bandwidth (bytes/ns)", default=1741.0,
                                  validator=positive)
    efficiency: float = param("share of the link bandwidth achieved", default=0.9,
                              validator=fraction)
    hop_latency_ns: float = param("latency per hop", default=200.0, validator=non_negative)
    request_bytes: int = param("size of a remote read request message", default=16,
                               validator=positive)


@attrs.frozen
class ComputeParams:
    """A die's streaming multiprocessors, seen as one compute unit."""
    peak_TFLOPS: float = param("peak FP16/BF16 throughput", default=1000.0, validator=positive)
    num_sms: int = param("streaming multiprocessors (Local CP dispatch slots)", default=132,
                         validator=positive)


@attrs.frozen
class DieParams:
    """One GPU die: compute, LLC, HBM, and a D2D controller holding the ATU and the PDU."""
    compute: ComputeParams = param("compute unit", factory=ComputeParams)
    llc: LLCParams = param("last-level cache", factory=LLCParams)
    hbm: HBMParams = param("high-bandwidth memory", factory=HBMParams)
    d2d: D2DParams = param("die-to-die links leaving this die", factory=D2DParams)
    atu_entries: int = param("address translation unit entries (68 bits each)", default=512,
                             validator=positive)
    pdu_experts: int = param("prediction unit experts (2 bits each)", default=512,
                             validator=positive)


@attrs.frozen
class GlobalCPParams:
    """The wafer's Global command processor (EDT, heatmap, allocator, predictor)."""
    edt_entries: int = param("expert distribution table entries (72 bits each)", default=512,
                             validator=positive)
    heatmap_layers: int = param("layers the cross-token heatmap covers", default=100,
                                validator=positive)
    heatmap_experts: int = param("experts per heatmap row and column", default=512,
                                 validator=positive)
    heatmap_count_bits: int = param("bits of one heatmap counter", default=16,
                                    validator=positive)


#: Largest mesh side accepted: a wafer of 64 x 64 dies is far beyond any built (the largest
#: preset is 5 x 5); the bound turns a typo such as ``mesh_x: 100000`` into an error instead
#: of a build that exhausts memory.
MAX_MESH_DIM = 64


def mesh_dimension(instance, attribute, value):
    """Validator: a mesh side in ``1..MAX_MESH_DIM``."""
    positive(instance, attribute, value)
    if value > MAX_MESH_DIM:
        raise ValueError(f"{attribute.name} must be at most {MAX_MESH_DIM} dies, not {value!r}")


@attrs.frozen
class WaferParams:
    """A wafer: an ``mesh_x`` by ``mesh_y`` mesh of identical dies and one Global CP."""
    name: str = param("preset or user name", default="custom")
    mesh_x: int = param("dies along x", validator=mesh_dimension)
    mesh_y: int = param("dies along y", validator=mesh_dimension)
    clock_MHz: float = param("clock used to report times in cycles", default=1500.0,
                             validator=positive)
    die: DieParams = param("every die's parameters", factory=DieParams)
    global_cp: GlobalCPParams = param("the Global CP", factory=GlobalCPParams)

    @property
    def num_dies(self) -> int:
        return self.mesh_x * self.mesh_y


WAFER_PRESETS = ("dojo", "tsmc-sow", "dojo-enhanced")


def load_wafer(name_or_path: str | Path) -> WaferParams:
    """A wafer preset by name (``dojo``, ``tsmc-sow``, ``dojo-enhanced``) or a YAML file.

    The YAML holds a top-level ``wafer:`` mapping of :class:`WaferParams` fields.

    Raises
    ------
    ConfigError
        Unknown preset, unreadable file, or a bad value (naming file and YAML path).
    """
    return load_preset(WaferParams, name_or_path, root="wafer", presets=WAFER_PRESETS)
