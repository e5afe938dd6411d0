"""Simulation harness of the PDU: its transactions through the Python twin
(:func:`run_pdu_twin`) and through the RTL of :mod:`.rtl` (:func:`simulate_pdu`). Kept apart
from the design so that the system model, which imports the twin, loads no simulator."""

import numpy as np

from ...checks import check_int, check_int_array, check_transaction
from ...rtlsim import check_engine
from ...tb import run_command_stream, run_twin
from .params import PAPER, WORD_BITS, PDULayout
from .rtl import PDU, PDUOp
from .twin import PDUTwin

__all__ = ["run_pdu_twin", "simulate_pdu"]

_ARITY = {"write_word": 2, "query": 1, "set_local": 1, "clear": 0}
_OPS = {"write_word": PDUOp.WRITE, "query": PDUOp.QUERY, "set_local": PDUOp.SET_LOCAL,
        "clear": PDUOp.CLEAR}


def _command(transaction, num_experts):
    op, args = check_transaction("PDU", transaction, _ARITY)
    num_words = PDULayout(experts=num_experts).num_words
    if op == "write_word":
        return {"op": PDUOp.WRITE, "index": check_int("index", args[0], 0, num_words),
                "word": check_int("word", args[1], 0, 1 << WORD_BITS)}
    index = check_int("expert", args[0], 0, num_experts) if args else 0
    return {"op": _OPS[op], "index": index, "word": 0}


# op code and argument count of each transaction (the bulk path's table; _command checks)
_CODES = {name: (_OPS[name].value, arity) for name, arity in _ARITY.items()}


def _command_columns(transactions, num_experts):
    """The commands of ``transactions`` as ``op``, ``index``, ``word`` integer arrays, checked
    in bulk; on any bad transaction, :func:`_command`'s error for the first one."""
    rows = []
    for t in transactions:
        code = _CODES.get(t[0]) if type(t) is tuple and t else None
        if code is None or len(t) != code[1] + 1:
            rows = None
            break
        rows.append((code[0], *t[1:], 0, 0)[:3])
    if rows:
        try:
            op, index, word = (check_int_array("command", column)
                               for column in zip(*rows, strict=True))
        except (TypeError, ValueError):
            op = None
        else:
            limit = np.where(op == PDUOp.WRITE.value, PDULayout(experts=num_experts).num_words,
                             num_experts)
            if ((index >= 0) & (index < limit)).all() and ((word >= 0) & (word >> WORD_BITS
                                                                          == 0)).all():
                return {"op": op, "index": index, "word": word}
    commands = [_command(t, num_experts) for t in transactions]    # raises on the bad one
    return {name: np.array([c[name].value if name == "op" else c[name] for c in commands],
                           dtype=np.int64).reshape(-1) for name in ("op", "index", "word")}


def run_pdu_twin(transactions, num_experts: int = PAPER.experts) -> list[tuple[bool, bool]]:
    """Apply ``transactions`` to a :class:`PDUTwin`; return the queries' ``(cp_en, is_local)``.

    A transaction is ``("write_word", index, word)``, ``("query", expert)``,
    ``("set_local", expert)`` or ``("clear",)``.
    """
    return run_twin(PDUTwin(num_experts), transactions, lambda t: _command(t, num_experts), "query")


def simulate_pdu(transactions, num_experts: int = PAPER.experts, *, vcd=None, back_pressure: int = 0,
                 max_cycles: int | None = None, engine: str = "pysim"):
    """Run ``transactions`` (see :func:`run_pdu_twin`) through the RTL; ``(results, cycles)``.

    ``engine``: ``"pysim"`` (Amaranth's simulator) or ``"cxxrtl"`` (:mod:`hwmodel.rtlsim`).
    """
    check_engine(engine)    # before the design exists: an unused design warns
    commands = _command_columns(transactions, num_experts)
    expected = int((commands["op"] == PDUOp.QUERY.value).sum())
    return run_command_stream(PDU(num_experts), commands, expected,
                              lambda r: (bool(r.cp_en), bool(r.is_local)),
                              back_pressure=back_pressure, max_cycles=max_cycles, vcd=vcd,
                              engine=engine)
