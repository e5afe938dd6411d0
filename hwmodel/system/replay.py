"""Trace replay on a wafer: the five strategies of the paper, measured (SPEC sections 6-7).

The wafer is the component graph built by :func:`hwmodel.topologies.wafer.build_wafer`: every
latency comes from the analytical models of its components (HBM, LLC, D2D links, compute) and
every decision from the Python twins of its added units (Global CP allocator, EDT and
predictor; per-die PDU, ATU and Local CP). The event simulation itself runs in the compiled
kernel of :mod:`hwmodel.system.engine`, one barrier interval (one MoE layer of one iteration)
per call.

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
from collections import OrderedDict
from collections.abc import Callable

import attrs
import numpy as np

from ..components.atu import AddressMap, ATUTwin
from ..components.d2d import transfer_latency_ns
from ..components.global_cp import GlobalCPTwin, build_cost_rom, home_dies
from ..components.local_cp.twin import LocalCPTwin
from ..components.pdu.twin import EXPERTS_PER_WORD, PDUTwin
from ..config import ConfigError, fraction, param, positive
from .engine import (
    LayerKernel,
    count_experts,
    count_pairs,
    first_appearance,
    union_of_rows,
)

__all__ = [
    "ARTEFACT_NAMES",
    "STRATEGIES",
    "Latencies",
    "Replay",
    "ReplayParams",
    "ReplayResult",
]

#: The paper's five strategies (SPEC section 6), in the order of its Fig. 12.
STRATEGIES = ("base", "ep", "allo", "pred", "allo+pred")
#: Names the study's artefact prints in its CSV.
ARTEFACT_NAMES = {"base": "base", "ep": "norm_ep", "allo": "allo_only", "pred": "pred_only",
                  "allo+pred": "allo_and_pred"}
#: Model preset -> the artefact's model name (its CSV's first column).
ARTEFACT_MODELS = {"llama4-maverick": "llama4", "deepseek-v3": "deepseek", "kimi-k2": "kimi",
                   "qwen3-235b": "qwen"}
#: HBM efficiency the artefact uses per model when none is configured (SPEC section 3).
ARTEFACT_HBM_EFFICIENCY = {"llama4-maverick": 0.85}


@attrs.frozen
class ReplayParams:
    """Parameters of a replay; the defaults are the paper's (its artefact's) values."""

    block_size: int = param("tokens per allocation block of Algorithm 1 (also the split "
                            "threshold floor)", default=512, validator=positive)
    candidate_distance: int = param("remote candidates lie within this Manhattan distance "
                                    "(hops) of the home die", default=1)
    min_candidates: int = param("candidates kept at least, per expert", default=5,
                                validator=positive)
    top_n_share: float = param("predictor keeps the top ceil(share x E) successors of an "
                               "expert in the heatmap", default=0.2, validator=fraction)
    replica_capacity_bytes: int | None = param(
        "replica region of a die's HBM in bytes, whole experts, LRU eviction (null: "
        "unbounded, as in the paper)", default=None)
    hbm_efficiency: float | None = param(
        "HBM efficiency override (null: the artefact's per-model value, 0.85 for Llama-4, "
        "else the wafer's)", default=None)
    max_iterations: int = param("iterations replayed: the prefill plus decode steps",
                                default=128, validator=positive)
    allocator_arith: str = param("'fixed' (the Global CP twin's integer ROM) or 'float' "
                                 "(the artefact's float64)", default="fixed")
    tie_rule: str = param("heatmap top-n ties: 'stable' (count desc, id asc) or 'numpy' "
                          "(the artefact's np.argsort, machine dependent)", default="stable")
    artefact_quirks: bool = param("reproduce the artefact's quirks (stage of iteration 0 from "
                                  "the last request; predictor's per-die expert list)",
                                  default=True)
    clock_MHz: float | None = param("clock for cycle counts (null: the wafer's)", default=None)

    def __attrs_post_init__(self):
        if self.allocator_arith not in ("fixed", "float"):
            raise ConfigError("allocator_arith", f"expected 'fixed' or 'float', not "
                              f"{self.allocator_arith!r}")
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


@attrs.frozen
class Latencies:
    """Latency tables (ns) handed to the kernel, all from the wafer's component models."""

    llc_hit: int
    llc_miss: int
    llc_write: int
    request: np.ndarray = attrs.field(eq=False)     # by hops, a 16-byte request
    data: np.ndarray = attrs.field(eq=False)        # by hops, one slice
    hbm_slice: int
    local_read: np.ndarray = attrs.field(eq=False)  # by tokens: slice + activations
    compute: np.ndarray = attrs.field(eq=False)     # by tokens, one slice
    slice_bytes: float
    act_bytes_per_token: float
    request_bytes: float


@attrs.define
class ReplayResult:
    """Outputs of one run: the artefact's CSV columns plus breakdowns (SPEC section 6)."""

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

    @property
    def time_cycles(self) -> int:
        return round(self.time_ns * self.clock_MHz / 1000)

    @property
    def decode_cycles(self) -> int:
        return round(self.decode_ns * self.clock_MHz / 1000)

    CSV_HEADER = ("model,strategy,y_chips,x_chips,batch,usage,die_max_over_min,"
                  "die_max_over_avg,allo_exp_skew,allo_req_skew,dram_access_skew,dram,"
                  "local_dram_read,remote_dram_read,local_dram_write,hop,time,prefill,decode,"
                  "throughput")

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
                           ("per_layer", "per_die", "per_link"))
        out["time_cycles"] = self.time_cycles
        out["decode_cycles"] = self.decode_cycles
        return out

    def to_json(self) -> dict:
        """Everything, including per-layer, per-die and per-link breakdowns."""
        out = self.summary()
        out.update(per_layer=self.per_layer, per_die=self.per_die, per_link=self.per_link)
        return out


class _Workload:
    """Per-iteration views of a trace store: counts, first-appearance order, heatmap pairs."""

    def __init__(self, store, max_iterations: int):
        self.store = store
        self.E = int(store.num_experts)
        self.L = len(store.moe_layers)
        self.k = int(store.top_k)
        self.num_iterations = min(max_iterations, int(store.num_iterations))
        self._prev = None

    def rows(self, it):
        rows, requests = self.store.iteration_rows(it)
        return np.asarray(rows), requests          # the store's id dtype (uint8 for E <= 256)

    def counts(self, rows):
        out = np.empty((self.L, self.E), np.int64)
        count_experts(rows, self.E, out)
        return out

    def first_order(self, rows, layer):
        """Experts of ``layer`` in order of first appearance (requests, tokens, ids)."""
        out = np.empty(self.E, np.int64)
        return out[:first_appearance(rows, layer, self.E, out)]

    def _pairs(self, prev_rows, prev_index, cur_rows, cur_index):
        out = np.empty((self.L, self.E, self.E), np.int64)
        count_pairs(prev_rows, prev_index, cur_rows, cur_index, out)
        return out

    def prefill_pairs(self, rows, requests):
        """Pairs of consecutive prompt tokens of the same request."""
        index = np.flatnonzero(requests[:-1] == requests[1:])
        return self._pairs(rows, index, rows, index + 1)

    def decode_pairs(self, it, rows, requests, prev_rows, prev_requests):
        """Pairs (step it-1 -> step it) of the requests that reach step ``it`` (it >= 2)."""
        where = np.searchsorted(prev_requests, requests)
        return self._pairs(prev_rows, where, rows, np.arange(len(requests)))


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
        if int(store.num_experts) != model.num_experts or int(store.top_k) != model.top_k:
            raise ValueError(f"trace has {store.num_experts} experts, top-{store.top_k}; "
                             f"model {model.name} has {model.num_experts}, "
                             f"top-{model.top_k}")
        self.mesh = wafer.mesh
        self.N = self.mesh.num_dies
        self.E = model.num_experts
        self.L = len(store.moe_layers)
        self.home = home_dies(self.E, self.N)
        die = wafer.dies[0]
        self.hbm = die.hbm
        self.llc = die.llc
        self.compute = die.compute
        self.d2d_params = wafer.links[0].params if wafer.links else die.d2d.params
        self.clock_MHz = (self.params.clock_MHz if self.params.clock_MHz is not None
                          else wafer.params.clock_MHz)
        eff = self.params.hbm_efficiency
        if eff is None:
            eff = ARTEFACT_HBM_EFFICIENCY.get(model.name, self.hbm.params.efficiency)
        self.hbm_efficiency = eff
        self.slice_bytes = model.expert_bytes / model.matrices_per_expert
        route_len = np.zeros((self.N, self.N), np.int64)
        width = max(1, self.mesh.x_dies + self.mesh.y_dies - 2)
        route_links = np.zeros((self.N, self.N, width), np.int64)
        for s in range(self.N):
            for d in range(self.N):
                links = self.mesh.route_links(s, d)
                route_len[s, d] = len(links)
                route_links[s, d, :len(links)] = links
        self.route_links, self.route_len = route_links, route_len
        self.workload = _Workload(store, self.params.max_iterations)

    # ------------------------------------------------------------------ cost tables
    def latencies(self, max_tokens: int) -> Latencies:
        """Latency tables from the component models, for task sizes up to ``max_tokens``."""
        m = self.model
        act = (m.hidden_dim + m.expert_ffn_dim) * m.dtype_bytes
        tokens = range(max_tokens + 1)
        hops = range(self.route_len.max() + 1)
        llc = self.llc.params
        p = self.d2d_params
        return Latencies(
            llc_hit=int(llc.hit_latency_ns), llc_miss=int(llc.miss_penalty_ns),
            llc_write=int(llc.write_latency_ns),
            request=np.array([transfer_latency_ns(p, h, p.request_bytes) for h in hops],
                             np.int64),
            data=np.array([transfer_latency_ns(p, h, self.slice_bytes) for h in hops],
                          np.int64),
            hbm_slice=self.hbm.access_latency_ns(self.slice_bytes, self.hbm_efficiency),
            local_read=np.array([self.hbm.access_latency_ns(self.slice_bytes + act * t,
                                                            self.hbm_efficiency)
                                 for t in tokens], np.int64),
            compute=np.array([self.compute.slice_latency_ns(t, m) for t in tokens], np.int64),
            slice_bytes=float(self.slice_bytes), act_bytes_per_token=float(act),
            request_bytes=float(p.request_bytes))

    def global_cp(self) -> GlobalCPTwin:
        """A fresh Global CP twin with this wafer's and model's cost ROM."""
        m, hbm, p = self.model, self.hbm.params, self.d2d_params
        rom = build_cost_rom(
            expert_bytes=m.expert_bytes, hidden_dim=m.hidden_dim,
            expert_ffn_dim=m.expert_ffn_dim, matrices_per_expert=m.matrices_per_expert,
            hbm_bandwidth_GBps=hbm.bandwidth_GBps, hbm_latency_ns=hbm.latency_ns,
            link_bandwidth_GBps=p.bandwidth_GBps, hop_latency_ns=p.hop_latency_ns,
            peak_TFLOPS=self.compute.params.peak_TFLOPS, block_size=self.params.block_size,
            frac_bits=None if self.params.allocator_arith == "float" else 8)
        return GlobalCPTwin(self.mesh.x_dies, self.mesh.y_dies, self.L, self.E, rom,
                            block_size=self.params.block_size,
                            candidate_distance=self.params.candidate_distance,
                            min_candidates=self.params.min_candidates,
                            top_n_share=self.params.top_n_share,
                            count_bits=self.wafer.params.global_cp.heatmap_count_bits
                            if self.params.tie_rule == "stable" else 62)

    # ------------------------------------------------------------------ one run
    def run(self, strategy: str, progress: Callable[[int, int], None] | None = None
            ) -> ReplayResult:
        """Replay the whole batch under ``strategy`` (one of :data:`STRATEGIES`)."""
        if strategy not in STRATEGIES:
            raise ValueError(f"unknown strategy {strategy!r}; expected one of "
                             f"{', '.join(STRATEGIES)}")
        wall0 = time.perf_counter()
        allo = strategy in ("allo", "allo+pred")
        pred = strategy in ("pred", "allo+pred")
        N, E, L = self.N, self.E, self.L
        wl = self.workload
        store = self.store
        quirks = self.params.artefact_quirks
        gcp = self.global_cp()
        max_tokens = self._max_task_tokens()
        lat = self.latencies(max_tokens)
        llc_sets = self.llc.num_sets(self.slice_bytes)
        kernel = LayerKernel(N, len(self.mesh.links), self.route_links, self.route_len,
                             llc_sets, self.llc.params.associativity)
        slices = self.model.matrices_per_expert
        units = _PredictionUnits(self, gcp) if pred else None
        cp_en = units.cp_en if pred else np.zeros((N, E), np.bool_)
        is_local = units.is_local if pred else np.zeros((N, E), np.bool_)
        # iteration 0's stage: the artefact takes the last request's (a one-token prompt
        # counts as decode); the semantic rule is "prefill".
        last_prefill = int(store.prefill_len[-1]) if len(store) else 0
        stage0 = "prefill" if (not quirks or last_prefill > 1) else "decode"
        t = 0
        prefill_ns = 0
        last_stage = None
        per_layer = []
        usage_num = usage_den = 0.0
        mm_sum = ma_sum = 0.0
        exp_avg = exp_max = req_avg = req_max = 0.0
        dram_even = []
        stalled = False
        events = 0
        n_iter = wl.num_iterations
        prev_rows = prev_requests = None
        for it in range(n_iter):
            rows, requests = wl.rows(it)
            if pred:
                if it == 0:
                    pairs = wl.prefill_pairs(rows, requests)
                elif it >= 2:
                    pairs = wl.decode_pairs(it, rows, requests, prev_rows, prev_requests)
                else:
                    pairs = None
                if pairs is not None:
                    for layer in range(L):
                        gcp.heatmap_add_matrix(layer, pairs[layer])
            counts_all = wl.counts(rows)
            stage = stage0 if it == 0 else "decode"
            for layer in range(L):
                counts = counts_all[layer]
                if not counts.any():
                    continue
                if stage == "decode" and last_stage == "prefill":
                    prefill_ns = t
                last_stage = stage
                # -- allocation (Global CP) --
                if allo:
                    task_e, task_d, task_t = gcp.allocate_arrays(layer, counts)
                else:
                    order = wl.first_order(rows, layer)
                    if strategy == "ep":
                        dies = self.home[order]
                    else:
                        dies = (np.arange(len(order)) + 7) % N
                    sort = np.argsort(order, kind="stable")
                    task_e = order[sort].astype(np.int64)
                    task_d = np.asarray(dies, np.int64)[sort]
                    task_t = counts[task_e].astype(np.int64)
                prio = (task_d != self.home[task_e]).astype(np.int64)
                copy_ok = pred and stage == "decode"
                if pred:
                    units.launch(layer, task_e, task_d, copy_ok, quirks)
                dram = np.zeros(N, np.float64)
                span_lo = np.full(N, -1, np.int64)
                span_hi = np.full(N, -1, np.int64)
                end, stall, dups = kernel.run(t, layer, task_e, task_d, task_t, self.home,
                                              prio, pred=pred, copy_ok=copy_ok, cp_en=cp_en,
                                              is_local=is_local, num_experts=E, slices=slices,
                                              lat=lat, dram_bytes=dram, span_lo=span_lo,
                                              span_hi=span_hi)
                if pred and len(dups):
                    units.report(layer, dups, task_e, task_d, task_t)
                # -- per-layer records (the artefact's definitions) --
                present = span_lo >= 0
                dur = (span_hi - span_lo)[present].astype(np.float64)
                if len(dur):
                    usage_num += dur.sum()
                    usage_den += dur.max() * N
                    if dur.min() > 0:
                        mm_sum += dur.max() / dur.min()
                    if dur.mean() > 0:
                        ma_sum += dur.max() / dur.mean()
                n_exp = np.bincount(task_d, minlength=N) * slices
                n_req = np.bincount(task_d, weights=task_t, minlength=N) * slices
                exp_avg += n_exp.mean()
                exp_max += n_exp.max()
                req_avg += n_req.mean()
                req_max += n_req.max()
                if dram.max() > 0:
                    dram_even.append(dram.mean() / dram.max())
                per_layer.append({"iteration": it, "layer": int(store.moe_layers[layer]),
                                  "stage": stage, "start_ns": t, "end_ns": end,
                                  "tasks": len(task_e), "remote_tasks": int(prio.sum()),
                                  "dups": len(dups)})
                t = end
                if stall:
                    stalled = True
                    break
            if stalled:
                break
            prev_rows, prev_requests = rows, requests
            if progress is not None:
                progress(it + 1, n_iter)
        counters = kernel.counters
        events = int(counters[1])
        stats = kernel.die_stats
        gib = float(1 << 30)
        dups_total = stats[:, 2].sum() / self.slice_bytes
        home_slices = self.model.num_layers * E * slices
        decode_ns = t - prefill_ns
        B = len(store)
        nl = max(1, len(per_layer))
        result = ReplayResult(
            model=self.model.name, strategy=strategy, mesh_x=self.mesh.x_dies,
            mesh_y=self.mesh.y_dies, batch=B,
            usage=usage_num / usage_den if usage_den else 0.0,
            die_max_over_min=mm_sum / nl, die_max_over_avg=ma_sum / nl,
            allo_exp_skew=exp_avg / exp_max if exp_max else 0.0,
            allo_req_skew=req_avg / req_max if req_max else 0.0,
            dram_access_skew=float(np.mean(dram_even)) if dram_even else 0.0,
            dram_GiB=(home_slices + dups_total) * self.slice_bytes / gib,
            local_dram_read_GiB=stats[:, 0].sum() / gib,
            remote_dram_read_GiB=stats[:, 1].sum() / gib,
            local_dram_write_GiB=stats[:, 2].sum() / gib,
            hops=int(counters[0]), time_ns=int(t), prefill_ns=int(prefill_ns),
            decode_ns=int(decode_ns),
            throughput=B * 128 / decode_ns * 1e9 if decode_ns else 0.0,
            clock_MHz=self.clock_MHz, byte_hops=float(stats[:, 3].sum()), events=events,
            wall_s=time.perf_counter() - wall0, stalled=stalled,
            counts={"local_llc_hits": int(counters[5]), "replica_reads": int(counters[6]),
                    "remote_llc_hits": int(counters[7]), "remote_hbm_reads": int(counters[8]),
                    "local_hbm_reads": int(counters[9]),
                    "replicas": round(dups_total),
                    "replica_evictions": units.evictions if pred else 0},
            per_layer=per_layer,
            per_die={"local_read_bytes": stats[:, 0].tolist(),
                     "remote_read_served_bytes": stats[:, 1].tolist(),
                     "replica_write_bytes": stats[:, 2].tolist(),
                     "byte_hops_sent": stats[:, 3].tolist(),
                     "replicas_held": (units.replicas_held() if pred else [0] * N)},
            per_link=[{"dies": list(pair), "bytes": float(b)}
                      for pair, b in zip(self.mesh.links, kernel.link_bytes)])
        return result

    # ------------------------------------------------------------------ helpers
    def _max_task_tokens(self) -> int:
        """Largest token count of any expert in any (iteration, layer): a table bound."""
        wl = self.workload
        best = 1
        for it in range(wl.num_iterations):
            rows, _ = wl.rows(it)
            best = max(best, int(wl.counts(rows).max(initial=0)))
            if it >= 1:   # decode steps hold one token per request: bounded by the batch
                best = max(best, len(self.store))
                break
        return best


class _PredictionUnits:
    """The prediction path of every die, driven through its twins (SPEC section 3, flows 1-4).

    Per die: a :class:`PDUTwin` (its register table), a :class:`LocalCPTwin` and one
    :class:`ATUTwin` per MoE layer (entries are indexed by expert id within a layer); the
    Global CP twin's EDT holds presence. The kernel reads ``cp_en`` / ``is_local`` as arrays
    equal to the PDU tables; every copy it makes is checked against the Local CP's decision.

    Efficiency without changing results: the predictor's ``cp_en`` of all dies comes from one
    matrix product; the PDU words of all dies are packed with numpy, and a die's PDU is written
    only where a 16-bit register changes (register state is the same as a full ``configure``),
    through the twins' bulk transactions (``PDUTwin.write_words``,
    ``LocalCPTwin.run_layer_arrays``: arguments validated once per call as arrays, same state
    as the per-register / per-task calls the RTL is compared with).

    Bounded replica region (``replica_capacity_bytes``): each die keeps its replicated experts
    in LRU order (use = an ATU hit at a layer launch, or the copy itself). A copy that
    overflows the region evicts the least recently used replica: its ATU entry is
    invalidated, its EDT presence bit cleared (so the next launch configures ``is_local`` = 0)
    and, if it belongs to the layer just run, the PDU's ``is_local`` register bit is cleared.
    """

    def __init__(self, replay: Replay, gcp: GlobalCPTwin):
        N, E = replay.N, replay.E
        self.N, self.E = N, E
        self.gcp = gcp
        self.home = replay.home
        self.moe_layers = [int(x) for x in replay.store.moe_layers]
        self.pdus = [PDUTwin(num_experts=E) for _ in range(N)]
        self.local_cps = [LocalCPTwin(die=d, num_experts=E, num_dies=N) for d in range(N)]
        self.atus: dict[tuple[int, int], ATUTwin] = {}
        self.amap = AddressMap(num_dies=N, num_experts=E, num_layers=replay.model.num_layers,
                               slice_bytes=int(replay.slice_bytes))
        self.cp_en = np.zeros((N, E), np.bool_)
        self.is_local = np.zeros((N, E), np.bool_)
        self.num_words = self.pdus[0].num_words
        self.words = np.zeros((N, self.num_words), np.int64)   # PDU registers as written
        self._shift = 2 * np.arange(EXPERTS_PER_WORD, dtype=np.int64)
        self._addr: dict[tuple[int, int], int] = {}
        self.tie_rule = replay.params.tie_rule
        cap = replay.params.replica_capacity_bytes
        self.capacity = None if cap is None else int(cap // replay.model.expert_bytes)
        self.lru = [OrderedDict() for _ in range(N)]   # (layer, expert), least recent first
        self.evictions = 0
        self.layer = -1

    # ---------------------------------------------------------------- layer launch (flow 1)
    def launch(self, layer, task_e, task_d, copy_ok, quirks):
        """Global CP predictor -> PDU tables of the dies with tasks; ATU redirects."""
        N = self.N
        self.layer = layer
        self.is_local[:] = self.gcp.presence_matrix(layer).T
        if copy_ok:
            top = (self.gcp.top_n_matrix(layer) if self.tie_rule == "stable"
                   else _numpy_top_n(self.gcp, layer))
            # the artefact's per-die expert list (plan order = expert id ascending) stops
            # growing, with its quirk, once it holds the expert whose id equals the die id
            union_of_rows(task_e, task_d, top, quirks, self.cp_en)
        else:
            self.cp_en[:] = False
        words = self._pack(self.cp_en, self.is_local)
        changed = words != self.words
        for d in np.flatnonzero(np.bincount(task_d, minlength=N)).tolist():
            index = np.flatnonzero(changed[d])
            if len(index):
                self.pdus[d].write_words(index, words[d, index])
            self.words[d] = words[d]
        # reads of a remote expert go through the die's ATU: a hit redirects to the replica
        redirect = (self.home[task_e] != task_d) & self.is_local[task_d, task_e]
        for e, d in zip(task_e[redirect].tolist(), task_d[redirect].tolist()):
            hit, _ = self.atus[(d, layer)].lookup(e, self._remote_addr(layer, e))
            if not hit:
                raise AssertionError(f"ATU of die {d} misses replica of expert {e}")
            if self.capacity is not None:
                self.lru[d].move_to_end((layer, e))

    def _pack(self, cp_en, is_local):
        """PDU register words of every die (``pack_words`` layout), shape (dies, words)."""
        vals = cp_en.astype(np.int64) | (is_local.astype(np.int64) << 1)
        pad = self.num_words * EXPERTS_PER_WORD - self.E
        if pad:
            vals = np.pad(vals, ((0, 0), (0, pad)))
        return (vals.reshape(self.N, self.num_words, EXPERTS_PER_WORD) << self._shift).sum(2)

    def _remote_addr(self, layer, expert):
        key = (layer, expert)
        addr = self._addr.get(key)
        if addr is None:
            addr = self._addr[key] = self.amap.home_address(self.moe_layers[layer], expert)
        return addr

    # -------------------------------------------------------------- after the layer (flow 4)
    def report(self, layer, dups, task_e, task_d, task_t):
        """Local CPs report their copies; PDU, ATU, EDT (and the replica LRU) follow."""
        copied: dict[int, set] = {}
        for d, e in dups[:, :2].tolist():
            copied.setdefault(d, set()).add(e)
        for d, experts in sorted(copied.items()):
            mask = task_d == d
            mine = task_e[mask]
            stats = self.local_cps[d].run_layer_arrays(mine, task_t[mask], self.home[mine],
                                                       self.cp_en[d], self.is_local[d])
            if set(stats.duplicated_experts) != experts:
                raise AssertionError(f"die {d}: Local CP copies {stats.duplicated_experts} "
                                     f"differ from the data path's {sorted(experts)}")
            atu = self.atus.get((d, layer))
            if atu is None:
                atu = self.atus[(d, layer)] = ATUTwin(
                    num_entries=max(self.E, 1), num_dies=self.N,
                    page_bits=self.amap.layout.page_bits)
            for e in stats.duplicated_experts:
                self.pdus[d].set_local(e)
                self.words[d, e // EXPERTS_PER_WORD] |= 2 << (2 * (e % EXPERTS_PER_WORD))
                atu.insert(e, self._remote_addr(layer, e),
                           self.amap.replica_address(self.moe_layers[layer], e))
                self.gcp.edt_set_present(layer, e, d)
                if self.capacity is not None:
                    self.lru[d][(layer, e)] = None
                    while len(self.lru[d]) > self.capacity:
                        self._evict(d)

    def replicas_held(self) -> list[int]:
        """Replicated experts each die holds now (EDT presence bits off the home die)."""
        return self.gcp.replicas_per_die()

    def _evict(self, d):
        """Drop die ``d``'s least recently used replica (bounded replica region)."""
        (layer, e), _ = self.lru[d].popitem(last=False)
        self.evictions += 1
        self.atus[(d, layer)].invalidate(e)
        self.gcp.edt_clear_present(layer, e, d)
        if layer == self.layer:     # the PDU table holds the current layer's bits
            w = e // EXPERTS_PER_WORD
            self.words[d, w] &= ~(2 << (2 * (e % EXPERTS_PER_WORD)))
            self.pdus[d].write_word(w, int(self.words[d, w]))


def _numpy_top_n(gcp, layer):
    """The artefact's top-n (``np.argsort`` quicksort of float rows; ties machine dependent)."""
    n = gcp.top_n_count
    E = gcp.num_experts
    out = np.zeros((E, E), bool)
    for i in range(E):
        row = gcp.heatmap_row(layer, i).astype(np.float64)
        out[i, np.argsort(row)[-n:]] = True
    return out
