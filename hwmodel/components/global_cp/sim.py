"""Simulation harness of the Global CP's RTL (:mod:`.rtl`: the EDT and the top-n predictor;
:mod:`.allocator_rtl`: Algorithm 1): their transactions through Amaranth's simulator or the
compiled one. Kept apart from the designs so that the system model, which imports the twins,
loads no simulator."""


import numpy as np

from ...checks import check_int, check_int_array
from ...rtlsim import StreamSink, StreamSource, check_engine, run_streams
from ...tb import run_command_stream, run_scenario, stream_get, stream_put
from .allocator import CostROM
from .allocator_rtl import Allocator
from .edt import home_dies
from .params import (
    HEATMAP_COUNT_BITS,
    PAPER,
    PAPER_BLOCK_SIZE,
    PAPER_CANDIDATE_DISTANCE,
    PAPER_MIN_CANDIDATES,
)
from .rtl import EDT, EDTOp, TopNPredictor

__all__ = ["simulate_allocator", "simulate_edt", "simulate_predict", "simulate_top_n"]

def _predictor_beats(groups, num_experts: int, count_bits: int):
    """The row stream of :func:`simulate_predict`, checked: every group's counts, row after
    row (int64), and the ``last`` flag of each count (1 on its group's last row)."""
    counts, last = [], []
    for g, group in enumerate(groups):
        if len(group) == 0:
            raise ValueError(f"groups[{g}] has no row (a die without experts needs no call)")
        for r, row in enumerate(group):
            if len(row) != num_experts:
                raise ValueError(f"groups[{g}][{r}] has {len(row)} counts, expected "
                                 f"{num_experts}")
        flat = np.asarray(group).reshape(-1)
        try:
            flat = check_int_array("counts", flat, 0, 1 << count_bits)
        except (TypeError, ValueError):     # name the first bad count as the rows hold it
            for r, row in enumerate(group):
                for j, c in enumerate(row):
                    check_int(f"groups[{g}][{r}][{j}]", c, 0, 1 << count_bits)
            raise
        flags = np.zeros(len(flat), dtype=np.int64)
        flags[-num_experts:] = 1
        counts.append(flat)
        last.append(flags)
    if not counts:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    return np.concatenate(counts), np.concatenate(last)


def simulate_predict(groups, num_experts, top_n=None, count_bits=HEATMAP_COUNT_BITS, *, vcd=None,
                     engine="pysim"):
    """Push per-die groups of heatmap rows through :class:`TopNPredictor`.

    Parameters
    ----------
    groups : sequence of sequence of rows
        Per die, the heatmap rows (``num_experts`` counts each) of the experts it runs (at
        least one row per group).
    engine : {"pysim", "cxxrtl"}
        Amaranth's Python simulator or the compiled one (:mod:`hwmodel.rtlsim`).

    Returns
    -------
    bitmaps : list of int
        Per group, the ``cp_en`` bitmap (bit ``j``: expert ``j``).
    cycles : int
    """
    check_engine(engine)    # before the design exists: an unused design warns
    counts, last = _predictor_beats(groups, num_experts, count_bits)
    # built after the checks: a design never simulated warns (UnusedElaboratable)
    dut = TopNPredictor(num_experts, top_n, count_bits)
    rows = len(counts) // num_experts
    limit = 100 + rows * (num_experts + 2) + 2 * len(groups)
    if engine == "cxxrtl":
        run = run_streams(dut, [StreamSource("row", {"count": counts, "last": last})],
                          [StreamSink("top", len(groups))], max_cycles=limit, vcd=vcd)
        return run.received["top"], run.cycles
    beats = [{"count": c, "last": f} for c, f in zip(counts.tolist(), last.tolist())]
    bitmaps = []

    async def producer(ctx):
        for beat in beats:
            await stream_put(ctx, dut.row, beat)

    async def consumer(ctx):
        for _ in groups:
            bitmaps.append(int(await stream_get(ctx, dut.top)))

    cycles = run_scenario(dut, producer, consumer, vcd=vcd, max_cycles=limit)
    return bitmaps, cycles


def simulate_top_n(rows, num_experts, top_n=None, count_bits=HEATMAP_COUNT_BITS, *, vcd=None,
                   engine="pysim"):
    """Top-n of each heatmap row alone (one row per group of :func:`simulate_predict`).

    Returns
    -------
    chosen : list of tuple of int
        Per row, the chosen expert ids in ascending order.
    cycles : int
    """
    bitmaps, cycles = simulate_predict([[row] for row in rows], num_experts, top_n, count_bits,
                                       vcd=vcd, engine=engine)
    return [tuple(j for j in range(num_experts) if b >> j & 1) for b in bitmaps], cycles


def simulate_edt(transactions, num_experts=PAPER.entries, *, num_dies=PAPER.num_dies, vcd=None,
                 engine="pysim"):
    """Run EDT transactions through :class:`EDT`; the twin's EDT calls, one command each.

    Parameters
    ----------
    transactions : sequence of tuple
        ``("write", expert, home, presence)`` (an entry loaded at a layer switch),
        ``("read", expert)``, ``("set_present", expert, die)`` or
        ``("clear_present", expert, die)``.
    num_experts : int
        Table entries.
    num_dies : int
        Dies on the wafer (home and die fields, presence bitmap: :class:`~.params.EDTLayout`).
    engine : {"pysim", "cxxrtl"}
        Amaranth's Python simulator or the compiled one (:mod:`hwmodel.rtlsim`).

    Returns
    -------
    reads : list of (int, int)
        ``(home, presence)`` of every ``read``, in order.
    cycles : int

    Raises
    ------
    ValueError
        On an unknown operation, an out-of-range field, or a ``clear_present`` of the home die
        of the entry as last written (entries are all zero before their first ``write``, so
        home 0): the twin's :meth:`GlobalCPTwin.edt_clear_present` raises there, and the RTL,
        which has no error response, would leave the home bit set. Checked before the
        simulation starts, with the twin's message.
    """
    check_engine(engine)    # before the design exists: an unused design warns
    columns = {name: [] for name in ("op", "expert", "home", "presence", "die")}

    def command(op, expert, home=0, presence=0, die=0):
        for name, value in zip(columns, (op.value, expert, home, presence, die)):
            columns[name].append(value)
    homes: dict[int, int] = {}    # the RTL table's home field per entry (reset content: 0)
    for i, t in enumerate(transactions):
        if not isinstance(t, (tuple, list)) or not t:
            raise ValueError(f"transactions[{i}] must be a tuple (op, expert, ...), not {t!r}")
        op, *rest = t
        arity = {"write": 3, "read": 1, "set_present": 2, "clear_present": 2}.get(op)
        if arity is None:
            raise ValueError(f"transactions[{i}]: EDT transaction must start with 'write', "
                             f"'read', 'set_present' or 'clear_present', not {t!r}")
        if len(rest) != arity:
            raise ValueError(f"transactions[{i}]: {op!r} takes {arity} fields, not {t!r}")
        expert = check_int("expert", rest[0], 0, num_experts)
        if op == "write":
            home = check_int("home", rest[1], 0, num_dies)
            command(EDTOp.WRITE, expert, home, check_int("presence", rest[2], 0, 1 << num_dies))
            homes[expert] = home
        elif op == "read":
            command(EDTOp.READ, expert)
        else:
            die = check_int("die", rest[1], 0, num_dies)
            if op == "clear_present" and die == homes.get(expert, 0):
                raise ValueError(f"die {die} is the home of expert {expert}: its copy is not a "
                                 f"replica and cannot be cleared")
            command(EDTOp.SET_PRESENT if op == "set_present" else EDTOp.CLEAR_PRESENT, expert,
                    die=die)
    reads = columns["op"].count(EDTOp.READ.value)
    # built after the checks: a design never simulated warns (UnusedElaboratable)
    dut = EDT(num_experts, num_dies=num_dies)
    return run_command_stream(dut, columns, reads,
                              lambda entry: (int(entry.home), int(entry.presence)),
                              cycles_per_command=3, vcd=vcd, engine=engine)


def simulate_allocator(layers, *, mesh_x: int, mesh_y: int, num_experts: int, costs: CostROM,
                       block_size: int = PAPER_BLOCK_SIZE,
                       candidate_distance: int = PAPER_CANDIDATE_DISTANCE,
                       min_candidates: int = PAPER_MIN_CANDIDATES, presence=None,
                       count_bits: int = 24,
                       vcd=None, engine: str = "pysim"):
    """Run the layers' token counts through :class:`Allocator` (one simulation).

    Parameters
    ----------
    layers : sequence of sequence of int
        Per layer, ``num_experts`` token counts (at least one non-zero).
    presence : sequence of sequence of int, optional
        Per layer, the EDT presence bitmap of every expert (default: home die only).
    engine : {"pysim", "cxxrtl"}
        Amaranth's Python simulator or the compiled one (:mod:`hwmodel.rtlsim`).

    Returns
    -------
    plans : list of list of (expert, die, tokens)
        Per layer, in the twin's plan order.
    cycles : list of int
        Per layer, cycles from its first item accepted to its last task sent.
    """
    check_engine(engine)    # before the design exists: an unused design warns
    n_dies = check_int("mesh_x", mesh_x, 1) * check_int("mesh_y", mesh_y, 1)
    home = home_dies(num_experts, n_dies)
    items = []
    for li, counts in enumerate(layers):
        counts = [check_int(f"layers[{li}][{e}]", c, 0, 1 << count_bits)
                  for e, c in enumerate(counts)]
        if len(counts) != num_experts:
            raise ValueError(f"layers[{li}] has {len(counts)} counts, expected {num_experts}")
        active = [e for e, c in enumerate(counts) if c]
        if not active:
            raise ValueError(f"layers[{li}] has no active expert (the CP skips such layers)")
        layer_items = []
        for e in active:
            bits = (1 << int(home[e])) if presence is None else int(presence[li][e])
            if not bits >> int(home[e]) & 1 or not 0 < bits < 1 << n_dies:
                raise ValueError(f"presence[{li}][{e}] = {bits:#x} must hold home die "
                                 f"{int(home[e])} and only dies below {n_dies}")
            layer_items.append({"expert": e, "tokens": counts[e], "home": int(home[e]),
                                "presence": bits, "last": int(e == active[-1])})
        items.append(layer_items)
    # built after the checks: a design never simulated would warn (UnusedElaboratable)
    dut = Allocator(mesh_x, mesh_y, num_experts, costs, block_size=block_size,
                    candidate_distance=candidate_distance, min_candidates=min_candidates,
                    count_bits=count_bits)
    total_blocks = sum(c // block_size + 1 for layer in layers for c in layer if c)
    limit = 200 + sum(len(li) * (70 + 2 * n_dies) for li in items) + total_blocks * (n_dies + 2)
    if engine == "cxxrtl":
        return _compiled_allocator(dut, items, limit, vcd)
    plans = [[] for _ in layers]
    first_accept = []
    last_task = []

    # Producer and consumer count their own clock edges (both start at edge 0), so a layer's
    # cycles are exact: from the edge its first item is accepted to the edge of its last task.
    async def producer(ctx):
        edge = 0
        for layer_items in items:
            for n, payload in enumerate(layer_items):
                ctx.set(dut.experts.payload, payload)
                ctx.set(dut.experts.valid, 1)
                while True:
                    _, _, ready = await ctx.tick().sample(dut.experts.ready)
                    edge += 1
                    if ready:
                        break
                if n == 0:
                    first_accept.append(edge)
                ctx.set(dut.experts.valid, 0)

    async def consumer(ctx):
        edge = 0
        ctx.set(dut.tasks.ready, 1)
        for li in range(len(items)):
            while True:
                _, _, valid, task = await ctx.tick().sample(dut.tasks.valid, dut.tasks.payload)
                edge += 1
                if not valid:
                    continue
                plans[li].append((int(task.expert), int(task.die), int(task.tokens)))
                if task.last:
                    last_task.append(edge)
                    break

    run_scenario(dut, producer, consumer, max_cycles=limit, vcd=vcd)
    return plans, [b - a + 1 for a, b in zip(first_accept, last_task)]


def _compiled_allocator(dut, items, limit, vcd):
    """:func:`simulate_allocator`'s run on the compiled design: one source of expert items,
    one sink of tasks counted by their ``last`` bit, per-layer cycles from the transfer edges."""
    flat = [payload for layer_items in items for payload in layer_items]
    run = run_streams(dut, [StreamSource("experts", flat)],
                      [StreamSink("tasks", len(items), end_field="last")],
                      max_cycles=limit, vcd=vcd)
    plans, last_task, layer = [[] for _ in items], [], 0
    for task, edge in zip(run.received["tasks"], run.received_edges["tasks"]):
        plans[layer].append((int(task.expert), int(task.die), int(task.tokens)))
        if task.last:
            last_task.append(edge)
            layer += 1
    starts = np.cumsum([0] + [len(layer_items) for layer_items in items[:-1]])
    first_accept = [run.sent_edges["experts"][start] for start in starts]
    return plans, [b - a + 1 for a, b in zip(first_accept, last_task)]
