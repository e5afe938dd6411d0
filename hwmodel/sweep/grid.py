"""Sweep grids: a ``sweep:`` YAML mapping expanded into independent replay runs.

A grid names models, trace sources (files or synthesis specs), wafers (presets or user YAMLs),
batch sizes, strategies and any :class:`~hwmodel.system.ReplayParams` field as an axis; the runs
are the cross product, in a fixed order (models, traces, batches, wafers, params, strategies).
"""

from __future__ import annotations

import itertools
from pathlib import Path

import attrs
import yaml

from ..config import ConfigError

__all__ = ["Grid", "Run", "TraceSpec", "load_grid", "parse_grid"]

_KEYS = ("models", "traces", "batches", "wafers", "strategies", "params", "seed",
         "ignore_capacity")

#: Most runs a grid may expand to. The paper's grid is 120 runs of several seconds each; 10,000
#: is days of work on a workstation, and a typo (an axis of thousands) is refused with its count
#: before the runs are listed, instead of a driver that fills the memory.
MAX_GRID_RUNS = 10_000


@attrs.frozen
class TraceSpec:
    """Where a run's requests come from: a trace ``path`` or, with ``path=None``, synthesis
    (built in, or fitted to the trace at ``like`` and reshaped to the model).

    ``batch`` is the request count: synthesised requests, or the first requests of the file.
    """

    model: str
    batch: int
    path: str | None = None
    seed: int = 0
    like: str | None = None

    def label(self) -> str:
        if self.path is not None:
            source = self.path
        elif self.like is not None:
            source = f"synth(like={self.like},seed={self.seed})"
        else:
            source = f"synth(seed={self.seed})"
        return f"{self.model}/{source}/{self.batch}"


@attrs.frozen
class Run:
    """One replay: a trace, a wafer (preset name or YAML path), a strategy, replay parameters."""

    trace: TraceSpec
    wafer: str
    strategy: str
    params: tuple = ()  # sorted (field, value) pairs of the ReplayParams overrides

    def params_dict(self) -> dict:
        return dict(self.params)


@attrs.frozen
class Grid:
    """An expanded grid: its runs, in order, and the file it came from.

    ``ignore_capacity`` runs a model whose experts exceed a wafer's usable HBM (as ``hwmodel
    replay --ignore-capacity``; the paper replays Kimi-K2 so); otherwise such a run is stored
    as failed with the reason. It changes no result, so it is not part of a run's key.
    """

    runs: tuple
    source: str
    ignore_capacity: bool = False


def _list(section: dict, key: str, where: str, default=None) -> list:
    value = section.get(key, default)
    if value is None:
        raise ConfigError(f"sweep.{key}", "missing; expected a list", where)
    values = value if isinstance(value, list) else [value]
    if not values:
        raise ConfigError(f"sweep.{key}", "expected a non-empty list, not []", where)
    _once(values, f"sweep.{key}", where)
    return values


def _once(values, key: str, where) -> None:
    """Refuse a value listed twice: its runs would be one run, counted twice."""
    seen = []
    for value in values:
        if value in seen:
            raise ConfigError(key, f"{value!r} listed twice; expected each value once", where)
        seen.append(value)


def _positive_ints(values, key, where) -> list[int]:
    for value in values:
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise ConfigError(f"sweep.{key}", f"expected positive integers, not {value!r}", where)
    return list(values)


def _existing(entry, base: Path, key: str, where) -> str:
    path = Path(entry) if Path(entry).is_absolute() else base / entry
    if not path.exists():
        raise ConfigError(key, f"no trace source at {str(path)!r}", where)
    return str(path)


def _trace_sources(section, where, base: Path) -> list[tuple[str | None, str | None]]:
    """(path, like) per entry: ``synth`` (built-in synthesis), ``{synth_like: SOURCE}``
    (synthesis fitted to a trace) or a trace source path (relative to the grid file)."""
    sources = []
    for entry in _list(section, "traces", where, default=["synth"]):
        if entry == "synth":
            sources.append((None, None))
        elif isinstance(entry, dict) and list(entry) == ["synth_like"]:
            like = _existing(str(entry["synth_like"]), base, "sweep.traces.synth_like", where)
            sources.append((None, like))
        elif isinstance(entry, str) and entry:
            sources.append((_existing(entry, base, "sweep.traces", where), None))
        else:
            raise ConfigError("sweep.traces", f"expected 'synth', {{synth_like: SOURCE}} or a "
                              f"trace source path, not {entry!r}", where)
    return sources


def _preset_or_path(name, base: Path) -> str:
    """A preset name as is; a YAML file relative to the grid file's folder."""
    name = str(name)
    if name.endswith((".yaml", ".yml")) and not Path(name).is_absolute():
        return str(base / name)
    return name


def _check_names(section, where, base: Path):
    from ..models import load_model
    from ..params import load_wafer
    from ..system import STRATEGIES, strategy_names
    models = [_preset_or_path(m, base) for m in _list(section, "models", where)]
    for name in models:
        load_model(name)
    wafers = [_preset_or_path(w, base) for w in _list(section, "wafers", where)]
    for name in wafers:
        load_wafer(name)
    strategies = [str(s) for s in _list(section, "strategies", where, default=list(STRATEGIES))]
    known = strategy_names()   # the registry's, plug-ins included
    for s in strategies:
        if s not in known:
            raise ConfigError("sweep.strategies", f"unknown strategy {s!r}; expected one of "
                              f"{', '.join(known)}", where)
    return models, wafers, strategies


def _param_axes(section, where) -> list[tuple]:
    """Every combination of the ``params`` axes, each as sorted (field, value) pairs."""
    from ..config import from_dict
    from ..system import ReplayParams
    params = section.get("params") or {}
    if not isinstance(params, dict):
        raise ConfigError("sweep.params", f"expected a mapping of ReplayParams fields, not "
                          f"{params!r}", where)
    names = sorted(params)
    axes = [params[n] if isinstance(params[n], list) else [params[n]] for n in names]
    for name, axis in zip(names, axes):
        _once(axis, f"sweep.params.{name}", where)
    combos = []
    for values in itertools.product(*axes):
        combo = dict(zip(names, values))
        from_dict(ReplayParams, combo, path="sweep.params", source=where)  # validates
        combos.append(tuple(sorted(combo.items())))
    return combos


def _check_size(section, axes, where) -> None:
    """Refuse a grid of more than :data:`MAX_GRID_RUNS` runs, counted before expanding it."""
    params = section.get("params")
    params = params if isinstance(params, dict) else {}
    total = 1
    for length in [len(a) for a in axes] + [len(v) if isinstance(v, list) else 1
                                            for v in params.values()]:
        total *= length
    if total > MAX_GRID_RUNS:
        raise ConfigError("sweep", f"the grid expands to {total:,} runs; expected at most "
                          f"{MAX_GRID_RUNS:,} (split it into several grids)", where)


def parse_grid(data, where: str = "<grid>", base: Path | str = ".") -> Grid:
    """Expand a parsed ``{'sweep': {...}}`` mapping into a :class:`Grid`.

    Raises
    ------
    ConfigError
        A missing or unknown key, or a bad value, naming the file and the YAML key.
    """
    if not isinstance(data, dict) or not isinstance(data.get("sweep"), dict):
        raise ConfigError("sweep", "expected a top-level 'sweep:' mapping", where)
    section = data["sweep"]
    for key in section:
        if key not in _KEYS:
            raise ConfigError(f"sweep.{key}", f"unknown key; expected one of {', '.join(_KEYS)}",
                              where)
    base = Path(base)
    models, wafers, strategies = _check_names(section, where, base)
    sources = _trace_sources(section, where, base)
    batches = _positive_ints(_list(section, "batches", where), "batches", where)
    seed = section.get("seed", 0)
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ConfigError("sweep.seed", f"expected an integer >= 0, not {seed!r}", where)
    _check_size(section, [models, sources, batches, wafers, strategies], where)
    ignore_capacity = section.get("ignore_capacity", False)
    if not isinstance(ignore_capacity, bool):
        raise ConfigError("sweep.ignore_capacity", f"expected true or false, not "
                          f"{ignore_capacity!r}", where)
    combos = _param_axes(section, where)
    runs = tuple(Run(TraceSpec(model, batch, path, seed, like), wafer, strategy, combo)
                 for model in models for path, like in sources for batch in batches
                 for wafer in wafers for combo in combos for strategy in strategies)
    return Grid(runs=runs, source=where, ignore_capacity=ignore_capacity)


def load_grid(path) -> Grid:
    """Read and expand a grid YAML file (relative paths inside are relative to it)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such grid file")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as error:
        raise ConfigError("", f"not valid YAML ({error})".replace("\n", " "), str(path))
    return parse_grid(data, str(path), path.parent)
