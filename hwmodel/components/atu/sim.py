"""Simulation harness of the ATU: its transactions through the Python twin
(:func:`run_atu_twin`) and through the RTL of :mod:`.rtl` (:func:`simulate_atu`, Amaranth's
simulator or the compiled one). Kept apart from the design so that the system model, which
imports the twin, loads no simulator."""

from ...checks import check_int, check_transaction
from ...rtlsim import check_engine
from ...tb import run_command_stream, run_twin
from .params import PAPER
from .rtl import ATU, ATUOp
from .twin import ATUTwin

__all__ = ["run_atu_twin", "simulate_atu"]

_OPS = {"insert": ATUOp.INSERT, "lookup": ATUOp.LOOKUP, "invalidate": ATUOp.INVALIDATE,
        "invalidate_all": ATUOp.INVALIDATE_ALL}


_ARITY = {"insert": 3, "lookup": 2, "invalidate": 1, "invalidate_all": 0}


def _command(transaction, layout):
    op, args = check_transaction("ATU", transaction, _ARITY)
    arity = _ARITY[op]
    index = check_int("index", args[0], 0, layout.entries) if args else 0
    remote = (check_int("remote_addr", args[1], 0, 1 << layout.remote_addr_bits)
              if arity >= 2 else 0)
    local = (check_int("local_addr", args[2], 0, 1 << layout.local_addr_bits)
             if arity == 3 else 0)
    return {"op": _OPS[op], "index": index, "remote": remote, "local": local}


def run_atu_twin(transactions, num_entries: int = PAPER.entries, *, num_dies: int = PAPER.num_dies,
                 page_bits: int = PAPER.page_bits) -> list[tuple[bool, int]]:
    """Apply ``transactions`` to an :class:`ATUTwin`; return the lookups' ``(hit, local)``.

    A transaction is ``("insert", index, remote, local)``, ``("lookup", index, remote)``,
    ``("invalidate", index)`` or ``("invalidate_all",)``.
    """
    twin = ATUTwin(num_entries, num_dies=num_dies, page_bits=page_bits)
    return run_twin(twin, transactions, lambda t: _command(t, twin.layout), "lookup")


def simulate_atu(transactions, num_entries: int = PAPER.entries, *, num_dies: int = PAPER.num_dies,
                 page_bits: int = PAPER.page_bits, vcd=None, back_pressure: int = 0,
                 max_cycles: int | None = None, engine: str = "pysim"):
    """Run ``transactions`` (see :func:`run_atu_twin`) through the RTL.

    Parameters
    ----------
    back_pressure : int
        The response consumer waits this many cycles between responses (0: always ready), to
        exercise the stall path.
    engine : {"pysim", "cxxrtl"}
        Amaranth's Python simulator or the compiled one (:mod:`hwmodel.rtlsim`).

    Returns
    -------
    results : list of (bool, int)
        The lookups' ``(hit, local)``, as :func:`run_atu_twin`.
    cycles : int
    """
    check_engine(engine)    # before the design exists: an unused design warns
    dut = ATU(num_entries, num_dies=num_dies, page_bits=page_bits)
    commands = [_command(t, dut.layout) for t in transactions]
    expected = sum(c["op"] == ATUOp.LOOKUP for c in commands)
    return run_command_stream(dut, commands, expected,
                              lambda r: (bool(r.hit), int(r.local)),
                              back_pressure=back_pressure, max_cycles=max_cycles, vcd=vcd,
                              engine=engine)
