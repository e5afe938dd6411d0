"""Trace replay on a wafer: the paper's strategies, measured (docs/replay.md).

The wafer is the component graph built by :func:`hwmodel.topologies.wafer.build_wafer`. It is
lowered (:mod:`hwmodel.system.lowering`) into the event kernel's tables, die by die and link by
link; strategies come from the registry of :mod:`hwmodel.system.strategies`; the prediction path
runs through the units' twins (:mod:`hwmodel.system.prediction`); the event simulation itself
runs in the compiled kernel of :mod:`hwmodel.system.engine`, one barrier interval (one MoE layer
of one iteration) per call.

Typical use::

    from hwmodel.models import load_model
    from hwmodel.params import load_wafer
    from hwmodel.system import Replay
    from hwmodel.topologies.wafer import build_wafer
    from hwmodel.traces import open_batch

    store = open_batch("../shared/traces/profiling_result/meta-llama/"
                       "Llama-4-Maverick-17B-128E-Instruct/mmlu")
    replay = Replay(wafer=build_wafer(load_wafer("tsmc-sow")),
                    model=load_model("llama4-maverick"), store=store)
    result = replay.run("allo")
    print(result.row())
"""

from __future__ import annotations

import time
from collections.abc import Callable

import attrs
import numpy as np

from ..components.global_cp import (
    FRAC_BITS,
    AllocatorTwin,
    EDTTwin,
    GlobalCPTwin,
    PredictorTwin,
)
from ..components.global_cp.params import (
    PAPER_BLOCK_SIZE,
    PAPER_CANDIDATE_DISTANCE,
    PAPER_MIN_CANDIDATES,
    PAPER_TOP_N_SHARE,
)
from ..config import ConfigError, fraction, param, positive
from ..params import HBMParams, WaferParams
from .attention import AttentionTime
from .control import CONTROL_MODES, control_path
from .dispatch import TokenDispatch
from .engine import Counter, DieStat, LayerKernel, LayerStat, Prediction, Tasks
from .flows import link_network
from .lowering import Tables, allocator_costs, check_unit_sizes, has_routes, lower, with_routes
from .memory_budget import ATTENTION_PLACEMENTS
from .microbatch import MicroBatches
from .physical import paper_mode_note, run_budget, switches_on
from .prediction import PredictionUnits
from .prefetch import Prefetcher
from .results import ARTEFACT_NAMES, ReplayResult
from .strategies import PAPER_STRATEGIES, LayerView, Strategy, get_strategy
from .workload import Workload

__all__ = ["ARTEFACT_NAMES", "STRATEGIES", "Replay", "ReplayParams", "ReplayResult"]

#: The paper's five strategies (docs/replay.md), in the order of its Fig. 12.
STRATEGIES = PAPER_STRATEGIES


def _as_in(cls, name: str):
    """The validator of field ``name`` of ``cls``, for an optional override of it: one check
    per quantity, whether it comes from a wafer YAML or from a replay's parameters."""
    return attrs.validators.optional(attrs.fields_dict(cls)[name].validator)


#: Largest ``block_size``: Algorithm 1 keeps a cost for every block size up to twice it, so a
#: typo such as 100000000 would build tables of gigabytes. 2**20 tokens is 2,048 times the
#: paper's 512 and more tokens than any expert of a served batch receives in one layer.
MAX_BLOCK_SIZE = 1 << 20


def _block_size(instance, attribute, value):
    positive(instance, attribute, value)
    if value > MAX_BLOCK_SIZE:
        raise ValueError(f"{attribute.name} must be at most {MAX_BLOCK_SIZE} tokens, not "
                         f"{value!r}")


@attrs.frozen
class ReplayParams:
    """Parameters of a replay; the defaults are the paper's (its artefact's) values."""

    block_size: int = param("tokens per allocation block of Algorithm 1 (also the split "
                            "threshold floor)", default=PAPER_BLOCK_SIZE,
                            validator=_block_size)
    candidate_distance: int = param("remote candidates lie within this Manhattan distance "
                                    "(hops) of the home die",
                                    default=PAPER_CANDIDATE_DISTANCE)
    min_candidates: int = param("candidates kept at least, per expert",
                                default=PAPER_MIN_CANDIDATES, validator=positive)
    top_n_share: float = param("predictor keeps the top ceil(share x E) successors of an "
                               "expert in the heatmap", default=PAPER_TOP_N_SHARE,
                               validator=fraction)
    replica_capacity_bytes: int | None = param(
        "replica region of a die's HBM in bytes, whole experts, LRU eviction (null: "
        "unbounded, as in the paper)", default=None)
    hbm_efficiency: float | None = param(
        "HBM efficiency of the dies that do not set their own (null: the model preset's, "
        "0.85 for Llama-4, else the wafer's)", default=None,
        validator=_as_in(HBMParams, "efficiency"))
    max_iterations: int = param("iterations replayed: the prefill plus decode steps",
                                default=128, validator=positive)
    allocator_arith: str = param("'fixed' (the Global CP twin's integer ROM) or 'float' "
                                 "(the artefact's float64)", default="fixed")
    tie_rule: str = param("heatmap top-n ties: 'stable' (count desc, id asc) or 'numpy' "
                          "(the artefact's np.argsort, machine dependent)", default="stable")
    artefact_quirks: bool = param("reproduce the artefact's quirks (stage of iteration 0 from "
                                  "the last request; predictor's per-die expert list)",
                                  default=True)
    clock_MHz: float | None = param("clock for cycle counts (null: the wafer's)", default=None,
                                    validator=_as_in(WaferParams, "clock_MHz"))
    control: str = param("what a MoE layer's launch waits for (hwmodel.system.control): "
                         "'free' (nothing, the paper), 'global-cp' (the Global CP's cycles) "
                         "or 'host-cpu' (Algorithm 1 on the host over PCIe)", default="free")
    # physical switches (hwmodel.system.physical, docs/physical.md): off is the paper
    hbm_budget: bool = param("physical switch: each die's HBM holds its experts, hosted "
                             "weights and its requests' KV cache; replicas get what is left",
                             default=False)
    token_dispatch: bool = param("physical switch: count the activations each token sends "
                                 "from its attention die to its experts' dies and back (hops, "
                                 "bytes; timed by dispatch_time)", default=False)
    shared_links: bool = param("physical switch: transfers crossing a link share its "
                               "bandwidth max-min fairly instead of holding it whole",
                               default=False)
    dispatch_time: bool = param("physical switch: token dispatch and combine take time on the "
                                "links, before and after each MoE layer's experts (counted "
                                "as token_dispatch counts them)", default=False)
    attention_time: bool = param("physical switch: each layer's attention reads its weights "
                                 "and KV cache from its dies' HBM and computes there, before "
                                 "each MoE layer's routing (roofline time)", default=False)
    micro_batches: bool = param("physical switch: two micro-batches (alternate requests) "
                                "pipelined, one's dispatch and combine under the other's "
                                "compute (timed with dispatch_time)", default=False)
    prefetch: bool = param("physical switch: each MoE layer's predicted successors are read "
                           "ahead from their home dies' HBM while the layer runs, in the HBM's "
                           "idle time", default=False)
    prefetch_buffer_bytes: int | str | None = param(
        "physical mode, prefetch: bytes of every die's prefetch buffer, whole slices (null: "
        "each die's own LLC capacity, from the graph; 'unbounded': no bound, the upper "
        "bound, its peak is reported)", default=None)
    attention_placement: str = param("physical mode: where attention and the other non-expert "
                                     "weights live, 'layer-sharded' or 'data-parallel'",
                                     default="layer-sharded")

    def __attrs_post_init__(self):
        if self.allocator_arith not in ("fixed", "float"):
            raise ConfigError("allocator_arith", f"expected 'fixed' or 'float', not "
                              f"{self.allocator_arith!r}")
        if self.control not in CONTROL_MODES:
            raise ConfigError("control", f"expected one of {', '.join(CONTROL_MODES)}, not "
                              f"{self.control!r}")
        if self.attention_placement not in ATTENTION_PLACEMENTS:
            raise ConfigError("attention_placement", f"expected one of "
                              f"{', '.join(ATTENTION_PLACEMENTS)}, not "
                              f"{self.attention_placement!r}")
        buffer = self.prefetch_buffer_bytes
        if buffer is not None and buffer != "unbounded" and (
                isinstance(buffer, (bool, str)) or not isinstance(buffer, (int, float))
                or not 0 <= buffer < float("inf")):
            raise ConfigError("prefetch_buffer_bytes", f"expected null (the LLC), "
                              f"'unbounded' or a byte count >= 0, not {buffer!r}")
        if self.tie_rule not in ("stable", "numpy"):
            raise ConfigError("tie_rule", f"expected 'stable' or 'numpy', not "
                              f"{self.tie_rule!r}")
        if self.candidate_distance < 0:
            raise ConfigError("candidate_distance", f"expected 0 or more, not "
                              f"{self.candidate_distance!r}")
        cap = self.replica_capacity_bytes
        if cap is not None and (isinstance(cap, bool) or not isinstance(cap, (int, float))
                                or cap < 0):
            raise ConfigError("replica_capacity_bytes", f"expected null or a byte count >= 0, "
                              f"not {cap!r}")


class Replay:
    """A wafer, a model and a batch of traces, ready to replay any strategy.

    Parameters
    ----------
    wafer : hwmodel.topologies.wafer.Wafer
        The built wafer graph (single source of truth for every parameter).
    model : hwmodel.models.MoEModel
    store : hwmodel.traces.TraceStore
        The batch, in batch order (its length is the batch size).
    params : ReplayParams, optional
    """

    def __init__(self, wafer, model, store, params: ReplayParams | None = None):
        self.wafer = wafer
        self.model = model
        self.store = store
        self.params = ReplayParams() if params is None else params
        store.check_prefill()
        if int(store.num_experts) != model.num_experts or int(store.top_k) != model.top_k:
            raise ValueError(f"trace has {store.num_experts} experts, top-{store.top_k}; "
                             f"model {model.name} has {model.num_experts}, "
                             f"top-{model.top_k}")
        self.mesh = wafer.mesh
        self.N = self.mesh.num_dies
        self.E = model.num_experts
        self.L = len(store.moe_layers)
        check_unit_sizes(wafer, self.E, self.L)
        self.live_dies = np.asarray(self.mesh.live_dies, np.int64)
        self.clock_MHz = (self.params.clock_MHz if self.params.clock_MHz is not None
                          else wafer.params.clock_MHz)
        eff = self.params.hbm_efficiency
        self.hbm_efficiency = model.hbm_efficiency if eff is None else eff
        self.slice_bytes = model.expert_bytes / model.matrices_per_expert
        self.workload = Workload(store, self.params.max_iterations)
        self._tables: Tables | None = None

    @property
    def tables(self) -> Tables:
        """The lowered wafer (:func:`hwmodel.system.lowering.lower`), made once, without its
        route tables until a run asks for them (:meth:`routed_tables`)."""
        if self._tables is None:
            self._tables = lower(self.wafer, self.model,
                                 max_tokens=self.workload.max_task_tokens(),
                                 hbm_efficiency=self.hbm_efficiency, routes=False)
        return self._tables

    def routed_tables(self) -> Tables:
        """:attr:`tables` with the all-pairs route tables, built the first time a run sends
        a message (a run that sends none, such as ``ep``, never builds them)."""
        self._tables = with_routes(self.tables, self.wafer)
        return self._tables

    @property
    def home(self) -> np.ndarray:
        """Home die of every expert (over the live dies)."""
        return self.tables.home

    def global_cp(self) -> GlobalCPTwin:
        """A fresh Global CP twin: its EDT over the live dies, its predictor (heatmap counters
        of the wafer's width) and its allocator, whose costs read each die's HBM and compute
        and each route's links (:func:`~hwmodel.system.lowering.allocator_costs`)."""
        params = self.params
        rom, costs = allocator_costs(
            self.wafer, self.model, block_size=params.block_size,
            frac_bits=None if params.allocator_arith == "float" else FRAC_BITS)
        edt = EDTTwin(self.L, self.E, self.N, live_dies=self.live_dies)
        count_bits = (self.wafer.params.global_cp.heatmap_count_bits
                      if params.tie_rule == "stable" else 62)
        predictor = PredictorTwin(self.L, self.E, top_n_share=params.top_n_share,
                                  count_bits=count_bits)
        allocator = AllocatorTwin(self.mesh.x_dies, self.mesh.y_dies, edt, rom,
                                  block_size=params.block_size,
                                  candidate_distance=params.candidate_distance,
                                  min_candidates=params.min_candidates, wafer_costs=costs)
        return GlobalCPTwin(edt, predictor, allocator)

    def run(self, strategy: str | Strategy,
            progress: Callable[[int, int], None] | None = None, *,
            record_units: bool = False, cosim=None) -> ReplayResult:
        """Replay the whole batch under ``strategy`` (a registered name or a Strategy).

        With ``record_units`` the result's ``unit_streams`` holds every transaction each
        die's PDU and ATU twin took, with its answer, in the transaction format of the unit's
        RTL harness (for checking the RTL on the replay's own streams).

        With ``cosim`` (a :class:`hwmodel.system.cosim.CoSim`) the chosen units run as RTL
        over its window, fed the window's transactions; the first answer that differs from
        the twin's raises :class:`~hwmodel.system.cosim.CoSimMismatch` at the window's end.
        """
        strategy = get_strategy(strategy)
        return _Run(self, strategy, record_units, cosim).execute(progress)


def uses_global_cp(strategy: Strategy) -> bool:
    """Whether the Global CP twin takes part: Algorithm 1 or the prediction path."""
    return strategy.uses_global_cp


def _stat_columns(acc) -> dict:
    """The artefact's usage and skew columns from the kernel's layer sums (:class:`LayerStat`)."""
    layers = max(1.0, acc[LayerStat.LAYERS])
    ratio = lambda num, den: float(num / den) if den else 0.0
    return {
        "usage": ratio(acc[LayerStat.BUSY_SUM], acc[LayerStat.BUSY_BOUND]),
        "die_max_over_min": float(acc[LayerStat.MAX_OVER_MIN] / layers),
        "die_max_over_avg": float(acc[LayerStat.MAX_OVER_AVG] / layers),
        "allo_exp_skew": ratio(acc[LayerStat.SLICES_AVG], acc[LayerStat.SLICES_MAX]),
        "allo_req_skew": ratio(acc[LayerStat.TOKENS_AVG], acc[LayerStat.TOKENS_MAX]),
        "dram_access_skew": ratio(acc[LayerStat.DRAM_EVENNESS], acc[LayerStat.DRAM_LAYERS])}


class _Run:
    """One replay of the batch under one strategy."""

    def __init__(self, replay: Replay, strategy: Strategy, record_units: bool = False,
                 cosim=None):
        self.replay = replay
        self.strategy = strategy
        self.wall0 = time.perf_counter()
        self.gcp = replay.global_cp() if uses_global_cp(strategy) else None
        self.tables = replay.tables
        shared = replay.params.shared_links                           # physical: shared_links
        self.kernel = LayerKernel(self.tables, len(replay.mesh.links),
                                  link_network(replay.wafer) if shared else None)
        self.slices = replay.model.matrices_per_expert
        N, E = replay.N, replay.E
        self.units = (PredictionUnits(replay, self.gcp, record=record_units,
                                      lazy_cp_en=cosim is None)
                      if strategy.predicts else None)
        no_decisions = np.zeros((N, max(1, E)), np.bool_)
        self.redirect = self.units.redirect if self.units else no_decisions
        self.copy = self.units.copy if self.units else no_decisions
        self.per_layer: list[dict] = []
        self.t = self.prefill_ns = 0
        self.last_stage = None
        self.stalled = False
        # iteration 0's stage: the artefact takes the last request's (a one-token prompt
        # counts as decode); the semantic rule is "prefill".
        store = replay.store
        last_prefill = int(store.prefill_len[-1]) if len(store) else 0
        quirks = replay.params.artefact_quirks
        self.stage0 = "prefill" if (not quirks or last_prefill > 1) else "decode"
        self.uses_algorithm1 = strategy.allocates
        self.control = control_path(replay.params.control, replay.wafer, self.tables.home,
                                    allocates=self.uses_algorithm1,
                                    predicts=strategy.predicts, params=replay.params)
        self.cosim = cosim
        if cosim is not None:
            cosim.bind(self)
        # physical mode (hwmodel.system.physical): the HBM budget the replicas get, or None
        self.budget = run_budget(replay)
        timed = replay.params.dispatch_time                           # physical: dispatch_time
        self.dispatch = (TokenDispatch(replay, self.kernel if timed else None)
                         if replay.params.token_dispatch or timed else None)
        self.attention = (AttentionTime(replay, self.kernel)             # physical: attention
                          if replay.params.attention_time else None)
        self.micro = (MicroBatches(replay, self.kernel, self.dispatch)    # physical:
                      if replay.params.micro_batches else None)          # micro_batches
        self.prefetch = (Prefetcher(replay, self.tables.hbm_slice_ns)   # physical: prefetch
                         if replay.params.prefetch else None)
        if self.micro is not None and self.attention is not None:    # each micro-batch's
            self.micro.attention = self.attention.micro_batch_ns      # attention, pipelined
        self.requests = None

    def execute(self, progress) -> ReplayResult:
        wl = self.replay.workload
        for it in range(wl.num_iterations):
            rows, requests = wl.rows(it)
            self.requests = requests
            if self.budget is not None and self.units is not None:    # physical: hbm_budget
                self.units.set_capacity(self.budget.replica_slots(
                    it, self.replay.params.replica_capacity_bytes))
            if self.units is not None:
                self.units.feed_heatmap(it)
            counts_all = wl.counts(rows)
            for layer in range(self.replay.L):
                if counts_all[layer].any():
                    self._layer(it, layer, rows, counts_all[layer])
                if self.stalled:
                    break
            if self.stalled:
                break
            if self.prefetch is not None:                             # physical: prefetch
                self.prefetch.learn(rows)
            if self.cosim is not None and self.cosim.ends_after(it):
                self.cosim.check()
            if progress is not None:
                progress(it + 1, wl.num_iterations)
        if self.micro is not None:                                    # physical: micro_batches
            self.t = self.micro.barrier()
        return self._result()

    def _layer(self, it, layer, rows, counts) -> None:
        replay = self.replay
        stage = self.stage0 if it == 0 else "decode"
        if stage == "decode" and self.last_stage == "prefill":
            if self.micro is not None:                                # physical: micro_batches
                self.t = self.micro.barrier()
            self.prefill_ns = self.t
        self.last_stage = stage
        tap = self.cosim if self.cosim is not None and self.cosim.covers(it, layer) else None
        if tap is not None:
            tap.before_layer(layer)
        view = LayerView(layer=layer, counts=counts, rows=rows, workload=replay.workload,
                         home=self.tables.home, live_dies=replay.live_dies, global_cp=self.gcp)
        task_e, task_d, task_t = self.strategy.allocation.plan(view)
        remote = (task_d != self.tables.home[task_e]).astype(np.int64)
        if remote.any() and not has_routes(self.kernel.tables):
            self.kernel.use_tables(replay.routed_tables())   # the run's first message
        if self.dispatch is not None and self.micro is None:          # physical: token_dispatch
            self.dispatch.layer(layer, rows, self.requests, task_e, task_d, task_t)
        timed = self.dispatch is not None and self.dispatch.timed
        copy_ok = self.units is not None and stage == "decode"
        plan = Tasks(task_e, task_d, task_t, remote)
        order = None
        if self.units is not None:
            # the dies run their tasks in their Local CPs' dispatch order
            order = self.units.launch(layer, task_e, task_d, task_t, copy_ok,
                                      replay.params.artefact_quirks)
        prediction = Prediction(enabled=self.units is not None, copy_ok=copy_ok,
                                redirect=self.redirect, copy=self.copy)
        ready = (self.t if self.attention is None or self.micro is not None
                 else self.attention.phase_end(self.t, it, layer))
        start = ready if self.control is None else ready + self.control.launch_ns(
            counts, task_e, task_d, self.gcp.presence_matrix(layer), decode=stage == "decode")
        prefetched = self.prefetch.kernel_input(layer) if self.prefetch else None
        if self.micro is not None:                                    # physical: micro_batches
            start, end, stall, dups = self.micro.layer(
                it, layer, rows, self.requests, plan, order, prediction,
                launch_ns=start - self.t, prefetched=prefetched)
        else:
            tasks = plan if order is None else Tasks(*(column[order] for column in plan))
            if timed:                                                 # physical: dispatch_time
                start, _, end, stall, dups = self.dispatch.run_layer(
                    start, layer, tasks, prediction, num_experts=replay.E, slices=self.slices,
                    prefetched=prefetched)
            else:
                end, stall, dups = self.kernel.run(start, layer, tasks, prediction,
                                                   num_experts=replay.E, slices=self.slices,
                                                   prefetched=prefetched)
        if self.units is not None:
            self.units.report(layer)
            if self.control is not None:
                self.control.reported(self.units.reports.values())
        if tap is not None:
            tap.after_layer(it, layer, counts, (task_e, task_d, task_t), dups)
        self.per_layer.append({"iteration": it, "layer": int(replay.store.moe_layers[layer]),
                               "stage": stage, "start_ns": start, "end_ns": end,
                               "tasks": len(task_e), "remote_tasks": int(remote.sum()),
                               "dups": len(dups)})
        if self.prefetch is not None:                                 # physical: prefetch
            self.per_layer[-1]["prefetches"] = self.prefetch.after_layer(
                layer, rows, self.t, end, self.micro.hbm_busy_ns if self.micro
                else self.kernel.outputs.hbm_busy_ns)
        self.t = end
        self.stalled = stall

    def _per_link(self) -> list[dict]:
        """Bytes per link; with shared links also its busy and queue time and most flows at
        once (:mod:`hwmodel.system.flows`)."""
        kernel, links = self.kernel, self.replay.mesh.links
        rows = [{"dies": list(pair), "bytes": float(b)}
                for pair, b in zip(links, kernel.link_bytes)]
        if kernel.network is not None:
            fs = kernel.flows
            for i, row in enumerate(rows):
                row.update(busy_ns=float(fs.busy_ns[i]), queue_ns=float(fs.queue_ns[i]),
                           max_flows=int(fs.max_flows[i]))
        return rows

    def _result(self) -> ReplayResult:
        replay, kernel = self.replay, self.kernel
        counters, stats = kernel.counters, kernel.die_stats
        gib = float(1 << 30)
        replica_bytes = stats[:, DieStat.REPLICA_WRITE_BYTES]
        dups_total = replica_bytes.sum() / replay.slice_bytes
        home_slices = replay.model.num_layers * replay.E * self.slices
        decode_ns = self.t - self.prefill_ns
        batch = len(replay.store)
        units = self.units
        replicas_held = units.replicas_held() if units else [0] * replay.N
        note = paper_mode_note(replay, replicas_held)
        return ReplayResult(
            model=replay.model.name, strategy=self.strategy.name, mesh_x=replay.mesh.x_dies,
            mesh_y=replay.mesh.y_dies, batch=batch,
            **_stat_columns(kernel.outputs.layer_stats),
            dram_GiB=(home_slices + dups_total) * replay.slice_bytes / gib,
            local_dram_read_GiB=stats[:, DieStat.LOCAL_READ_BYTES].sum() / gib,
            remote_dram_read_GiB=stats[:, DieStat.REMOTE_READ_SERVED_BYTES].sum() / gib,
            local_dram_write_GiB=replica_bytes.sum() / gib,
            hops=int(counters[Counter.HOPS]), time_ns=int(self.t),
            prefill_ns=int(self.prefill_ns), decode_ns=int(decode_ns),
            throughput=batch * 128 / decode_ns * 1e9 if decode_ns else 0.0,
            clock_MHz=replay.clock_MHz,
            byte_hops=float(stats[:, DieStat.BYTE_HOPS_SENT].sum()),
            events=int(counters[Counter.EVENTS]), wall_s=time.perf_counter() - self.wall0,
            stalled=self.stalled,
            counts={"local_llc_hits": int(counters[Counter.LOCAL_LLC_HITS]),
                    "replica_reads": int(counters[Counter.REPLICA_READS]),
                    "remote_llc_hits": int(counters[Counter.REMOTE_LLC_HITS]),
                    "remote_hbm_reads": int(counters[Counter.REMOTE_HBM_READS]),
                    "local_hbm_reads": int(counters[Counter.LOCAL_HBM_READS]),
                    "replicas": round(dups_total),
                    "replica_evictions": units.evictions if units else 0,
                    **(self.control.counts() if self.control else {}),
                    **(self.dispatch.totals if self.dispatch else {}),
                    **(self.attention.totals if self.attention else {}),
                    **(self.micro.counts(self.t) if self.micro else {}),
                    **kernel.flow_counts(),
                    **(self.prefetch.counts(counters) if self.prefetch else {})},
            per_layer=self.per_layer,
            per_die={"local_read_bytes": stats[:, DieStat.LOCAL_READ_BYTES].tolist(),
                     "remote_read_served_bytes":
                         stats[:, DieStat.REMOTE_READ_SERVED_BYTES].tolist(),
                     "replica_write_bytes": replica_bytes.tolist(),
                     "byte_hops_sent": stats[:, DieStat.BYTE_HOPS_SENT].tolist(),
                     "replicas_held": replicas_held},
            per_link=self._per_link(),
            unit_streams=(units.streams or {}) if units else {},
            physical=switches_on(replay.params), notes=[note] if note else [])
