"""Lowering: the built wafer graph and a model become the event kernel's input tables.

Every latency the kernel uses is read here from the component that owns it, die by die and link
by link (docs/replay.md):

* a die's LLC hit, miss and write latencies and its set count (line = one slice) from its
  :class:`~hwmodel.components.llc.LLC`;
* a die's HBM read or write of one slice, and of a slice plus ``t`` tokens of activations, from
  its :class:`~hwmodel.components.hbm.HBM`;
* a die's GEMM time on one slice for ``t`` tokens from its
  :class:`~hwmodel.components.compute.Compute`;
* a route's links from the wafer's routing function (XY where alive), and its latency from those
  links' own parameters: ``sum(hop latency) + ceil(bytes / min(bandwidth x efficiency))`` (the
  payload streams once at the slowest link's rate while every link of the path is held; on a
  uniform mesh this is the paper's ``200 x hops + ceil(bytes / (1741 x 0.9))``). A request
  message has the size set by the sending die's D2D controller.

The result is one typed structure, :class:`Tables` (a ``NamedTuple`` of arrays, which the compiled
kernel takes as one argument).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from ..components.d2d import message_latency_ns
from ..components.global_cp import (
    CostROM,
    WaferCosts,
    build_cost_rom,
    check_fits,
    home_placement,
)
from ..config import ConfigError
from ..jit import njit

__all__ = ["Tables", "allocator_costs", "check_unit_sizes", "has_routes", "hbm_efficiencies",
           "home_placement", "lower", "with_routes"]


class Tables(NamedTuple):
    """The kernel's read-only input: latency tables per die and per route (ns)."""

    llc_hit_ns: np.ndarray        # (dies,)
    llc_miss_ns: np.ndarray       # (dies,)
    llc_write_ns: np.ndarray      # (dies,)
    llc_sets: np.ndarray          # (dies,) sets of one-slice lines
    llc_ways: np.ndarray          # (dies,)
    hbm_slice_ns: np.ndarray      # (dies,) one slice read from or written to the die's HBM
    local_read_ns: np.ndarray     # (HBM models, tokens + 1) slice + activations of t tokens
    hbm_of_die: np.ndarray        # (dies,) row of local_read_ns of each die's HBM
    compute_ns: np.ndarray        # (compute models, tokens + 1) GEMM on one slice, t tokens
    compute_of_die: np.ndarray    # (dies,) row of compute_ns of each die's compute unit
    route_start: np.ndarray       # (dies * dies + 1,) route s->d: flat[start[s*N+d]:...]
    route_flat: np.ndarray        # link indices of all routes
    route_len: np.ndarray         # (dies, dies) links per route
    request_ns: np.ndarray        # (dies, dies) request message s -> d
    data_ns: np.ndarray           # (dies, dies) one slice s -> d
    request_bytes: np.ndarray     # (dies,) request message size of each sending die
    home: np.ndarray              # (experts,) home die of each expert
    slice_bytes: float
    act_bytes_per_token: float


def hbm_efficiencies(wafer, model_efficiency: float | None) -> tuple[float, ...]:
    """Each die's HBM efficiency, resolved once: a die whose parameters set
    ``hbm.efficiency`` keeps it (whatever its value); every other die runs at
    ``model_efficiency`` (the model preset's, or the replay's override) if one is given, else
    at its own (the wafer's nominal) value."""
    def sets_its_own(die) -> bool:
        override = wafer.params.dies.get(die.name) or {}
        return "efficiency" in (override.get("hbm") or {})
    return tuple(die.hbm.params.efficiency
                 if model_efficiency is None or sets_its_own(die) else float(model_efficiency)
                 for die in wafer.dies)


class _Keyed(NamedTuple):
    """A unit and the key its table row depends on (its parameters and what the replay adds)."""

    unit: object
    params: tuple


def _rows_by_component(components, row_of) -> tuple[np.ndarray, np.ndarray]:
    """``(rows, which)``: ``row_of`` evaluated once per distinct parameter set of
    ``components`` (a 32 x 32 wafer of identical dies evaluates its model once, and holds one
    row), and the row of each component."""
    index: dict = {}
    rows = []
    which = []
    for component in components:
        if component.params not in index:
            index[component.params] = len(rows)
            rows.append(row_of(component))
        which.append(index[component.params])
    return np.array(rows, np.int64), np.array(which, np.int64)


def _die_tables(wafer, model, max_tokens: int, efficiency: float | None, slice_bytes: float):
    dies = wafer.dies
    act = (model.hidden_dim + model.expert_ffn_dim) * model.dtype_bytes
    tokens = range(max_tokens + 1)

    def hbm_rows(hbm_and_efficiency):
        hbm, eff = hbm_and_efficiency.unit, hbm_and_efficiency.params[1]
        return [hbm.access_latency_ns(slice_bytes, eff)] + [
            hbm.access_latency_ns(slice_bytes + act * t, eff) for t in tokens]

    hbm, hbm_of_die = _rows_by_component(
        [_Keyed(d.hbm, (d.hbm.params, eff))
         for d, eff in zip(dies, hbm_efficiencies(wafer, efficiency))], hbm_rows)
    compute, compute_of_die = _rows_by_component(
        [d.compute for d in dies],
        lambda unit: [unit.slice_latency_ns(t, model) for t in tokens])
    as_int = lambda values: np.array(values, np.int64)
    return {
        "llc_hit_ns": as_int([int(d.llc.params.hit_latency_ns) for d in dies]),
        "llc_miss_ns": as_int([int(d.llc.params.miss_penalty_ns) for d in dies]),
        "llc_write_ns": as_int([int(d.llc.params.write_latency_ns) for d in dies]),
        "llc_sets": as_int([d.llc.num_sets(slice_bytes) for d in dies]),
        "llc_ways": as_int([d.llc.params.associativity for d in dies]),
        "hbm_slice_ns": hbm[hbm_of_die, 0],
        "local_read_ns": np.ascontiguousarray(hbm[:, 1:]), "hbm_of_die": hbm_of_die,
        "compute_ns": compute, "compute_of_die": compute_of_die,
        "request_bytes": np.array([d.d2d.params.request_bytes for d in dies], np.float64),
        "act_bytes_per_token": float(act)}


#: The one message latency formula (hwmodel.components.d2d), compiled for the route loop.
_message_latency_ns = njit(cache=True)(message_latency_ns)


@njit(cache=True)
def _route_latency(start, flat, hop_ns, rate, num_dies, nbytes):
    """:func:`~hwmodel.components.d2d.message_latency_ns` of each route s -> d over its links'
    hop latencies and slowest rate, for a message of ``nbytes[s]`` (0: no links)."""
    out = np.zeros((num_dies, num_dies), np.int64)
    for s in range(num_dies):
        for d in range(num_dies):
            lo, hi = start[s * num_dies + d], start[s * num_dies + d + 1]
            if hi == lo:
                continue
            total = 0
            slowest = np.inf
            for j in range(lo, hi):
                total += hop_ns[flat[j]]
                slowest = min(slowest, rate[flat[j]])
            out[s, d] = _message_latency_ns(total, slowest, nbytes[s])
    return out


def _refuse_cut(mesh, src: int, dst: int) -> None:
    raise ConfigError("dead_dies/dead_links",
                      f"no live route from {mesh.die_name(src)} to {mesh.die_name(dst)} "
                      f"on {mesh!r}; expected every two live dies to be joined")


def _check_connected(mesh, length: np.ndarray) -> None:
    """Every two live dies of ``mesh`` are joined by a live route (else name two that are
    not: the graph's liveness may have been changed after the parameters were checked)."""
    alive = mesh.die_alive
    cut = np.argwhere((length < 0) & alive[:, None] & alive[None, :])
    if len(cut):
        _refuse_cut(mesh, *(int(d) for d in cut[0]))


def _check_live_dies_joined(mesh) -> None:
    """:func:`_check_connected` without route tables: a breadth-first search over the live
    links from the first live die. It names the same two dies (the first live die and the
    first live die it cannot reach), since links are undirected."""
    alive = mesh.die_alive
    live = np.flatnonzero(alive)
    if len(live) == 0:
        return
    neighbours: list[list[int]] = [[] for _ in range(mesh.num_dies)]
    for (a, b), up in zip(mesh.links, mesh.link_alive):
        if up and alive[a] and alive[b]:
            neighbours[a].append(b)
            neighbours[b].append(a)
    reached = np.zeros(mesh.num_dies, np.bool_)
    frontier = [int(live[0])]
    reached[live[0]] = True
    while frontier:
        following = []
        for die in frontier:
            for other in neighbours[die]:
                if not reached[other]:
                    reached[other] = True
                    following.append(other)
        frontier = following
    cut = live[~reached[live]]
    if len(cut):
        _refuse_cut(mesh, int(live[0]), int(cut[0]))


def _no_routes() -> dict:
    """Route fields of tables lowered without routes (:func:`lower` with ``routes=False``):
    empty arrays of the kernel's types, read by no event of a run that sends nothing."""
    empty = np.zeros((0, 0), np.int64)
    return {"route_start": np.zeros(1, np.int64), "route_flat": np.zeros(0, np.int32),
            "route_len": empty, "request_ns": empty.copy(), "data_ns": empty.copy()}


def has_routes(tables: Tables) -> bool:
    """Whether ``tables`` carry the route tables (:func:`lower` with ``routes=True``)."""
    return len(tables.route_start) > 1


def with_routes(tables: Tables, wafer) -> Tables:
    """``tables`` with the route tables of ``wafer`` added (themselves if they have them)."""
    if has_routes(tables):
        return tables
    return tables._replace(**_route_tables(wafer, tables.slice_bytes, tables.request_bytes))


def _route_tables(wafer, slice_bytes: float, request_bytes: np.ndarray):
    mesh = wafer.mesh   # the graph's liveness (hwmodel.topologies.wafer.Wafer.mesh)
    start, flat, length = mesh.all_routes()
    _check_connected(mesh, length)
    hop_ns = np.array([int(link.params.hop_latency_ns) for link in wafer.links], np.int64)
    rate = np.array([link.params.bandwidth_GBps * link.params.efficiency
                     for link in wafer.links], np.float64)
    N = wafer.num_dies
    return {
        "route_start": start, "route_flat": flat, "route_len": length,
        "request_ns": _route_latency(start, flat, hop_ns, rate, N, request_bytes),
        "data_ns": _route_latency(start, flat, hop_ns, rate, N, np.full(N, slice_bytes))}


def lower(wafer, model, *, max_tokens: int, hbm_efficiency: float | None = None,
          routes: bool = True) -> Tables:
    """The kernel tables of ``wafer`` running ``model``, for tasks of up to ``max_tokens``.

    Parameters
    ----------
    wafer : hwmodel.topologies.wafer.Wafer
        The built graph; every die and link is read from its own component.
    model : hwmodel.models.MoEModel
    max_tokens : int
        Largest token count of one task (table length).
    hbm_efficiency : float, optional
        The model's HBM efficiency (its preset's or the replay's override), for the dies that
        do not set their own (:func:`hbm_efficiencies`).
    routes : bool
        Build the all-pairs route tables (False: empty route fields, added later by
        :func:`with_routes` when a run first sends a message; on a 64 x 64 mesh they hold 700
        million links). Either way every two live dies must be joined by a live path.
    """
    slice_bytes = model.expert_bytes / model.matrices_per_expert
    die = _die_tables(wafer, model, max_tokens, hbm_efficiency, slice_bytes)
    if routes:
        route_fields = _route_tables(wafer, slice_bytes, die["request_bytes"])
    else:
        _check_live_dies_joined(wafer.mesh)
        route_fields = _no_routes()
    home = home_placement(model.num_experts, wafer.mesh.live_dies)
    return Tables(**die, **route_fields, home=home, slice_bytes=float(slice_bytes))


def check_unit_sizes(wafer, num_experts: int, num_moe_layers: int) -> None:
    """The unit sizes the graph carries hold the model: the Global CP's tables and, die by
    die, the ATU and PDU (a die may override them).

    Raises
    ------
    hwmodel.config.ConfigError
        Naming the YAML path, the value and the size that would hold the model.
    """
    check_fits(wafer.params, num_experts=num_experts, num_moe_layers=num_moe_layers)
    for die in wafer.dies:
        for field, have in (("atu_entries", die.atu.entries), ("pdu_experts", die.pdu.experts)):
            if have < num_experts:
                raise ConfigError(f"wafer.dies.{die.name}.{field}",
                                  f"{have} is too small: a model of {num_experts} experts "
                                  f"per layer needs at least {num_experts}")


def _cost_rom(model, hbm, compute, link, block_size: int, frac_bits: int | None) -> CostROM:
    """Algorithm 1's ROM for one die's HBM and compute and one link's parameters."""
    return build_cost_rom(
        expert_bytes=model.expert_bytes, hidden_dim=model.hidden_dim,
        expert_ffn_dim=model.expert_ffn_dim, matrices_per_expert=model.matrices_per_expert,
        hbm_bandwidth_GBps=hbm.bandwidth_GBps, hbm_latency_ns=hbm.latency_ns,
        link_bandwidth_GBps=link.bandwidth_GBps, hop_latency_ns=link.hop_latency_ns,
        peak_TFLOPS=compute.peak_TFLOPS, block_size=block_size, frac_bits=frac_bits)


@njit(cache=True)
def _route_transfer(start, flat, per_hop, base, num_dies, out):
    """``out[h, d]`` = sum of the route's links' per-hop costs + its slowest link's base."""
    for h in range(num_dies):
        for d in range(num_dies):
            lo, hi = start[h * num_dies + d], start[h * num_dies + d + 1]
            if hi == lo:
                continue
            worst = base[flat[lo]]
            for j in range(lo, hi):
                out[h, d] += per_hop[flat[j]]
                worst = max(worst, base[flat[j]])
            out[h, d] += worst


def allocator_costs(wafer, model, *, block_size: int,
                    frac_bits: int | None) -> tuple[CostROM, WaferCosts]:
    """Algorithm 1's cost ROM of the wafer's nominal die and link (what the RTL allocator
    loads), and its tables die by die and route by route from each die's and link's own
    parameters: ``hbm_read`` and ``compute`` of the die, ``transfer[h, d]`` = the per-hop
    costs of the links of the route h -> d plus the bandwidth cost at its slowest link (on a
    uniform mesh, ``rom.transfer(hops)``)."""
    nominal = wafer.params.die
    rom = _cost_rom(model, nominal.hbm, nominal.compute, nominal.d2d, block_size, frac_bits)
    roms: dict = {}

    def rom_of(hbm, compute, link):
        key = (hbm, compute, link)
        if key not in roms:
            roms[key] = _cost_rom(model, hbm, compute, link, block_size, frac_bits)
        return roms[key]
    dies = [rom_of(d.hbm.params, d.compute.params, nominal.d2d) for d in wafer.dies]
    links = [rom_of(nominal.hbm, nominal.compute, link.params) for link in wafer.links]
    dtype = np.float64 if frac_bits is None else np.int64
    start, flat, _ = wafer.mesh.all_routes()
    transfer = np.zeros((wafer.num_dies, wafer.num_dies), dtype)
    _route_transfer(start, flat, np.array([r.transfer_per_hop for r in links], dtype),
                    np.array([r.transfer_base for r in links], dtype), wafer.num_dies,
                    transfer)
    return rom, WaferCosts(hbm_read=np.array([r.hbm_read for r in dies], dtype),
                           compute=np.array([np.asarray(r.compute, dtype) for r in dies]),
                           transfer=transfer, frac_bits=frac_bits)
