"""``hwmodel ablate`` (issue 17 part 3): the grid, the figures relative to paper mode, the
findings, the report section and the command's bad options.

Most tests read a results store written by hand: one scenario, ``base`` and ``pred``, in paper
mode and under the switches, with throughputs and hops chosen so that every ratio is worked
out below in the test itself.
"""

import json
import math

import pytest

from hwmodel.cli import main
from hwmodel.sweep import ResultsStore, parse_grid
from hwmodel.sweep import ablation as ab
from hwmodel.system.physical import PHYSICAL_SWITCHES

SWITCHES = list(PHYSICAL_SWITCHES)


def error_line(capsys, code, expected):
    captured = capsys.readouterr()
    assert code == 2, captured
    lines = captured.err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("hwmodel: error: "), captured.err
    for part in expected:
        assert part in lines[0], (part, lines[0])


# ------------------------------------------------------------------ the grid


def test_the_grid_is_paper_each_switch_alone_and_all_together():
    grid = ab.ablation_grid(models=["llama4-maverick"], batches=[4], wafers=["dojo"],
                            strategies=["base", "pred"])
    settings = {frozenset(name for name, on in run.params if on) for run in grid.runs}
    expected = {frozenset()} | {frozenset([s]) for s in SWITCHES} | {frozenset(SWITCHES)}
    assert settings == expected
    assert len(grid.runs) == 2 * len(expected)          # each setting once per strategy
    assert grid.ignore_capacity                          # Kimi-K2 runs as in the paper grid


def test_a_single_switch_is_not_run_twice_as_all_switches():
    assert ab.switch_settings([SWITCHES[0]]) == [(), (SWITCHES[0],)]


def test_the_paper_runs_are_a_plain_sweeps_runs():
    """Paper-mode runs have no switch parameter at all: the same runs (so the same store keys)
    as a sweep grid of the same models, batches and wafers."""
    grid = ab.ablation_grid(models=["qwen3-235b"], batches=[8], wafers=["tsmc-sow"],
                            strategies=["ep"], params={"max_iterations": 3})
    plain = parse_grid({"sweep": {"models": ["qwen3-235b"], "batches": [8],
                                  "wafers": ["tsmc-sow"], "strategies": ["ep"],
                                  "params": {"max_iterations": 3}}})
    paper = [run for run in grid.runs if not any(name in SWITCHES for name, _ in run.params)]
    assert paper == list(plain.runs)


@pytest.mark.parametrize(("switches", "expected"), [
    (["hbm_budgett"], "unknown switch 'hbm_budgett'"),
    ([SWITCHES[0], SWITCHES[0]], "listed twice"),
])
def test_bad_switches_are_refused(switches, expected):
    with pytest.raises(ValueError, match=expected):
        ab.ablation_grid(models=["qwen3-235b"], batches=[8], wafers=["dojo"], switches=switches)


def test_a_switch_given_as_a_parameter_is_refused():
    with pytest.raises(ValueError, match="is a physical switch"):
        ab.ablation_grid(models=["qwen3-235b"], batches=[8], wafers=["dojo"],
                         params={SWITCHES[0]: True})


# ------------------------------------------------------------------ a store written by hand

SCENARIO = {"model": "m", "trace": "m/synth/4", "trace_sha256": "s", "batch": 4, "wafer": "w"}

#: (strategy, switches on, throughput, hops, dispatch hops or None)
HAND = [("base", (), 100.0, 1000, None), ("pred", (), 300.0, 200, None),
        ("base", ("hbm_budget",), 100.0, 1000, None), ("pred", ("hbm_budget",), 110.0, 900, None),
        ("base", ("token_dispatch",), 100.0, 1000, 500),
        ("pred", ("token_dispatch",), 300.0, 200, 600)]


def _record(number, strategy, switches, status="ok", summary=None, error=None, **scenario):
    params = {"max_iterations": 2, **dict.fromkeys(switches, True)}
    return {**SCENARIO, **scenario, "key": f"k{number}", "status": status,
            "strategy": strategy, "params": json.dumps(params, sort_keys=True),
            "inputs": "{}", "hwmodel_version": "0", "error": error,
            "row": "" if status == "ok" else None,
            "summary": None if summary is None else json.dumps(summary),
            "per_link": "[]" if status == "ok" else None}


def write_hand_store(path, extra=()):
    with ResultsStore(path) as store:
        for n, (strategy, switches, throughput, hops, dispatch) in enumerate(HAND):
            summary = {"throughput": throughput, "hops": hops, "counts": {}}
            if switches:
                summary["physical"] = list(switches)
            if dispatch is not None:
                summary["counts"]["dispatch_hops"] = dispatch
            store.put(_record(n, strategy, switches, summary=summary), {})
        for n, record in enumerate(extra):
            store.put({**record, "key": f"x{n}"}, {})
    return path


def _row(rows, mode, strategy):
    (row,) = [r for r in rows if (r["mode"], r["strategy"]) == (mode, strategy)]
    return row


def test_paper_mode_relative_to_itself_is_exactly_one(tmp_path):
    rows = ab.summary_rows(ab.ablation(write_hand_store(tmp_path / "r.sqlite")))
    for strategy in ("base", "pred"):
        row = _row(rows, "paper", strategy)
        assert (row["throughput_vs_paper"], row["hops_vs_paper"]) == (1.0, 1.0)
    assert _row(rows, "paper", "pred")["x_base"] == 3.0                 # 300 / 100


def test_the_ratios_are_the_hand_worked_ones(tmp_path):
    rows = ab.summary_rows(ab.ablation(write_hand_store(tmp_path / "r.sqlite")))
    pred = _row(rows, "hbm_budget", "pred")
    assert pred["throughput_vs_paper"] == pytest.approx(110 / 300, rel=1e-12)
    assert pred["hops_vs_paper"] == pytest.approx(900 / 200, rel=1e-12)
    assert pred["x_base"] == pytest.approx(1.1, rel=1e-12)             # 110 / 100
    assert pred["x_base_paper"] == pytest.approx(3.0, rel=1e-12)       # 300 / 100
    # a switch that cannot act on a run (here: same throughput and hops) gives exactly 1
    base = _row(rows, "hbm_budget", "base")
    assert (base["throughput_vs_paper"], base["hops_vs_paper"]) == (1.0, 1.0)
    assert _row(rows, "token_dispatch", "pred")["dispatch_hops"] == 600
    assert _row(rows, "paper", "base")["dispatch_hops"] is None


def test_hops_relative_to_zero_paper_hops():
    assert ab.relative(0, 0) == 1.0            # ep makes no hops in either mode: unchanged
    assert math.isinf(ab.relative(5, 0))
    assert ab.relative(3, 4) == 0.75


def test_the_findings_name_the_numbers_of_the_table(tmp_path):
    runs = ab.ablation(write_hand_store(tmp_path / "r.sqlite"))
    table, text = ab.markdown(runs), ab.findings(runs)
    assert "`pred` keeps 1.10x of its 3.00x" in text
    assert "| hbm_budget | pred | 1 | 0 | 0.367 | 4.500 | 1.10x | 3.00x | - |" in table
    assert "`base` runs at 1.000 of its paper throughput (costs it 0.0 %)" in text
    assert "add 500 hops to a `base` run" in text
    assert "| token_dispatch | base | 1 | 0 | 1.000 | 1.000 | 1.00x | 1.00x | 500 |" in table
    assert "`pred` 4.500" in text                         # hops relative to paper mode


def test_a_refused_run_is_counted_and_named(tmp_path):
    refused = _record(0, "base", ("hbm_budget",), status="failed", model="kimi-k2",
                      trace_sha256="t", error="ValueError: hbm_budget: the batch (4 requests) "
                      "does not fit: die 0 needs 86 GB; expected fewer requests")
    runs = ab.ablation(write_hand_store(tmp_path / "r.sqlite", [refused]))
    assert _row(ab.summary_rows(runs), "hbm_budget", "base")["failed"] == 1
    text = ab.findings(runs)
    assert ("It failed 1 runs: kimi-k2 (1 runs; the first: hbm_budget: the batch (4 requests) "
            "does not fit: die 0 needs 86 GB)") in text
    assert "expected fewer" not in text
    line = next(r for r in ab.run_csv(runs).splitlines() if r.startswith("kimi-k2"))
    assert ",failed," in line and "does not fit" in line


def test_the_command_reports_its_grid_only(tmp_path):
    """A store shared with other sweeps: only the runs of the ablation's grid are its table."""
    grid = ab.ablation_grid(models=["qwen3-235b"], batches=[8], wafers=["dojo"],
                            strategies=["base"], switches=[SWITCHES[0]])
    mine = {"model": "qwen3-235b", "trace": "qwen3-235b/synth(seed=0)/8", "batch": 8}
    summary = {"throughput": 1.0, "hops": 1, "counts": {}}
    with ResultsStore(tmp_path / "r.sqlite") as store:
        for n, (wafer, strategy, switches) in enumerate([
                ("dojo", "base", ()), ("dojo", "base", (SWITCHES[0],)),
                ("tsmc-sow", "base", ()), ("dojo", "ep", ()), ("dojo", "base", tuple(SWITCHES))]):
            params = dict.fromkeys(switches, True)
            record = _record(n, strategy, (), summary=summary, wafer=wafer, **mine)
            store.put({**record, "params": json.dumps(params)}, {})
    runs = ab.ablation(tmp_path / "r.sqlite", grid)
    assert [(r.wafer, r.strategy, r.mode) for r in runs] == [("dojo", "base", "paper"),
                                                             ("dojo", "base", SWITCHES[0])]
    assert len(ab.ablation(tmp_path / "r.sqlite")) == 5


def test_a_switch_refusal_is_told_from_a_fault():
    assert ab.is_refusal("ValueError: hbm_budget: the batch (4 requests) does not fit: ...")
    assert not ab.is_refusal("ValueError: batch: the trace holds 3 requests, expected 4")
    assert not ab.is_refusal("KeyError: 'hbm_budget'")


def test_the_report_section_only_with_physical_runs(tmp_path):
    from hwmodel.sweep.report import load_results
    ok, failed, _ = load_results(write_hand_store(tmp_path / "r.sqlite"))
    section, files = ab.report_section(ok, failed, tmp_path)
    assert "Physical switches: ablation" in section and "keeps 1.10x of its 3.00x" in section
    assert [f.name for f in files] == ["ablation.png"]
    paper = [r for r in ok if not r.get("physical")]
    assert ab.report_section(paper, [], tmp_path / "none") == ("", [])


# ------------------------------------------------------------------ the command


@pytest.mark.parametrize(("argv", "expected"), [
    (["--switches", "links"], ["--switches: unknown switch 'links'", "expected one of"]),
    (["--batches", "0"], ["--batches: expected positive request counts, not '0'"]),
    (["--batches", "4k"], ["--batches: expected comma-separated integers, not '4k'"]),
    (["--models", "llamaX"], ["unknown model preset 'llamaX'"]),
    (["--strategies", "fast"], ["unknown strategy 'fast'"]),
    (["--max-iterations", "0"], ["--max-iterations: expected an integer >= 1, not 0"]),
    (["--jobs", "0"], ["--jobs: expected a process count >= 1, not 0"]),
])
def test_bad_options_exit_2_in_one_line_before_any_work(capsys, tmp_path, argv, expected):
    store = tmp_path / "r.sqlite"
    code = main(["ablate", *argv, "--store", str(store), "-o", str(tmp_path / "out")])
    error_line(capsys, code, expected)
    assert not store.exists() and not (tmp_path / "out").exists()


def test_the_output_folder_is_checked_before_the_runs(capsys, tmp_path):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "old.md").write_text("x")
    store = tmp_path / "r.sqlite"
    code = main(["ablate", "--models", "qwen3-235b", "--batches", "4", "--store", str(store),
                 "-o", str(tmp_path / "out")])
    error_line(capsys, code, ["--out", "is not empty; pass --force"])
    assert not store.exists()
    code = main(["ablate", "--store", str(tmp_path / "out" / "r.sqlite"), "-o",
                 str(tmp_path / "out"), "--force"])
    error_line(capsys, code, ["is inside --out"])


@pytest.mark.slow  # 18 s on the loaded two-core machine
def test_a_small_ablation_runs_end_to_end(capsys, tmp_path):
    """Llama-4, 4 requests, 2 iterations: ``hbm_budget`` cannot act on ``base`` (no replicas)
    nor on ``pred`` (its few replicas fit a 72 GB die), so every ratio is exactly 1; the sweep
    report of the same store carries the ablation section. A run of the same scenario stored
    under another key (as before a preset changed: other inputs) is not in the table."""
    store, out = tmp_path / "r.sqlite", tmp_path / "out"
    code = main(["ablate", "--models", "llama4-maverick", "--batches", "4", "--wafers", "dojo",
                 "--strategies", "base,pred", "--switches", "hbm_budget",
                 "--max-iterations", "2", "--store", str(store), "-o", str(out), "--jobs", "1",
                 "--quiet"])
    printed = capsys.readouterr().out
    assert code == 0
    assert "4 runs in the grid: 0 already stored, 4 executed, 0 failed" in printed
    assert sorted(p.name for p in out.iterdir()) == ["ablation.csv", "ablation.md",
                                                     "ablation.png"]
    lines = (out / "ablation.csv").read_text().splitlines()
    assert len(lines) == 5
    for line in lines[1:]:
        cells = dict(zip(lines[0].split(","), line.split(",")))
        assert (cells["throughput_vs_paper"], cells["hops_vs_paper"]) == ("1.0", "1.0")
    assert "Under `hbm_budget`, `pred` keeps" in printed
    assert "`base` runs at 1.000 of its paper throughput (costs it 0.0 %)" in printed
    assert code == main(["report", str(store), "-o", str(tmp_path / "report")])
    assert "Physical switches: ablation" in (tmp_path / "report" / "report.html").read_text()
    with ResultsStore(store) as results:             # base in paper mode, stored again ...
        (paper_base,) = [r for r in results.runs("ok") if r["strategy"] == "base"
                         and not any(json.loads(r["params"]).get(s) for s in SWITCHES)]
        summary = {**json.loads(paper_base["summary"]), "throughput": 1.0}
        results.put({**paper_base, "key": "stale-inputs", "summary": json.dumps(summary)}, {})
    capsys.readouterr()                              # ... as if under older inputs
    assert main(["ablate", "--models", "llama4-maverick", "--batches", "4", "--wafers", "dojo",
                 "--strategies", "base,pred", "--switches", "hbm_budget",
                 "--max-iterations", "2", "--store", str(store), "-o", str(out), "--jobs", "1",
                 "--quiet", "--force"]) == 0
    assert "4 runs in the grid: 4 already stored, 0 executed" in capsys.readouterr().out
    assert (out / "ablation.csv").read_text().splitlines() == lines
