"""Strategies: how a layer's expert counts become tasks, and whether prediction runs.

A strategy is an object in a registry: an :class:`Allocation` (counts -> plan) and a flag for
the prediction path. The paper's five (docs/replay.md) are registered here; a user adds one with
:func:`register_strategy` without touching the replay loop::

    from hwmodel.system.strategies import FirstAppearance, Strategy, register_strategy
    register_strategy(Strategy("rr0", FirstAppearance(offset=0), predicts=False,
                               description="round robin from die 0"))

An installed package adds strategies through the entry point group ``hwmodel.strategies``
(:data:`ENTRY_POINT_GROUP`): each entry point names a :class:`Strategy`, or a callable
returning one or a list of them. The registry loads them the first time it is asked for a
name, so ``hwmodel replay --strategy``, sweeps and the report all see them::

    # pyproject.toml of the plug-in package
    [project.entry-points."hwmodel.strategies"]
    rr0 = "my_package.strategies:RR0"
"""

from __future__ import annotations

from importlib.metadata import entry_points
from typing import Protocol

import attrs
import numpy as np

__all__ = ["ENTRY_POINT_GROUP", "PAPER_STRATEGIES", "Algorithm1", "Allocation", "FirstAppearance",
           "HomeDies", "LayerView", "Strategy", "get_strategy", "load_plugins",
           "register_strategy", "strategy_names"]

#: Entry point group through which installed packages register strategies.
ENTRY_POINT_GROUP = "hwmodel.strategies"


@attrs.frozen
class LayerView:
    """What an allocation may read about one (iteration, MoE layer).

    Members
    -------
    layer : int
        MoE layer index (0-based among the MoE layers).
    counts : numpy.ndarray
        Tokens per expert in this layer, over the whole batch.
    rows : numpy.ndarray
        The iteration's expert ids, (tokens, MoE layers, top-k), requests in batch order.
    workload : hwmodel.system.workload.Workload
    home : numpy.ndarray
        Home die of every expert.
    live_dies : numpy.ndarray
        Ids of the dies that work, ascending.
    global_cp : hwmodel.components.global_cp.GlobalCPTwin
        The Global CP twin (EDT, allocator, predictor).
    """

    layer: int
    counts: np.ndarray = attrs.field(eq=False)
    rows: np.ndarray = attrs.field(eq=False)
    workload: object
    home: np.ndarray = attrs.field(eq=False)
    live_dies: np.ndarray = attrs.field(eq=False)
    global_cp: object


class Allocation(Protocol):
    """Turns a layer's counts into a plan: arrays (expert, die, tokens), sorted by expert."""

    def plan(self, view: LayerView) -> tuple[np.ndarray, np.ndarray, np.ndarray]: ...


def _sorted_plan(order, dies, counts):
    """Plan of the experts ``order`` on ``dies``, sorted by expert id (the artefact's order)."""
    sort = np.argsort(order, kind="stable")
    experts = order[sort].astype(np.int64)
    return experts, np.asarray(dies, np.int64)[sort], counts[experts].astype(np.int64)


@attrs.frozen
class FirstAppearance:
    """The i-th expert to appear in the layer (requests, tokens, ids in order) runs on live die
    ``(i + offset) mod live`` wherever its weights live (``base``: offset 7)."""

    offset: int = 7

    def plan(self, view: LayerView):
        order = view.workload.first_order(view.rows, view.layer)
        live = view.live_dies
        return _sorted_plan(order, live[(np.arange(len(order)) + self.offset) % len(live)],
                            view.counts)


@attrs.frozen
class HomeDies:
    """Every expert runs on its home die (expert parallelism, ``ep``)."""

    def plan(self, view: LayerView):
        order = view.workload.first_order(view.rows, view.layer)
        return _sorted_plan(order, view.home[order], view.counts)


@attrs.frozen
class Algorithm1:
    """The Global CP's task allocation (the paper's Algorithm 1, run by its twin)."""

    def plan(self, view: LayerView):
        return view.global_cp.allocate_arrays(view.layer, view.counts)


@attrs.frozen
class Strategy:
    """A named strategy: an allocation, and whether the prediction path runs.

    ``uses_global_cp`` (Algorithm 1 or the prediction path) and ``predicts`` are what the
    replay, the run order of a pool (prediction runs are the longest) and the report read;
    nothing looks at the name.
    """

    name: str
    allocation: Allocation
    predicts: bool
    description: str = ""

    @property
    def allocates(self) -> bool:
        """Whether the Global CP's Algorithm 1 plans the tasks."""
        return isinstance(self.allocation, Algorithm1)

    @property
    def uses_global_cp(self) -> bool:
        """Whether the Global CP twin takes part: Algorithm 1 or the prediction path."""
        return self.predicts or self.allocates


_REGISTRY: dict[str, Strategy] = {}
_PLUGINS_LOADED = False


def register_strategy(strategy: Strategy) -> Strategy:
    """Add ``strategy`` to the registry (its name must be new)."""
    if not isinstance(strategy, Strategy):
        raise TypeError(f"strategy must be a Strategy, not {strategy!r}")
    if strategy.name in _REGISTRY:
        raise ValueError(f"a strategy named {strategy.name!r} is registered already")
    _REGISTRY[strategy.name] = strategy
    return strategy


def _strategies_of(entry_point) -> list[Strategy]:
    """The strategies an entry point names (a Strategy, or a callable returning one or a
    list); a ValueError naming the entry point if it cannot be loaded or names none."""
    where = f"entry point {entry_point.name} = {entry_point.value!r} ({ENTRY_POINT_GROUP})"
    try:
        found = entry_point.load()
        if callable(found) and not isinstance(found, Strategy):
            found = found()
    except Exception as error:  # noqa: BLE001 - any plug-in failure becomes one input error
        raise ValueError(f"{where}: cannot be loaded: {type(error).__name__}: {error}") \
            from None
    found = [found] if isinstance(found, Strategy) else found
    if not isinstance(found, (list, tuple)) or not found or not all(
            isinstance(s, Strategy) for s in found):
        raise ValueError(f"{where}: gives {found!r}; expected a Strategy or a list of them")
    return list(found)


def load_plugins() -> None:
    """Register the strategies of the installed packages' ``hwmodel.strategies`` entry
    points, in the order of their names, once per process (later calls do nothing)."""
    global _PLUGINS_LOADED
    if _PLUGINS_LOADED:
        return
    _PLUGINS_LOADED = True
    for entry_point in sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
        for strategy in _strategies_of(entry_point):
            if _REGISTRY.get(strategy.name) not in (None, strategy):
                raise ValueError(f"entry point {entry_point.name} ({ENTRY_POINT_GROUP}): "
                                 f"a strategy named {strategy.name!r} is registered already")
            _REGISTRY[strategy.name] = strategy


def get_strategy(name_or_strategy) -> Strategy:
    """The registered strategy of that name (a :class:`Strategy` passes through); plug-ins
    included."""
    if isinstance(name_or_strategy, Strategy):
        return name_or_strategy
    if name_or_strategy not in _REGISTRY:
        load_plugins()
    try:
        return _REGISTRY[name_or_strategy]
    except (KeyError, TypeError):
        raise ValueError(f"unknown strategy {name_or_strategy!r}; expected one of "
                         f"{', '.join(_REGISTRY)}") from None


def strategy_names() -> tuple[str, ...]:
    """Names of the registered strategies (plug-ins included), in registration order: the
    paper's five first."""
    load_plugins()
    return tuple(_REGISTRY)


for _strategy in (
        Strategy("base", FirstAppearance(7), False, "the wafer as one big GPU"),
        Strategy("ep", HomeDies(), False, "expert parallelism: every expert on its home die"),
        Strategy("allo", Algorithm1(), False, "Algorithm 1 task allocation"),
        Strategy("pred", FirstAppearance(7), True, "as base, with prediction-driven copies"),
        Strategy("allo+pred", Algorithm1(), True, "Algorithm 1 with prediction")):
    register_strategy(_strategy)

#: The paper's five strategies (docs/replay.md), in the order of its Fig. 12.
PAPER_STRATEGIES = tuple(_REGISTRY)
