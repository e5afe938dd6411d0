"""Compiled RTL simulation of the units (Yosys CXXRTL), driven through their stream ports.

A unit's ``wiring.Component`` is exported to RTLIL, turned into C++ by Yosys ``write_cxxrtl``
and compiled with ``g++`` together with a generic stream driver (:mod:`.build`, cached on disk).
:func:`run_streams` then plays the pysim testbench protocol of :mod:`hwmodel.tb`
(``stream_put`` / ``stream_get`` / ``run_scenario``) in C++: same transfers, same cycle count,
two to three orders of magnitude faster.

* :class:`StreamSource`: payloads pushed back to back into an ``In`` stream (``stream_put``);
* :class:`StreamSink`: payloads taken from an ``Out`` stream (``stream_get``), optionally with
  back-pressure or a busy gap ending in a one-cycle pulse (an SM model);
* :func:`run_streams`: run until every source is empty and every counted sink full.
"""

from __future__ import annotations

import ctypes
import pickle
import time
from collections import namedtuple
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path

import numpy as np
from amaranth.hdl import Shape, ShapeCastable
from amaranth.lib import data

from ..checks import check_int, check_int_array
from . import build
from .build import RTLSimError, cache_dir, compile_component, load_library, optimisation

__all__ = ["ENGINES", "PROFILE", "RTLSimError", "StreamRun", "StreamSink", "StreamSource",
           "build", "cache_dir", "check_engine", "compile_component", "design_identity",
           "optimisation", "run_streams"]

#: Totals over every :func:`run_streams` of this process (read by benchmarks/bench_rtlsim.py):
#: ``runs``, simulated ``cycles`` and ``seconds`` of compiled simulation alone.
PROFILE = {"runs": 0, "cycles": 0, "seconds": 0.0}

#: Simulation engines accepted by the units' ``simulate_*`` functions.
ENGINES = ("pysim", "cxxrtl")


def check_engine(engine) -> str:
    """``engine`` if it is one of :data:`ENGINES`, else ``ValueError`` naming both."""
    if engine not in ENGINES:
        raise ValueError(f"engine must be one of {', '.join(ENGINES)}, not {engine!r}")
    return engine


@dataclass(frozen=True)
class StreamSource:
    """Payloads pushed into the ``In`` stream ``name`` back to back, as ``stream_put`` does.

    ``name`` is the port path as Amaranth names it: ``"cmd"``, ``"sm__0"`` (``dut.sm[0]``).
    Payloads are dicts (struct layouts) or ints (plain shapes); or, in bulk, one dict of
    equal-length integer arrays, one per field (fields not given are 0), or one integer array
    (plain shapes): packed with numpy, not one Python call per payload.
    """

    name: str
    payloads: Sequence | Mapping

    def __len__(self) -> int:
        """The number of payloads."""
        if isinstance(self.payloads, Mapping):
            return len(next(iter(self.payloads.values()))) if self.payloads else 0
        return len(self.payloads)


@dataclass(frozen=True)
class StreamSink:
    """Payloads taken from the ``Out`` stream ``name``, as ``stream_get`` does.

    Parameters
    ----------
    name : str
        Port path (``"resp"``, ``"sm__2"``).
    count : int or None
        Payloads to collect before this sink is done; ``None``: a background sink that never
        finishes (the run ends without it).
    end_field : str or None
        If set, ``count`` counts only the payloads whose 1-bit field ``end_field`` is high
        (e.g. ``"last"``: one per layer); every payload is still collected.
    initial_wait : int
        Cycles with ``ready`` low before the first transfer.
    gap : int
        Cycles with ``ready`` low after each transfer (``initial_wait = gap = n``: the
        back-pressure of :func:`hwmodel.tb.run_command_stream`).
    pulse : (str, int) or None
        Input port and bit raised during the last cycle of each gap (an SM's ``sm_done``).
    """

    name: str
    count: int | None
    end_field: str | None = None
    initial_wait: int = 0
    gap: int = 0
    pulse: tuple[str, int] | None = None


@dataclass
class StreamRun:
    """Result of :func:`run_streams`.

    Members
    -------
    cycles : int
        Clock edges until the last source or counted sink finished (``run_scenario``'s count).
    received : dict of str to list
        Per sink, its payloads: ints for plain shapes, named tuples of ints for structs of
        unsigned fields (read ``r.hit`` as on pysim's ``data.Const``), ``data.Const`` views
        for other layouts.
    received_edges, sent_edges : dict of str to list of int
        Per sink / source, the edge (1 = first rising edge) of each transfer.
    seconds : float
        Wall time of the compiled simulation alone (no build, packing or decoding).
    """

    cycles: int
    seconds: float = 0.0
    received: dict = field(default_factory=dict)
    received_edges: dict = field(default_factory=dict)
    sent_edges: dict = field(default_factory=dict)


def _port(dut, name: str):
    """``dut.sm[0]`` for ``"sm__0"``: the interface behind an Amaranth port path."""
    interface = dut
    for part in name.split("__"):
        interface = interface[int(part)] if part.isdigit() else getattr(interface, part)
    return interface


def _layout(dut, name: str):
    """The payload's shape: a ``ShapeCastable`` (struct layout, ``data.Struct``) or a ``Shape``."""
    return _port(dut, name).payload.shape()


def _field_plan(layout):
    """For a struct layout: the payload of no field set, and per top-level field of a plain or
    enum shape its ``(offset, mask)``, both read from the ``data.Layout`` (``layout.const``
    per payload costs ~200 us, 80% of a compiled run)."""
    struct = data.Layout.cast(layout)
    base = layout.const({}).as_value().value
    plan = {}
    for name, member in struct:
        if isinstance(member.shape, ShapeCastable) and not isinstance(member.shape, type(Enum)):
            continue    # nested layouts: packed by layout.const
        plan[name] = (member.offset, (1 << member.width) - 1)
    return base, plan


def _packer(layout):
    """A function payload -> int for the port shape ``layout``."""
    if not isinstance(layout, ShapeCastable):
        return int
    if not isinstance(layout, (data.StructLayout, type)):
        return lambda payload: layout.const(payload).as_value().value
    base, plan = _field_plan(layout)

    def pack(payload) -> int:
        if not isinstance(payload, dict):
            return layout.const(payload).as_value().value
        value = base
        for name, item in payload.items():
            if name not in plan or not isinstance(item, int | Enum):
                return layout.const(payload).as_value().value
            offset, mask = plan[name]
            item = item.value if isinstance(item, Enum) else item
            if not 0 <= item <= mask:
                return layout.const(payload).as_value().value   # Amaranth's own error
            value = value & ~(mask << offset) | item << offset
        return value
    return pack


def _pack(pack, payloads, chunks: int) -> np.ndarray:
    """Payloads as a ``(len, chunks)`` array of little-endian 32-bit words (``pack``: payload
    -> int, from :func:`_packer`)."""
    values = [pack(payload) for payload in payloads]
    size = 4 * chunks
    try:
        raw = b"".join(value.to_bytes(size, "little") for value in values)
    except OverflowError:
        bad = next(p for p, v in zip(payloads, values) if v < 0 or v >> (8 * size))
        raise ValueError(f"payload {bad!r} does not fit in {chunks * 32} bits") from None
    return np.frombuffer(raw, dtype="<u4").reshape(len(values), chunks)


def _as_list(column) -> list:
    """A column's values as Python ints (a list stays as given: numpy would turn integers past
    64 bits, or past int64 beside a negative one, into floats)."""
    return column.tolist() if isinstance(column, np.ndarray) else list(column)


def _pack_columns(layout, columns, chunks: int) -> np.ndarray:
    """Bulk payloads (:class:`StreamSource`) as :func:`_pack`'s ``(len, chunks)`` words.

    Every value is checked against its field's width (``ValueError`` naming the field, the
    payload's index and the value); payloads wider than 64 bits go through :func:`_pack`.
    """
    if not isinstance(columns, Mapping):       # a plain shape: the values themselves
        width = Shape.cast(layout).width
        fields = {None: (0, (1 << width) - 1, columns)}
        base = 0
    else:
        base, plan = _field_plan(layout)
        unknown = [name for name in columns if name not in plan]
        if unknown:
            raise ValueError(f"payload field {unknown[0]!r}: the port's fields (plain or enum "
                             f"shapes) are {', '.join(plan)}")
        fields = {name: (*plan[name], values) for name, values in columns.items()}
    count = len(next(iter(fields.values()))[2]) if fields else 0
    if chunks > 2:
        rows = (_as_list(columns) if not isinstance(columns, Mapping) else
                [dict(zip(columns, row)) for row in zip(*map(_as_list, columns.values()))])
        return _pack(_packer(layout), rows, chunks)
    packed = np.full(count, base, dtype=np.uint64)
    for name, (offset, mask, values) in fields.items():
        what = "payload" if name is None else f"payload field {name!r}"
        values = check_int_array(f"{what}[{{i}}]", values, 0, mask + 1, length=count)
        packed &= np.uint64(~(mask << offset) & (1 << 64) - 1)
        packed |= values.astype(np.uint64) << np.uint64(offset)
    words = packed.astype("<u8").view("<u4").reshape(count, 2)
    return np.ascontiguousarray(words[:, :chunks])


def _unpacker(layout):
    """A function int -> payload for the port shape ``layout``: ints for plain shapes; for a
    struct of plain unsigned fields a named tuple of ints (fields read like ``data.Const``'s:
    ``r.hit``), built from the layout's offsets; ``layout.from_bits`` otherwise."""
    if not isinstance(layout, ShapeCastable):
        return int
    struct = data.Layout.cast(layout)
    if not isinstance(struct, data.StructLayout) or any(
            isinstance(member.shape, ShapeCastable) or Shape.cast(member.shape).signed
            for _, member in struct):
        return layout.from_bits
    fields = [(name, member.offset, (1 << member.width) - 1) for name, member in struct]
    record = namedtuple("Payload", [name for name, _, _ in fields])
    return lambda raw: record(*(raw >> offset & mask for _, offset, mask in fields))


def _unpack(unpack, words: np.ndarray) -> list:
    """Rows of 32-bit words as payloads (``unpack``: int -> payload, from :func:`_unpacker`)."""
    if words.shape[1] == 1:
        raw = words[:, 0].tolist()
    else:
        data, size = words.astype("<u4").tobytes(), 4 * words.shape[1]
        raw = [int.from_bytes(data[i:i + size], "little") for i in range(0, len(data), size)]
    return [unpack(value) for value in raw]


def _end_bit(layout, end_field) -> int:
    if end_field is None:
        return -1
    member = data.Layout.cast(layout)[end_field]
    if Shape.cast(member.shape).width != 1:
        raise ValueError(f"end_field {end_field!r} must be 1 bit wide, not {member.shape!r}")
    return member.offset


@dataclass(frozen=True)
class _Port:
    """A stream port of a loaded design: its payload shape, 32-bit chunks and converters."""

    layout: object
    chunks: int
    pack: Callable
    unpack: Callable


class _Design:
    """A compiled design loaded in this process, with its ports' converters built once."""

    def __init__(self, lib: ctypes.CDLL, dut):
        self.lib, self._dut, self._ports = lib, dut, {}
        self._probe = lib.rtlsim_create()       # answers payload widths; never stepped

    def port(self, name: str) -> _Port:
        """The stream port ``name``; ``ValueError`` if the design has none."""
        if name not in self._ports:
            width = self.lib.rtlsim_payload_width(self._probe, name.encode())
            if width < 0:
                raise ValueError(f"the design has no stream port {name!r}")
            layout = _layout(self._dut, name)
            self._ports[name] = _Port(layout, (width + 31) // 32 or 1, _packer(layout),
                                      _unpacker(layout))
        return self._ports[name]


#: Designs loaded by this process, by :func:`design_identity`.
_DESIGNS: dict = {}

# Instance attributes that are not design parameters: Amaranth's use tracking (a traceback of
# the construction site) and the ports (built from the signature, which is in the key).
_NOT_PARAMETERS = {"_MustUse__used", "_MustUse__context", "_MustUse__silence",
                   "_Component__signature"}


def design_identity(dut):
    """A key equal for two components exactly when they elaborate to the same design, or None.

    The key is the class (the object itself: a patched copy of a class is another design), the
    signature's text, and the pickled instance attributes other than the ports: every
    constructor parameter a design keeps (``_die``, ``layout``, a cost ROM, memory contents)
    is there. Elaboration must depend on nothing else (no mutable module state); a component
    whose attributes do not pickle gets None (no reuse: it is exported and hashed every call).
    """
    signature = dut.signature
    state = {name: value for name, value in vars(dut).items()
             if name not in _NOT_PARAMETERS and name not in signature.members}
    try:
        return type(dut), repr(signature), pickle.dumps(state, protocol=5)
    except (pickle.PicklingError, TypeError, AttributeError):
        return None


def _design(dut) -> _Design:
    """The loaded design of ``dut``: exported, built or loaded once per design and process."""
    dut._MustUse__used = True   # handed to the simulator (and elaborated once per design)
    key = design_identity(dut)
    if key is not None:
        key = (cache_dir(), *build._cxxflags(), *key)   # another folder or level: built there
    if key is not None and key in _DESIGNS:
        return _DESIGNS[key]
    design = _Design(load_library(compile_component(dut)), dut)
    if key is not None:
        _DESIGNS[key] = design
    return design


def _add_source(design: _Design, handle, source: StreamSource) -> None:
    port = design.port(source.name)
    if isinstance(source.payloads, Mapping | np.ndarray):
        words = _pack_columns(port.layout, source.payloads, port.chunks)
    else:
        words = _pack(port.pack, list(source.payloads), port.chunks)
    pointer = words.ctypes.data_as(ctypes.POINTER(ctypes.c_uint32))
    design.lib.rtlsim_add_source(handle, source.name.encode(), pointer, len(words))


def _add_sink(design: _Design, handle, sink: StreamSink) -> None:
    count = -1 if sink.count is None else check_int("count", sink.count, 0)
    end_bit = _end_bit(design.port(sink.name).layout, sink.end_field)
    pulse, bit = sink.pulse if sink.pulse is not None else ("", 0)
    status = design.lib.rtlsim_add_sink(handle, sink.name.encode(), count, end_bit,
                                        check_int("initial_wait", sink.initial_wait, 0),
                                        check_int("gap", sink.gap, 0), pulse.encode(), bit)
    if status == -2:
        raise ValueError(f"pulse {sink.pulse!r}: no such input port bit")


def _collect(design: _Design, handle, sinks, driven, sources, cycles) -> StreamRun:
    """The run's payloads and edges: ``driven`` are the sinks handed to the driver, in order;
    the other ``sinks`` (0 payloads to take) received nothing."""
    lib, run = design.lib, StreamRun(cycles)
    for sink in sinks:
        run.received[sink.name], run.received_edges[sink.name] = [], []
    for i, sink in enumerate(driven):
        port = design.port(sink.name)
        n = lib.rtlsim_sink_count(handle, i)
        words = np.zeros((n, port.chunks), dtype=np.uint32)
        edges = np.zeros(n, dtype=np.uint64)
        lib.rtlsim_sink_read(handle, i, words.ctypes.data_as(ctypes.POINTER(ctypes.c_uint32)),
                             edges.ctypes.data_as(ctypes.POINTER(ctypes.c_uint64)))
        run.received[sink.name] = _unpack(port.unpack, words)
        run.received_edges[sink.name] = edges.tolist()
    for i, source in enumerate(sources):
        edges = np.zeros(len(source), dtype=np.uint64)
        lib.rtlsim_source_edges(handle, i, edges.ctypes.data_as(ctypes.POINTER(ctypes.c_uint64)))
        run.sent_edges[source.name] = edges.tolist()
    return run


def _set_inputs(design: _Design, handle, inputs: dict) -> None:
    """Hold each input port of ``inputs`` (name -> int) at its value for the whole run."""
    for name, value in inputs.items():
        width = len(_port(design._dut, name))
        value = check_int(f"input {name}", value, 0, 1 << width)
        chunks = (width + 31) // 32
        words = np.frombuffer(value.to_bytes(4 * chunks, "little"), dtype="<u4").copy()
        pointer = words.ctypes.data_as(ctypes.POINTER(ctypes.c_uint32))
        if design.lib.rtlsim_set_input(handle, name.encode(), pointer, chunks) != 0:
            raise ValueError(f"the design has no input port {name!r} of {width} bits")


def run_streams(dut, sources: Sequence[StreamSource], sinks: Sequence[StreamSink], *,
                inputs: dict | None = None, max_cycles: int = 100_000,
                vcd: str | Path | None = None) -> StreamRun:
    """Simulate ``dut`` compiled with CXXRTL, feeding ``sources`` and draining ``sinks``.

    The protocol is :func:`hwmodel.tb.run_scenario` with ``stream_put`` producers and
    ``stream_get`` consumers, so results and cycle counts equal pysim's.

    Parameters
    ----------
    dut : amaranth.lib.wiring.Component
    inputs : dict of str to int, optional
        Plain input ports held at a value for the whole run (a strap such as the Local CP's
        ``die``); the others start at 0.
    max_cycles : int
        Watchdog: ``TimeoutError`` if not finished after this many clock edges.
    vcd : path or None
        Write a waveform of every signal of the design there (1 ps resolution, 1 ns clock).

    Raises
    ------
    RTLSimError
        If the design cannot be compiled (no ``g++``, Yosys or compiler failure).
    TimeoutError
        After ``max_cycles`` edges, as pysim's watchdog.
    """
    max_cycles = check_int("max_cycles", max_cycles, 1)
    design = _design(dut)
    lib = design.lib
    handle = lib.rtlsim_create()
    try:
        for source in sources:
            _add_source(design, handle, source)
        # a sink of 0 payloads is a consumer that never calls stream_get: its ready stays
        # low and it is done from the start (handed to the driver, it would wait forever)
        driven = [sink for sink in sinks if design.port(sink.name) and sink.count != 0]
        for sink in driven:
            _add_sink(design, handle, sink)
        _set_inputs(design, handle, inputs or {})
        if vcd is not None and lib.rtlsim_open_vcd(handle, str(vcd).encode()) != 0:
            raise OSError(f"cannot write the waveform {vcd}")
        start = time.perf_counter()
        cycles = lib.rtlsim_run(handle, max_cycles)
        seconds = time.perf_counter() - start
        if cycles < 0:
            raise TimeoutError(f"simulation did not finish within {max_cycles} cycles")
        run = _collect(design, handle, sinks, driven, sources, cycles)
        run.seconds = seconds
        PROFILE["runs"] += 1
        PROFILE["cycles"] += cycles
        PROFILE["seconds"] += seconds
        return run
    finally:
        lib.rtlsim_destroy(handle)
