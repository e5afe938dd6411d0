"""Parameter classes of the wafer and its dies, and the wafer presets of docs/graph.md.

All are frozen, keyword-only attrs classes loaded from YAML with :mod:`hwmodel.config`, so an
unknown key, a wrong type or an impossible value is an error naming the file and the YAML path
(e.g. ``wafer.die.d2d.bandwidth_GBps``). Units are in the field names; 1 GB/s is 1 byte/ns.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import attrs

from .config import (
    ConfigError,
    fraction,
    from_dict,
    load_preset,
    non_negative,
    param,
    positive,
    to_dict,
)

__all__ = [
    "WAFER_PRESETS",
    "ComputeParams",
    "D2DParams",
    "DieParams",
    "GlobalCPParams",
    "HBMParams",
    "HostParams",
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
    atu_entries: int = param("address translation unit entries (valid + remote address + "
                             "local page each, widths from the wafer and model: 68 bits on "
                             "up to 32 dies with 31-bit pages)", default=512,
                             validator=positive)
    pdu_experts: int = param("prediction unit experts (2 bits each)", default=512,
                             validator=positive)


@attrs.frozen
class GlobalCPParams:
    """The wafer's Global command processor (EDT, heatmap, allocator, predictor)."""
    edt_entries: int = param("expert distribution table entries (home die id + one "
                             "presence bit per die, byte-aligned: 72 bits on 64 dies, 32 on "
                             "24 or 25)", default=512,
                             validator=positive)
    heatmap_layers: int = param("layers the cross-token heatmap covers", default=100,
                                validator=positive)
    heatmap_experts: int = param("experts per heatmap row and column", default=512,
                                 validator=positive)
    heatmap_count_bits: int = param("bits of one heatmap counter", default=16,
                                    validator=positive)
    clock_MHz: float | None = param(
        "the Global CP's clock, for its latency in the replay's control='global-cp' (null: "
        "the wafer's clock_MHz; the paper gives none, its units sit in the dies' domain)",
        default=None, validator=attrs.validators.optional(positive))
    command_cycles_per_task: int = param(
        "cycles to send one (expert, die, tokens) task to a Local CP (assumed: one 64-bit "
        "command word out, one cycle for the Local CP to take it; the paper gives none)",
        default=2, validator=positive)
    command_word_bits: int = param("bits per cycle of the command link to the Local CPs "
                                   "(a die's PDU bits go out in words this wide)",
                                   default=64, validator=positive)


@attrs.frozen
class HostParams:
    """The host CPU and its PCIe link to the wafer (the study's Fig. 15: Algorithm 1 on the
    host). Defaults: PCIe 5.0 x16, 32 GT/s x 16 lanes with 128b/130b coding = 63 GB/s per
    direction (PCI-SIG, PCIe Base Specification 5.0), rounded to the usual 64 GB/s; ~1 us
    round trip (one way 500 ns) for a small DMA between a host and a GPU."""
    pcie_bandwidth_GBps: float = param("PCIe bandwidth per direction (bytes/ns)", default=64.0,
                                       validator=positive)
    pcie_latency_ns: float = param("one-way PCIe latency of a transfer", default=500.0,
                                   validator=non_negative)
    count_bytes: int = param("bytes of one expert's token count sent up with its EDT entry",
                             default=4, validator=positive)
    task_bytes: int = param("bytes of one plan task (expert, die, tokens) sent down",
                            default=8, validator=positive)
    allocator_ns_per_layer: float = param(
        "host time of Algorithm 1 per MoE layer, fixed part (measured: "
        "benchmarks/bench_host_allocator.py --requests 4096 --iterations 8)", default=5644.0,
        validator=non_negative)
    allocator_ns_per_expert: float = param(
        "host time of Algorithm 1 per active expert of the layer (measured: "
        "benchmarks/bench_host_allocator.py, as above)", default=126.2,
        validator=non_negative)


_DIE_NAME = re.compile(r"die_(\d+)_(\d+)")
_LINK_NAME = re.compile(r"link_(\d+)_(\d+)")


def overlay(base: dict, override: dict) -> dict:
    """``base`` with the leaves of the partial mapping ``override`` laid over it."""
    out = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = overlay(out[key], value)
        else:
            out[key] = value
    return out


def difference(params, base) -> dict:
    """The partial mapping that :func:`overlay` lays over ``base`` to give ``params``."""
    def diff(a: dict, b: dict) -> dict:
        out = {}
        for key, value in a.items():
            if isinstance(value, dict):
                sub = diff(value, b[key])
                if sub:
                    out[key] = sub
            elif value != b[key]:
                out[key] = value
        return out
    return diff(to_dict(params), to_dict(base))


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
    """A wafer: an ``mesh_x`` by ``mesh_y`` mesh of dies and one Global CP.

    Every die has the parameters ``die``, except where ``dies`` lays a partial mapping over
    them for one die (e.g. ``die_1_2: {hbm: {bandwidth_GBps: 10}}``); every link has
    ``die.d2d``, except where ``links`` does the same for one link (``link_3_4:
    {hop_latency_ns: 1000}``). ``dead_dies`` and ``dead_links`` are faults: nothing runs on,
    is stored on or is routed through them (docs/replay.md#overrides-and-faults).
    """
    name: str = param("preset or user name", default="custom")
    mesh_x: int = param("dies along x", validator=mesh_dimension)
    mesh_y: int = param("dies along y", validator=mesh_dimension)
    clock_MHz: float = param("clock used to report times in cycles", default=1500.0,
                             validator=positive)
    die: DieParams = param("every die's parameters", factory=DieParams)
    global_cp: GlobalCPParams = param("the Global CP", factory=GlobalCPParams)
    host: HostParams = param("the host CPU and its PCIe link (Algorithm 1 on the host)",
                             factory=HostParams)
    dies: dict[str, Any] = param("per-die overrides: die name (die_X_Y) -> partial die "
                                 "parameters laid over 'die'", factory=dict)
    links: dict[str, Any] = param("per-link overrides: link name (link_A_B, die ids A < B) "
                                  "-> partial D2D parameters laid over 'die.d2d'",
                                  factory=dict)
    dead_dies: tuple[str, ...] = param("dies that do not work (names die_X_Y)", default=())
    dead_links: tuple[str, ...] = param("links that carry nothing (names link_A_B)",
                                        default=())

    def __attrs_post_init__(self):
        for name in self.dies:
            self.die_params(name)
        for name in self.links:
            self.link_params(name)
        for index, name in enumerate(self.dead_dies):
            self._die_id(name, f"dead_dies[{index}]")
        for index, name in enumerate(self.dead_links):
            self._link_dies(name, f"dead_links[{index}]")
        self._check_live_dies_connected()

    @property
    def num_dies(self) -> int:
        return self.mesh_x * self.mesh_y

    def _die_id(self, name, path: str) -> int:
        """Id (``y + x * mesh_y``) of a die name, or a ConfigError naming ``path``."""
        match = _DIE_NAME.fullmatch(name) if isinstance(name, str) else None
        if not match or int(match[1]) >= self.mesh_x or int(match[2]) >= self.mesh_y:
            raise ConfigError(path, f"expected a die name die_X_Y with X < {self.mesh_x} and "
                              f"Y < {self.mesh_y}, not {name!r}")
        return int(match[2]) + int(match[1]) * self.mesh_y

    def _link_dies(self, name, path: str) -> tuple[int, int]:
        """Die ids ``(a, b)`` of a link name ``link_a_b``, or a ConfigError naming ``path``."""
        match = _LINK_NAME.fullmatch(name) if isinstance(name, str) else None
        if match:
            a, b = int(match[1]), int(match[2])
            if a < b < self.num_dies and (b == a + 1 and b % self.mesh_y != 0
                                          or b == a + self.mesh_y):
                return a, b
        raise ConfigError(path, f"expected a link name link_A_B joining mesh neighbours A < B "
                          f"(die ids y + x * {self.mesh_y}), not {name!r}")

    def die_params(self, name: str) -> DieParams:
        """Parameters of the die called ``name`` (``die`` with its override, if any)."""
        override = self.dies.get(name)
        if override is None:
            return self.die
        path = f"dies.{name}"
        self._die_id(name, path)
        if not isinstance(override, dict):
            raise ConfigError(path, f"expected a mapping of die parameters, not {override!r}")
        return from_dict(DieParams, overlay(to_dict(self.die), override), path=path)

    def link_params(self, name: str) -> D2DParams:
        """Parameters of the link called ``name`` (``die.d2d`` with its override, if any)."""
        override = self.links.get(name)
        if override is None:
            return self.die.d2d
        path = f"links.{name}"
        self._link_dies(name, path)
        if not isinstance(override, dict):
            raise ConfigError(path, f"expected a mapping of D2D parameters, not {override!r}")
        return from_dict(D2DParams, overlay(to_dict(self.die.d2d), override), path=path)

    def _check_live_dies_connected(self) -> None:
        """Every two live dies are joined by a live path (else name two that are not)."""
        dead = {self._die_id(n, "dead_dies") for n in self.dead_dies}
        live = [d for d in range(self.num_dies) if d not in dead]
        if not live:
            raise ConfigError("dead_dies", f"all {self.num_dies} dies are dead")
        cut = {self._link_dies(n, "dead_links") for n in self.dead_links}
        reached = {live[0]}
        frontier = [live[0]]
        while frontier:
            die = frontier.pop()
            x, y = divmod(die, self.mesh_y)
            for nx, ny in ((x - 1, y), (x + 1, y), (x, y - 1), (x, y + 1)):
                other = ny + nx * self.mesh_y
                if (0 <= nx < self.mesh_x and 0 <= ny < self.mesh_y and other not in dead
                        and other not in reached
                        and (min(die, other), max(die, other)) not in cut):
                    reached.add(other)
                    frontier.append(other)
        for die in live:
            if die not in reached:
                names = [f"die_{d // self.mesh_y}_{d % self.mesh_y}" for d in (live[0], die)]
                raise ConfigError("dead_links" if cut else "dead_dies",
                                  f"{names[0]} and {names[1]} are both alive but no live "
                                  f"route joins them")


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
