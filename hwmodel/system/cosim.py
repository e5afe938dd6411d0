"""Co-simulation of a replay window: the units' RTL answers the replay's own transactions.

For the iterations, MoE layers and dies of a :class:`Window`, a :class:`CoSim` taps the replay
(:meth:`hwmodel.system.Replay.run` with ``cosim=``): every transaction the replay makes to the
chosen units' twins is kept with where it happened, and after each iteration of the window the
units' Amaranth RTL runs that iteration's transactions, each unit's RTL starting from the state
its twin had when the iteration began (so memory stays bounded on long windows). Every answer is compared with the twin's; the earliest difference (iteration,
layer, unit order, die, position) raises :class:`CoSimMismatch` naming the transaction and both
values, and the replay stops there. Until that point the RTL and the twins answered the same, so
the replay's decisions are the RTL's.

Units (``UNITS``): the Global CP's ``allocator`` (Algorithm 1), ``predictor`` (top-n union) and
``edt``; each die's ``pdu``, ``atu`` and ``local_cp``. ``all`` takes every unit the strategy
uses (``allo``: allocator and EDT; ``pred``: all but the allocator; ``allo+pred``: all).

Window spec (:func:`parse_window`): comma-separated ``key=range`` items, ranges half-open
``A:B`` or one number ``A``; ``it`` (iterations; required), ``layer`` (MoE layer indices,
0-based among the model's MoE layers; default all), ``die`` (die ids, ``A:B`` or ``A+B+C``;
default all; the Global CP units are wafer-wide)::

    >>> parse_window("it=1,layer=0:24")
    Window(iterations=(1, 2), layers=(0, 24), dies=None)
    >>> parse_window("it=1:3,die=0+5").dies
    frozenset({0, 5})
"""

from __future__ import annotations

import enum
import time
from collections.abc import Callable
from pathlib import Path

import attrs
import numpy as np

from ..components.global_cp.edt import presence_bitmaps
from ..components.pdu.params import PDULayout
from .rtl_units import ENGINES, UNITS

__all__ = ["ENGINES", "UNITS", "CoSim", "CoSimMismatch", "Window", "parse_units",
           "parse_window"]

_GLOBAL_CP = -1     # the die field of a Global CP unit's transactions
_SM_SLOTS = 4       # the Local CP's SM slots (LocalCPTwin's default, as in the replay)


class Phase(enum.IntEnum):
    """Order of the units' work within one layer (ties of :class:`Where`)."""

    ALLOCATOR = 0
    EDT = 1
    PREDICTOR = 2
    PDU = 3
    ATU = 4
    LOCAL_CP = 5


@attrs.frozen(order=True)
class Where:
    """Where a transaction happened: sorts in the order the replay made them."""

    iteration: int
    layer: int          # MoE layer index (0-based among the MoE layers)
    phase: Phase
    die: int            # -1: the Global CP
    index: int          # position in the unit's transactions of that layer


class CoSimMismatch(AssertionError):
    """An RTL answer differs from its twin's; ``str()`` is one line naming everything."""

    def __init__(self, where: Where, moe_layer: int, unit: str, transaction, twin, rtl):
        self.where, self.unit, self.transaction = where, unit, transaction
        self.twin, self.rtl = twin, rtl
        owner = "the Global CP" if where.die == _GLOBAL_CP else f"die {where.die}"
        super().__init__(f"RTL {unit} of {owner} differs from its twin at iteration "
                         f"{where.iteration}, MoE layer {moe_layer} (index {where.layer}), "
                         f"transaction {transaction}: twin {twin!r}, RTL {rtl!r}")


@attrs.frozen
class Window:
    """Iterations ``[a, b)``, MoE layers ``[c, d)`` (None: all) and dies (None: all)."""

    iterations: tuple[int, int]
    layers: tuple[int, int] | None = None
    dies: frozenset | None = None

    def covers(self, iteration: int, layer: int) -> bool:
        a, b = self.iterations
        return a <= iteration < b and (self.layers is None
                                       or self.layers[0] <= layer < self.layers[1])

    def takes_die(self, die: int) -> bool:
        return self.dies is None or die in self.dies


def _range(key: str, text: str) -> tuple[int, int]:
    parts = text.split(":")
    try:
        values = [int(p) for p in parts]
    except ValueError:
        values = []
    if len(values) == 1:
        values.append(values[0] + 1)
    if len(values) != 2 or values[0] < 0 or values[1] <= values[0]:
        raise ValueError(f"window {key}={text!r}: expected A or A:B with 0 <= A < B")
    return values[0], values[1]


def parse_window(spec: str) -> Window:
    """A :class:`Window` from ``"it=A[:B][,layer=C[:D]][,die=E[:F]|E+F+...]"``."""
    items: dict[str, str] = {}
    for item in str(spec).split(","):
        key, sep, value = item.strip().partition("=")
        if not sep or key not in ("it", "layer", "die") or key in items:
            raise ValueError(f"window item {item.strip()!r}: expected it=, layer= or die= "
                             f"once each (e.g. 'it=1,layer=0:24,die=0+5')")
        items[key] = value.strip()
    if "it" not in items:
        raise ValueError(f"window {spec!r}: expected it=A or it=A:B (the iterations)")
    dies = None
    if "die" in items:
        text = items["die"]
        if "+" in text:
            try:
                dies = frozenset(int(d) for d in text.split("+"))
            except ValueError:
                raise ValueError(f"window die={text!r}: expected die ids like 0+5+7") from None
            if min(dies) < 0:
                raise ValueError(f"window die={text!r}: die ids are 0 or more")
        else:
            dies = frozenset(range(*_range("die", text)))
    return Window(iterations=_range("it", items["it"]),
                  layers=_range("layer", items["layer"]) if "layer" in items else None,
                  dies=dies)


def parse_units(spec: str) -> tuple[str, ...]:
    """Unit names from ``"all"`` or a comma-separated list of :data:`UNITS`."""
    names = [n.strip() for n in str(spec).split(",") if n.strip()]
    if names == ["all"]:
        return UNITS
    bad = [n for n in names if n not in UNITS]
    if bad or not names:
        raise ValueError(f"--rtl {spec!r}: expected 'all' or some of {', '.join(UNITS)}")
    return tuple(u for u in UNITS if u in names)


@attrs.define
class _Check:
    """One compared answer: where, the transaction, and the twin's answer."""

    where: Where
    transaction: tuple
    twin: object


@attrs.define
class _Job:
    """One RTL simulation: a unit (of a die), its inputs, and the answers to compare."""

    unit: str
    die: int
    inputs: list = attrs.Factory(list)
    checks: list = attrs.Factory(list)


class CoSim:
    """Runs units of a replay window as RTL; see the module docstring.

    Parameters
    ----------
    units : iterable of str
        Names from :data:`UNITS` (:func:`parse_units`).
    window : Window
    engine : str
        ``"pysim"`` (Amaranth's simulator) or ``"cxxrtl"`` (compiled, when installed).
    opt : str
        ``g++`` level of the compiled designs (``"-O2"``: built once, then loaded from the
        cache; ``$HWMODEL_RTLSIM_OPT`` overrides it, :func:`hwmodel.rtlsim.optimisation`).
    vcd_dir : path or None
        Write each simulation's waveform there (``<unit>-die<N>.vcd`` / ``<unit>.vcd``) with a
        GTKWave save file showing the unit's ports.
    progress : callable(str, int, int) or None
        Called with (unit, simulations done, total) while the RTL runs.
    """

    def __init__(self, units, window: Window, *, engine: str = "pysim", opt: str = "-O2",
                 vcd_dir: str | Path | None = None,
                 progress: Callable[[str, int, int], None] | None = None):
        self.units = tuple(units)
        if engine not in ENGINES:
            raise ValueError(f"engine {engine!r}: expected one of {', '.join(ENGINES)}")
        if engine == "cxxrtl":
            from ..rtlsim.build import OPT_LEVELS
            if opt not in OPT_LEVELS:
                raise ValueError(f"opt {opt!r}: expected one of {', '.join(OPT_LEVELS)}")
        self.window, self.engine, self.opt = window, engine, opt
        self.vcd_dir = None if vcd_dir is None else Path(vcd_dir)
        self.progress = progress
        self.jobs: dict[tuple[str, int], _Job] = {}
        self.summary: dict[str, dict] = {}
        self._started = False
        self._run = None

    # ------------------------------------------------------------------ set-up and taps
    def bind(self, run) -> None:
        """Attach to one replay run (``hwmodel.system.replay._Run``); checks it can be done."""
        replay = run.replay
        iterations, layers = replay.workload.num_iterations, replay.L
        if self.window.iterations[1] > iterations:
            raise ValueError(f"window it={self.window.iterations[0]}:"
                             f"{self.window.iterations[1]}: the batch has {iterations} "
                             f"iterations (0..{iterations - 1})")
        if self.window.layers is not None and self.window.layers[1] > layers:
            raise ValueError(f"window layer={self.window.layers[0]}:{self.window.layers[1]}: "
                             f"the model has {layers} MoE layers (0..{layers - 1})")
        if self.window.dies is not None and max(self.window.dies) >= replay.N:
            raise ValueError(f"window dies {sorted(self.window.dies)}: the wafer has dies "
                             f"0..{replay.N - 1}")
        used = _units_used(run)
        if self.units == UNITS:         # "all": every unit the strategy uses
            self.units = tuple(u for u in UNITS if u in used)
        if not self.units:
            raise ValueError(f"--rtl all: strategy {run.strategy.name!r} uses no added unit "
                             f"(the units run under allo, pred and allo+pred)")
        unused = [u for u in self.units if u not in used]
        if unused:
            raise ValueError(f"--rtl {','.join(unused)}: strategy {run.strategy.name!r} does "
                             f"not use {'it' if len(unused) == 1 else 'them'} (it uses "
                             f"{', '.join(used) or 'no added unit'})")
        if "allocator" in self.units and len(replay.live_dies) != replay.N:
            raise ValueError("--rtl allocator: the allocator RTL has no dead-die input; "
                             "use a wafer without dead_dies")
        if "allocator" in self.units and not run.gcp.one_rom:
            raise ValueError("--rtl allocator: the allocator RTL loads one cost ROM, and this "
                             "wafer's dies or links differ (Algorithm 1's costs are per die)")
        if "predictor" in self.units and replay.params.tie_rule != "stable":
            raise ValueError("--rtl predictor: the predictor RTL breaks ties by expert id; "
                             "set tie_rule: stable")
        self._run = run
        self.moe_layers = [int(x) for x in replay.store.moe_layers]

    def covers(self, iteration: int, layer: int) -> bool:
        return self._run is not None and self.window.covers(iteration, layer)

    def ends_after(self, iteration: int) -> bool:
        """Whether the RTL runs after ``iteration``: after every iteration of the window, so
        that memory stays bounded on long windows (each chunk's RTL starts again from the
        twins' state at its first layer)."""
        a, b = self.window.iterations
        return a <= iteration < b

    def before_layer(self, layer: int) -> None:
        """Before a covered layer's plan: take the starting state once, capture streams."""
        run = self._run
        if not self._started:
            self._started = True
            self._snapshot(run)
        self._presence_before = (run.gcp.presence_matrix(layer).copy()
                                 if run.gcp is not None else None)
        if run.units is not None:
            self._saved_streams = run.units.streams
            run.units.streams = {}

    def after_layer(self, iteration: int, layer: int, counts, plan, dups) -> None:
        """After a covered layer ran (and its copies were reported): keep its transactions."""
        run = self._run
        task_e, task_d, _ = plan
        if "allocator" in self.units:
            self._keep_allocation(iteration, layer, counts, plan)
        if "edt" in self.units:
            self._keep_edt(iteration, layer)
        if run.units is not None:
            streams, run.units.streams = run.units.streams, self._saved_streams
            if self._saved_streams is not None:
                for key, transactions in streams.items():
                    self._saved_streams.setdefault(key, []).extend(transactions)
            self._keep_streams(iteration, layer, streams)
            if "predictor" in self.units and run.units.predictor_keep.any():
                self._keep_prediction(iteration, layer, task_e, task_d, streams)
            if "local_cp" in self.units:
                self._keep_local_cps(iteration, layer, streams)

    # ------------------------------------------------------------------ what each unit saw
    def _job(self, unit: str, die: int = _GLOBAL_CP) -> _Job:
        key = (unit, die)
        if key not in self.jobs:
            self.jobs[key] = _Job(unit, die)
        return self.jobs[key]

    def _snapshot(self, run) -> None:
        """Inputs that put each die's RTL in its twin's state at the window's start."""
        units = run.units
        if units is None:
            return
        for d, die in enumerate(run.replay.wafer.dies):
            if not self.window.takes_die(d):
                continue
            if "pdu" in self.units:
                words = PDULayout(experts=die.pdu.experts).num_words
                self._job("pdu", d).inputs.extend(
                    [("clear",)] + [("write_word", i, int(w))
                                    for i, w in enumerate(units.registers[d, :words])])
        self.atu_start = {key: atu.valid_entries() for key, atu in units.atus.items()}

    def _keep_allocation(self, iteration, layer, counts, plan) -> None:
        job = self._job("allocator")
        presence = presence_bitmaps(self._presence_before)
        job.inputs.append((np.asarray(counts).tolist(), presence))
        twin = [(int(e), int(d), int(t)) for e, d, t in zip(*plan)]
        job.checks.append(_Check(Where(iteration, layer, Phase.ALLOCATOR, _GLOBAL_CP, 0),
                                 ("allocate", f"{int(np.count_nonzero(counts))} experts"),
                                 twin))

    def _keep_edt(self, iteration, layer) -> None:
        """Load the layer's entries, read them all; apply the layer's copies and evictions
        as set/clear read-modify-writes; read the changed entries back."""
        gcp, job = self._run.gcp, self._job("edt")
        before, after = self._presence_before, gcp.presence_matrix(layer)
        bits_before, bits_after = presence_bitmaps(before), presence_bitmaps(after)
        n = 0

        def read(e, bits):
            nonlocal n
            job.inputs.append(("read", e))
            job.checks.append(_Check(Where(iteration, layer, Phase.EDT, _GLOBAL_CP, n),
                                     ("read", e), (gcp.edt_home(e), bits)))
            n += 1
        for e, bits in enumerate(bits_before):
            job.inputs.append(("write", e, gcp.edt_home(e), bits))
        for e, bits in enumerate(bits_before):
            read(e, bits)
        changed = np.flatnonzero((before != after).any(axis=1)).tolist()
        for e in changed:
            for d in np.flatnonzero(after[e] & ~before[e]).tolist():
                job.inputs.append(("set_present", e, d))
            for d in np.flatnonzero(before[e] & ~after[e]).tolist():
                job.inputs.append(("clear_present", e, d))
        for e in changed:
            read(e, bits_after[e])

    def _keep_streams(self, iteration, layer, streams) -> None:
        """The layer's PDU and ATU transactions with the twins' answers."""
        for key, transactions in streams.items():
            unit, die = key[0], key[1]
            if (unit not in ("pdu", "atu") or unit not in self.units
                    or not self.window.takes_die(die)):
                continue
            job = self._job(unit, die)
            phase = Phase.PDU if unit == "pdu" else Phase.ATU
            if unit == "atu":
                job.inputs.append(("atu_table", key[2]))    # which layer's table
            answers = {"pdu": "query", "atu": "lookup"}[unit]
            for index, t in enumerate(transactions):
                if t[0] == answers:
                    job.inputs.append(t[:-1])
                    job.checks.append(_Check(Where(iteration, layer, phase, die, index),
                                             t[:-1], t[-1]))
                else:
                    job.inputs.append(t)

    def _keep_prediction(self, iteration, layer, task_e, task_d, streams) -> None:
        """Each die's group of heatmap rows (the predictor's inputs) and its ``cp_en`` (as
        the die's Local CP wrote it into the PDU)."""
        units, gcp, job = self._run.units, self._run.gcp, self._job("predictor")
        keep = units.predictor_keep
        for d in np.unique(task_d[keep]).tolist():
            if not self.window.takes_die(d):
                continue
            experts = task_e[keep & (task_d == d)].tolist()
            job.inputs.append(np.array([gcp.heatmap_row(layer, e) for e in experts]))
            (_, cp_en, _, _), = streams[("local_cp", d)]
            bits = sum(1 << j for j in np.flatnonzero(cp_en).tolist())
            job.checks.append(_Check(Where(iteration, layer, Phase.PREDICTOR, d, 0),
                                     ("predict", tuple(experts)), bits))

    def _keep_local_cps(self, iteration, layer, streams) -> None:
        """Each die's layer as its Local CP twin took it: tasks, PDU bits and report."""
        dies = sorted(key[1] for key in streams if key[0] == "local_cp")
        for d in dies:
            if not self.window.takes_die(d):
                continue
            (tasks, cp_en, is_local, stats), = streams[("local_cp", d)]
            job = self._job("local_cp", d)
            job.inputs.append((tasks, cp_en, is_local))
            job.checks.append(_Check(Where(iteration, layer, Phase.LOCAL_CP, d, 0),
                                     ("layer", f"{len(tasks)} tasks"), stats))

    # ------------------------------------------------------------------ the RTL runs
    def check(self) -> dict[str, dict]:
        """Run every kept job as RTL; raise :class:`CoSimMismatch` at the earliest
        difference, else return per unit: simulations, answers compared, cycles, seconds."""
        if self.engine == "pysim":
            return self._check()
        from ..rtlsim import optimisation
        with optimisation(self.opt):
            return self._check()

    def _check(self) -> dict[str, dict]:
        jobs = sorted(self.jobs.values(), key=lambda j: (UNITS.index(j.unit), j.die))
        first = None
        for n, job in enumerate(jobs):
            if self.progress is not None:
                self.progress(job.unit, n, len(jobs))
            t0 = time.perf_counter()
            answers, cycles = _SIMULATE[job.unit](self, job)
            mismatch = _first_difference(job, answers)
            if mismatch is not None and (first is None or mismatch[0].where < first[0].where):
                first = mismatch
            row = self.summary.setdefault(job.unit, {"simulations": 0, "answers": 0,
                                                     "cycles": 0, "seconds": 0.0})
            row["simulations"] += 1
            row["answers"] += len(job.checks)
            row["cycles"] += cycles
            row["seconds"] += time.perf_counter() - t0
        if self.progress is not None:
            self.progress("", len(jobs), len(jobs))
        self.jobs.clear()
        self._started = False       # the next chunk starts from the twins' state again
        if first is not None:
            check, job, rtl = first
            raise CoSimMismatch(check.where, self.moe_layers[check.where.layer], job.unit,
                                check.transaction, check.twin, rtl)
        return self.summary

    def _vcd(self, job: _Job):
        if self.vcd_dir is None:
            return None
        self.vcd_dir.mkdir(parents=True, exist_ok=True)
        name = job.unit if job.die == _GLOBAL_CP else f"{job.unit}-die{job.die}"
        return self.vcd_dir / f"{name}.vcd"

    def _engine(self) -> dict:
        return {} if self.engine == "pysim" else {"engine": self.engine}


def _units_used(run) -> tuple[str, ...]:
    """The units a replay run drives: Algorithm 1 the allocator and EDT, prediction all but
    the allocator."""
    used = set()
    if run.uses_algorithm1:
        used |= {"allocator", "edt"}
    if run.units is not None:
        used |= {"edt", "predictor", "pdu", "atu", "local_cp"}
    return tuple(u for u in UNITS if u in used)


def _first_difference(job: _Job, answers):
    if len(answers) != len(job.checks):
        check = job.checks[min(len(answers), len(job.checks) - 1)]
        return check, job, f"{len(answers)} answers for {len(job.checks)} questions"
    for check, rtl in zip(job.checks, answers):
        if rtl != check.twin:
            return check, job, rtl
    return None


def _simulate_pdu(cosim: CoSim, job: _Job):
    from ..components.pdu.sim import simulate_pdu
    experts = cosim._run.replay.wafer.dies[job.die].pdu.experts
    return simulate_pdu(job.inputs, experts, vcd=cosim._vcd(job), **cosim._engine())


def _simulate_atu(cosim: CoSim, job: _Job):
    """One ATU simulation per die: each (die, layer) table in turn, from its start state
    (``invalidate_all`` then the valid entries it had when the window began)."""
    from ..components.atu.sim import simulate_atu
    replay, units = cosim._run.replay, cosim._run.units
    tables: dict[int, list] = {}
    for t in job.inputs:
        if t[0] == "atu_table":
            layer = t[1]
            if layer not in tables:
                start = cosim.atu_start.get((job.die, layer), [])
                tables[layer] = [("invalidate_all",)] + [("insert", *e) for e in start]
        else:
            tables[layer].append(t)
    transactions = [t for layer in sorted(tables) for t in tables[layer]]
    # the answers come table by table: order the checks the same way (stable within a table)
    job.checks.sort(key=lambda check: check.where.layer)
    return simulate_atu(transactions, replay.wafer.dies[job.die].atu.entries,
                        num_dies=replay.N, page_bits=units.amap.layout.page_bits,
                        vcd=cosim._vcd(job), **cosim._engine())


def _simulate_edt(cosim: CoSim, job: _Job):
    from ..components.global_cp.sim import simulate_edt
    replay = cosim._run.replay
    return simulate_edt(job.inputs, replay.wafer.params.global_cp.edt_entries,
                        num_dies=replay.N, vcd=cosim._vcd(job), **cosim._engine())


def _simulate_predictor(cosim: CoSim, job: _Job):
    from ..components.global_cp.sim import simulate_predict
    gcp = cosim._run.gcp
    return simulate_predict(job.inputs, gcp.num_experts, gcp.top_n_count, gcp.count_bits,
                            vcd=cosim._vcd(job), **cosim._engine())


def _simulate_allocator(cosim: CoSim, job: _Job):
    from ..components.global_cp.sim import simulate_allocator
    replay, gcp = cosim._run.replay, cosim._run.gcp
    plans, cycles = simulate_allocator(
        [counts for counts, _ in job.inputs], mesh_x=replay.mesh.x_dies,
        mesh_y=replay.mesh.y_dies, num_experts=replay.E, costs=gcp.costs,
        block_size=gcp.block_size, candidate_distance=gcp.candidate_distance,
        min_candidates=gcp.min_candidates, presence=[bits for _, bits in job.inputs],
        vcd=cosim._vcd(job), **cosim._engine())
    return plans, sum(cycles)


def _simulate_local_cp(cosim: CoSim, job: _Job):
    from ..components.local_cp.sim import simulate_local_cp
    replay = cosim._run.replay
    stats, _, cycles = simulate_local_cp(job.inputs, die=job.die, num_sm_slots=_SM_SLOTS,
                                         num_experts=replay.E, num_dies=replay.N,
                                         vcd=cosim._vcd(job), **cosim._engine())
    return stats, cycles


_SIMULATE = {"pdu": _simulate_pdu, "atu": _simulate_atu, "edt": _simulate_edt,
             "predictor": _simulate_predictor, "allocator": _simulate_allocator,
             "local_cp": _simulate_local_cp}
