"""The replay runs of the command line: one typed job per (wafer, strategy), the trace it
reads and the summary table of its results.

``hwmodel replay`` (:mod:`hwmodel.cli.replay`) and its co-simulation (:mod:`hwmodel.cli.cosim`)
both read from here; neither imports the other's private names.
"""

from __future__ import annotations

import attrs

from ..params import WaferParams

__all__ = ["DEFAULT_BATCH", "ReplayJob", "open_trace", "summary_table", "wafer_params_of"]

#: Requests of the built-in synthetic batch when no ``--trace`` is given.
DEFAULT_BATCH = 64


def open_trace(trace, batch, model_name):
    """``(store, model)`` of a trace source (None: the built-in synthetic batch of
    ``batch`` requests, :data:`DEFAULT_BATCH` when None). Request JSON is parsed once per
    content and machine (:func:`hwmodel.sweep.cache.cached_batch`).

    Raises
    ------
    ValueError
        If the trace names no model preset and none is given.
    """
    from ..models import load_model
    from ..sweep.cache import cached_batch
    if trace is None:
        from ..traces.synth import default_batch
        store = default_batch(model_name or "llama4-maverick", requests=batch or DEFAULT_BATCH)
    else:
        store = cached_batch(trace, model=model_name, limit=batch)
    name = model_name or store.model
    if not name:
        raise ValueError(f"the trace {trace} names no model preset; pass --model")
    return store, load_model(name)


def wafer_params_of(wafer) -> WaferParams:
    """What a job carries of a built wafer: the parameters it was built from (per-die
    overrides as written) with the graph's liveness (``alive`` flags), the one source of which
    dies and links work."""
    graph = wafer.graph_params()
    return attrs.evolve(wafer.params, dead_dies=graph.dead_dies, dead_links=graph.dead_links)


@attrs.frozen
class ReplayJob:
    """One run of ``hwmodel replay``: a trace, a wafer, a strategy, replay parameters.

    The job carries its wafer's parameters (loaded once in the parent), so a worker builds the
    wafer once from them and never loads it again by name. Jobs pickle to the pool's workers.

    Members
    -------
    trace : str or None
        Trace source (None: the built-in synthetic batch).
    batch : int or None
        First requests of the trace to use (None: all).
    model : str or None
        Model preset or YAML (None: inferred from the trace).
    wafer_name : str
        The wafer as the user named it (preset or YAML path): the run's label.
    wafer : WaferParams
        The wafer's parameters.
    strategy : str
        A registered strategy's name.
    params : ReplayParams or None
    """

    trace: str | None
    batch: int | None
    model: str | None
    wafer_name: str
    wafer: WaferParams = attrs.field(repr=False)
    strategy: str
    params: object = None

    @property
    def trace_key(self) -> tuple:
        """What identifies the trace the job reads: jobs with equal keys share one read."""
        return (self.trace, self.batch, self.model)

    def open(self):
        """``(store, model)`` of the job's trace (:func:`open_trace`)."""
        return open_trace(*self.trace_key)

    def run(self, opened=None, built=None):
        """The job's :class:`~hwmodel.system.ReplayResult`.

        Parameters
        ----------
        opened : tuple, optional
            ``(store, model)`` of its trace if the caller has it open already.
        built : hwmodel.topologies.wafer.Wafer, optional
            Its wafer if the caller has built it already (else built here, once).
        """
        from ..system import Replay
        from ..topologies.wafer import build_wafer
        store, model = opened if opened is not None else self.open()
        wafer = built if built is not None else build_wafer(self.wafer)
        return Replay(wafer=wafer, model=model, store=store,
                      params=self.params).run(self.strategy)


def _labels(results, names):
    """Per result, the wafer name it ran on (``names``), else its mesh ``XxY``."""
    if names is None:
        return [f"{r.mesh_x}x{r.mesh_y}" for r in results]
    if len(names) != len(results):
        raise ValueError(f"{len(names)} wafer names for {len(results)} results")
    return list(names)


def summary_table(results, names=None) -> str:
    """One screen: per run, time, throughput, hops, and speedup/hop reduction over the same
    wafer's ``base`` run. ``names`` (one wafer name per result) keeps two wafers of the same
    mesh shape apart; the mesh columns and the strategy's CSV name are those of the CSV."""
    from ..system.results import ARTEFACT_NAMES
    labels = _labels(results, names)
    base = {w: r for w, r in zip(labels, results) if r.strategy == "base"}
    width = max(6, *(len(w) for w in labels)) if labels else 6
    lines = [(f"{'wafer':<{width}} {'x_chips':>7} {'y_chips':>7} {'strategy':>10} "
              f"{'(in CSV)':>14} {'time ms':>10} {'decode ms':>10} {'tok/s':>8} {'hops':>9} "
              f"{'speedup':>8} {'hop red.':>9}")]
    for wafer, r in zip(labels, results):
        b = base.get(wafer)
        speed = f"{r.throughput / b.throughput:.2f}x" if b and b.throughput else "-"
        red = (f"{b.hops / r.hops:.0f}x" if b and r.hops else ("no hops" if b else "-"))
        csv_name = ARTEFACT_NAMES.get(r.strategy, r.strategy)
        lines.append(f"{wafer:<{width}} {r.mesh_x:>7} {r.mesh_y:>7} {r.strategy:>10} "
                     f"{csv_name:>14} {r.time_ns / 1e6:10.2f} {r.decode_ns / 1e6:10.2f} "
                     f"{r.throughput:8.0f} {r.hops:9d} {speed:>8} {red:>9}")
    return "\n".join(lines)
