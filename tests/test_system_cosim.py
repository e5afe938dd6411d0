"""Co-simulation of a replay window (issue 9, item 1): the units' RTL answers the replay's own
transactions as the twins did, and a bug planted in one unit's RTL stops the run with a message
naming the transaction."""

import importlib
import inspect
import re

import pytest
from conftest import need_shared

from hwmodel.cli import main
from hwmodel.components.atu import rtl as atu_rtl
from hwmodel.components.pdu import rtl as pdu_rtl
from hwmodel.models import load_model
from hwmodel.params import load_wafer
from hwmodel.system import Replay, ReplayParams
from hwmodel.system.cosim import (
    UNITS,
    CoSim,
    CoSimMismatch,
    Phase,
    Where,
    Window,
    parse_units,
    parse_window,
)
from hwmodel.topologies.wafer import build_wafer
from hwmodel.traces import open_batch

# Decode iteration 2, the first four MoE layers: every unit has transactions there (the
# prediction path copies from iteration 1 on) and the RTL runs in about two seconds.
SMALL = "it=2,layer=0:4"


@pytest.fixture(scope="module")
def llama4_64():
    """The first 64 shared Llama-4 requests on tsmc-sow (3 x 8)."""
    traces = need_shared("traces", "profiling_result", "meta-llama",
                         "Llama-4-Maverick-17B-128E-Instruct")
    return Replay(wafer=build_wafer(load_wafer("tsmc-sow")), model=load_model("llama4-maverick"),
                  store=open_batch(traces, limit=64))


def planted(monkeypatch, module, name: str, old: str, new: str) -> None:
    """Replace class ``name`` of ``module`` by a copy whose source has ``old`` -> ``new`` (the
    rest of the module, its enums and layouts, stays the same objects), there and in the
    unit's simulation harness (``sim.py`` beside it), which builds the design."""
    source = inspect.getsource(getattr(module, name))
    assert source.count(old) == 1, old
    namespace = dict(module.__dict__)
    exec(compile(source.replace(old, new), module.__file__, "exec"), namespace)  # noqa: S102
    harness = importlib.import_module(module.__name__.rsplit(".", 1)[0] + ".sim")
    for where in (module, harness):
        monkeypatch.setattr(where, name, namespace[name])


# ------------------------------------------------------------------ window and unit specs
def test_window_spec_hand_cases():
    assert parse_window("it=2") == Window((2, 3), None, None)
    assert parse_window("it=1:3, layer=0:24") == Window((1, 3), (0, 24), None)
    assert parse_window("it=0,die=4:6").dies == frozenset({4, 5})
    assert parse_window("it=0,die=0+5+7").dies == frozenset({0, 5, 7})
    w = parse_window("it=1:3,layer=2:4")
    assert [w.covers(i, l) for i, l in [(1, 2), (2, 3), (3, 2), (1, 4), (0, 2)]] == \
        [True, True, False, False, False]


@pytest.mark.parametrize(("spec", "expected"), [
    ("layer=0:4", "expected it=A or it=A:B"),
    ("it=3:3", "expected A or A:B with 0 <= A < B"),
    ("it=-1", "expected A or A:B"),
    ("it=1,it=2", "once each"),
    ("it=1,tile=2", "'tile=2'"),
    ("it=1,die=a+b", "die ids like 0+5+7"),
])
def test_bad_window_specs_name_the_item(spec, expected):
    with pytest.raises(ValueError, match=re.escape(expected)):
        parse_window(spec)


def test_unit_lists():
    assert parse_units("all") == UNITS
    assert parse_units("atu, pdu") == ("pdu", "atu")      # in the order they work
    with pytest.raises(ValueError, match="expected 'all' or some of"):
        parse_units("pdu,tlb")


def test_the_first_difference_is_the_earliest_transaction():
    # iteration, then layer, then the unit's order in a layer, then die, then position
    a = Where(2, 0, Phase.LOCAL_CP, 9, 0)
    assert a < Where(2, 1, Phase.ALLOCATOR, -1, 0)
    assert Where(2, 0, Phase.PDU, 5, 7) < a
    assert Where(1, 23, Phase.ATU, 0, 0) < Where(2, 0, Phase.ALLOCATOR, -1, 0)


def test_check_names_the_earliest_mismatch_and_compares_every_answer(monkeypatch):
    """Two PDU simulations whose first answers agree: die 1's third answer differs (MoE layer
    index 1), die 3's second (index 0). Die 1 is simulated first, but the mismatch named is
    die 3's, the earliest in replay order; all six answers were compared."""
    from hwmodel.system import cosim as cosim_module
    cosim = CoSim(("pdu",), parse_window("it=0"))
    cosim.moe_layers = [1, 3]
    twin = [(False, False), (True, False), (True, True)]
    rtl = {1: twin[:2] + [(False, True)], 3: [twin[0], (False, True), twin[2]]}
    for die, layer in ((1, 1), (3, 0)):
        job = cosim._job("pdu", die)
        job.checks = [cosim_module._Check(Where(0, layer, Phase.PDU, die, i), ("query", i), a)
                      for i, a in enumerate(twin)]
    order = []

    def simulate(cosim, job):
        order.append(job.die)
        return rtl[job.die], 10
    monkeypatch.setitem(cosim_module._SIMULATE, "pdu", simulate)
    with pytest.raises(CoSimMismatch) as caught:
        cosim.check()
    assert order == [1, 3]
    assert caught.value.where == Where(0, 0, Phase.PDU, 3, 1)
    assert (caught.value.twin, caught.value.rtl) == ((True, False), (False, True))
    assert cosim.summary["pdu"]["answers"] == 6


# ------------------------------------------------------------------ the RTL in the loop
def test_every_unit_of_pred_answers_as_its_twin_and_the_replay_is_unchanged(llama4_64):
    plain = llama4_64.run("pred")
    cosim = CoSim(parse_units("all"), parse_window(SMALL))
    result = llama4_64.run("pred", cosim=cosim)
    # "all" under pred: every unit but the allocator, each with answers compared
    assert list(cosim.summary) == ["edt", "predictor", "pdu", "atu", "local_cp"]
    assert all(row["answers"] > 0 and row["cycles"] > 0 for row in cosim.summary.values())
    # one PDU and one Local CP simulation per die with tasks; the predictor answers once per
    # die group, the Local CP once per die and layer, and the PDU once per task
    assert cosim.summary["pdu"]["simulations"] <= 24
    assert cosim.summary["predictor"]["answers"] == cosim.summary["local_cp"]["answers"]
    assert result.row() == plain.row()          # tapping the replay changes nothing
    assert result.per_layer == plain.per_layer


def test_a_two_iteration_window_checks_each_iteration_from_the_twins_state(llama4_64):
    """it=2:4 runs the RTL after iteration 2 and again after 3 (PDU and ATU state carried
    over through the twins): the same answers as the two one-iteration windows."""
    def answers(spec):
        cosim = CoSim(("pdu", "atu"), parse_window(spec))
        llama4_64.run("pred", cosim=cosim)
        return {unit: row["answers"] for unit, row in cosim.summary.items()}
    both, first, second = answers("it=2:4,layer=0:4"), answers(SMALL), answers("it=3,layer=0:4")
    assert both == {u: first[u] + second[u] for u in ("pdu", "atu")}
    assert second["atu"] > 0       # iteration 3's lookups read replicas inserted in 1 and 2


def test_allocator_window_under_allo(llama4_64):
    cosim = CoSim(("allocator",), parse_window("it=2,layer=0:2"))
    llama4_64.run("allo", cosim=cosim)
    assert cosim.summary["allocator"]["answers"] == 2     # one plan per layer


def test_a_pdu_answering_is_local_for_cp_en_stops_the_run_at_its_first_query(llama4_64,
                                                                             monkeypatch):
    planted(monkeypatch, pdu_rtl, "PDU", "payload.cp_en.eq(bits[0])", "payload.cp_en.eq(bits[1])")
    with pytest.raises(CoSimMismatch) as caught:
        llama4_64.run("pred", cosim=CoSim(("pdu",), parse_window(SMALL)))
    m = caught.value
    assert m.unit == "pdu" and m.transaction[0] == "query"
    assert m.rtl == (m.twin[1], m.twin[1])          # cp_en now shows is_local
    assert (m.where.iteration, m.where.phase) == (2, Phase.PDU) and 0 <= m.where.layer < 4
    text = str(m)
    assert text.startswith(f"RTL pdu of die {m.where.die} differs from its twin at iteration 2")
    assert f"transaction ('query', {m.transaction[1]})" in text and "\n" not in text


@pytest.mark.slow
def test_compiled_local_cps_of_every_die_share_one_design_and_agree(llama4_64, monkeypatch):
    """The Local CP's die id is a port: under cxxrtl one library serves the 24 dies, each
    with its own strap (a strap left at one die would count other dies' tasks as remote)."""
    from hwmodel import rtlsim
    built = []
    monkeypatch.setattr(rtlsim, "compile_component",
                        lambda dut, compile=rtlsim.compile_component: built.append(type(dut))
                        or compile(dut))
    cosim = CoSim(("local_cp",), parse_window(SMALL), engine="cxxrtl", opt="-O0")
    llama4_64.run("pred", cosim=cosim)
    row = cosim.summary["local_cp"]
    assert row["simulations"] > 1 and row["answers"] >= row["simulations"]
    assert len(built) <= 1      # one design (none if this process loaded it already)


@pytest.mark.slow
def test_a_planted_pdu_bug_stops_the_compiled_run_too(llama4_64, monkeypatch):
    planted(monkeypatch, pdu_rtl, "PDU", "payload.cp_en.eq(bits[0])", "payload.cp_en.eq(bits[1])")
    with pytest.raises(CoSimMismatch) as caught:
        llama4_64.run("pred", cosim=CoSim(("pdu",), parse_window(SMALL), engine="cxxrtl",
                                          opt="-O0"))
    m = caught.value
    assert m.unit == "pdu" and m.transaction[0] == "query" and m.rtl == (m.twin[1], m.twin[1])
    assert (m.where.iteration, m.where.phase) == (2, Phase.PDU)


def test_an_unknown_optimisation_level_is_refused():
    with pytest.raises(ValueError, match="opt '-O7': expected one of -O0"):
        CoSim(("pdu",), parse_window(SMALL), engine="cxxrtl", opt="-O7")


def test_an_atu_returning_a_wrong_page_stops_the_run_at_the_lookup(llama4_64, monkeypatch):
    planted(monkeypatch, atu_rtl, "ATU", "stored_local & hit.replicate(local_bits)",
            "(stored_local ^ 1) & hit.replicate(local_bits)")
    with pytest.raises(CoSimMismatch) as caught:
        llama4_64.run("pred", cosim=CoSim(("atu",), parse_window(SMALL)))
    m = caught.value
    hit, page = m.twin
    assert m.unit == "atu" and m.transaction[0] == "lookup" and hit
    assert m.rtl == (True, page ^ 1)


def test_windows_and_units_the_run_cannot_take(llama4_64):
    cases = [(("allocator",), "it=2", "pred", "does not use it"),
             (UNITS, "it=2", "base", "uses no added unit"),
             (("pdu",), "it=200", "pred", "the batch has 128 iterations"),
             (("pdu",), "it=2,layer=20:30", "pred", "the model has 24 MoE layers"),
             (("pdu",), "it=2,die=24", "pred", "the wafer has dies 0..23")]
    for units, spec, strategy, expected in cases:
        with pytest.raises(ValueError, match=expected):
            llama4_64.run(strategy, cosim=CoSim(units, parse_window(spec)))


def test_predictor_rtl_needs_the_stable_tie_rule(llama4_traces):
    replay = Replay(wafer=build_wafer(load_wafer("tsmc-sow")), model=load_model("llama4-maverick"),
                    store=open_batch(llama4_traces, limit=8),
                    params=ReplayParams(tie_rule="numpy"))
    with pytest.raises(ValueError, match="tie_rule: stable"):
        replay.run("pred", cosim=CoSim(("predictor",), parse_window("it=2")))


# ------------------------------------------------------------------ command line
def test_cli_window_writes_waveforms_with_gtkwave_views(llama4_traces, tmp_path, capsys):
    vcd = tmp_path / "waves"
    code = main(["replay", "--trace", str(llama4_traces), "--batch", "64", "--strategy", "pred",
                 "--rtl", "pdu,atu", "--window", SMALL, "--vcd", str(vcd), "--quiet"])
    out = capsys.readouterr().out
    assert code == 0
    assert "RTL (pysim) equals the twins on every answer in the window" in out
    assert {line.split()[0] for line in out.splitlines()[-2:]} == {"pdu", "atu"}
    saves = sorted(vcd.glob("*.gtkw"))
    assert {p.with_suffix(".vcd") for p in saves} == set(vcd.glob("*.vcd")) and saves
    assert "cmd__valid" in saves[0].read_text() and "resp__payload" in saves[0].read_text()


def test_cli_mismatch_is_one_line_and_exit_1(llama4_traces, monkeypatch, capsys):
    planted(monkeypatch, pdu_rtl, "PDU", "payload.cp_en.eq(bits[0])", "payload.cp_en.eq(bits[1])")
    code = main(["replay", "--trace", str(llama4_traces), "--batch", "64", "--strategy", "pred",
                 "--rtl", "pdu", "--window", SMALL, "--quiet"])
    captured = capsys.readouterr()
    assert code == 1 and captured.out == ""
    assert captured.err.count("\n") == 1 and "Traceback" not in captured.err
    assert captured.err.startswith("hwmodel: error: RTL pdu of die ")


@pytest.mark.parametrize(("argv", "expected"), [
    (["--rtl", "pdu"], "--rtl needs --window"),
    (["--window", "it=2"], "--window and --vcd go with --rtl"),
    (["--rtl", "tlb", "--window", "it=2"], "expected 'all' or some of"),
    (["--rtl", "pdu", "--window", "it=x"], "window it='x'"),
    (["--rtl", "pdu", "--window", "it=2", "--strategy", "pred,allo"], "one --strategy"),
])
def test_cli_bad_co_simulation_options_exit_2(argv, expected, capsys):
    code = main(["replay", "--batch", "4", "--quiet"] + argv)
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and expected in err, err


# ------------------------------------------------------------------ the window
@pytest.mark.slow
@pytest.mark.parametrize("strategy", ["allo+pred", "pred"])
def test_one_decode_iteration_of_all_24_layers_with_every_unit_as_rtl(llama4_traces, strategy,
                                                                     capsys):
    """Issue 9's window: the 235 shared requests, decode iteration 2, all 24 MoE layers."""
    code = main(["replay", "--trace", str(llama4_traces), "--strategy", strategy,
                 "--rtl", "all", "--window", "it=2,layer=0:24", "--quiet"])
    out = capsys.readouterr().out
    assert code == 0
    units = {line.split()[0] for line in out.split("window:")[1].splitlines()[2:]}
    expected = {"edt", "predictor", "pdu", "atu", "local_cp"}
    # allo+pred keeps every task on its home or a replica-free die here: no ATU lookup
    if strategy == "allo+pred":
        expected = (expected | {"allocator"}) - {"atu"}
    assert units == expected
