"""The reproduction report (hwmodel.sweep.report) on hand-made results stores."""

import json
import math
import re

import pytest

from hwmodel.sweep import ResultsStore
from hwmodel.sweep.report import comparisons, load_results, write_report

MESHES = {"dojo": (5, 5), "tsmc-sow": (3, 8)}


def _put(store, model, wafer, batch, strategy, throughput, hops, dram=(1.0, 2.0, 0.0)):
    mesh_x, mesh_y = MESHES[wafer]
    summary = {"mesh_x": mesh_x, "mesh_y": mesh_y, "throughput": throughput, "hops": hops,
               "local_dram_read_GiB": dram[0], "remote_dram_read_GiB": dram[1],
               "local_dram_write_GiB": dram[2]}
    links = [{"dies": [0, 1], "bytes": float(hops)}, {"dies": [0, mesh_y], "bytes": 0.0}]
    key = f"{model}-{wafer}-{batch}-{strategy}"
    row = ",".join([model, strategy, str(mesh_y), str(mesh_x), str(batch)] + ["0"] * 14
                   + [f"{throughput:.0f}"])
    store.put({"key": key, "status": "ok", "model": model, "trace": "t", "trace_sha256": "h",
               "batch": batch, "wafer": wafer, "strategy": strategy, "params": "{}",
               "inputs": "{}", "hwmodel_version": "0", "row": row,
               "summary": json.dumps(summary), "per_link": json.dumps(links)},
              {"wall_s": 1.0})


@pytest.fixture
def results(tmp_path):
    """Two meshes x two batches of DeepSeek; numbers chosen so the ratios are easy by hand."""
    path = tmp_path / "r.sqlite"
    with ResultsStore(path) as store:
        for wafer, gain in (("dojo", 7.0), ("tsmc-sow", 8.0)):
            for batch, ep in ((4096, 700.0), (16384, 350.0)):
                _put(store, "deepseek-v3", wafer, batch, "base", 100.0, 1000)
                _put(store, "deepseek-v3", wafer, batch, "ep", ep, 500)
                _put(store, "deepseek-v3", wafer, batch, "pred", 300.0, 250 if batch == 4096
                     else 150)
                _put(store, "deepseek-v3", wafer, batch, "allo+pred", 100.0 * gain, 0)
        store.put({"key": "bad", "status": "failed", "model": "deepseek-v3", "trace": "t",
                   "trace_sha256": "h", "batch": 8192, "wafer": "dojo", "strategy": "allo",
                   "params": "{}", "inputs": "{}", "hwmodel_version": "0",
                   "error": "TraceError: broken <store>"}, {})
    return path


def test_comparisons_match_hand_worked_ratios(results):
    ok, failed, _ = load_results(results)
    assert len(ok) == 16 and len(failed) == 1
    measured = {label: value for label, _, value in comparisons(ok)}
    # allo+pred / base is 7 on dojo and 8 on tsmc-sow at both batches
    assert measured["throughput allo+pred / base, average"] == pytest.approx(7.5)
    assert measured["throughput allo+pred / base, dojo"] == pytest.approx(7.0)
    assert measured["throughput allo+pred / base, tsmc-sow"] == pytest.approx(8.0)
    assert measured["throughput allo+pred / base, deepseek-v3"] == pytest.approx(7.5)
    assert measured["throughput allo+pred / base, kimi-k2"] is None  # no Kimi run
    assert measured["throughput pred / base, average"] == pytest.approx(3.0)
    # summed hops: base 4 x 1000, pred 2 x 250 + 2 x 150
    summed = "hop reduction {0}, summed (all base hops / all {0} hops)".format
    assert measured[summed("pred")] == pytest.approx(4000 / 800)
    assert math.isinf(measured[summed("allo+pred")])
    assert measured[summed("allo")] is None  # only failed
    # per-run ratios: pred 1000/250 twice and 1000/150 twice; allo+pred 0 hops counts as 1
    per_run = "hop reduction {0}, mean of per-run ratios (base hops / {0} hops, as hops.png)"
    assert measured[per_run.format("pred")] == pytest.approx((4 + 4 + 20 / 3 + 20 / 3) / 4)
    assert measured[per_run.format("allo+pred")] == pytest.approx(1000.0)
    assert measured[per_run.format("allo")] is None
    # over ep: 4096 -> (700/700 + 800/700) / 2; 16384 -> (700/350 + 800/350) / 2
    assert measured["throughput allo+pred / ep at batch 4096"] == pytest.approx(1500 / 1400)
    assert measured["throughput allo+pred / ep at batch 16384"] == pytest.approx(1500 / 700)


def test_report_embeds_every_figure_and_lists_failures(results, tmp_path):
    files = write_report(results, tmp_path / "out", command="hwmodel report r.sqlite -o out")
    names = sorted(f.name for f in files)
    assert names == ["batch.png", "fig12.png", "fig14.png", "hops.png", "links.png",
                     "report.html"]
    page = (tmp_path / "out" / "report.html").read_text()
    assert len(re.findall(r"src='data:image/png;base64,", page)) == 5  # self-contained
    assert "src='http" not in page and "<script" not in page
    assert "TraceError: broken &lt;store&gt;" in page  # failure listed, escaped
    assert "16 runs succeeded, 1 failed" in page
    assert "hwmodel report r.sqlite -o out" in page
    # the published/measured/ratio line of the average allo+pred speedup: 7.5 / 6.63
    assert re.search(r"average</td><td>6.63</td><td>7.50</td><td>1.13</td>", page)


def test_same_results_give_the_same_report_bytes(results, tmp_path):
    first = [f.read_bytes() for f in write_report(results, tmp_path / "a")]
    second = [f.read_bytes() for f in write_report(results, tmp_path / "b")]
    assert first == second


def test_partial_results_say_why_a_figure_is_not_drawn(tmp_path):
    path = tmp_path / "r.sqlite"
    with ResultsStore(path) as store:  # one batch size; base and pred in different scenarios
        _put(store, "qwen3-235b", "dojo", 64, "base", 10.0, 5)
        _put(store, "qwen3-235b", "tsmc-sow", 64, "pred", 10.0, 5)
    files = [f.name for f in write_report(path, tmp_path / "out")]
    assert files == ["fig14.png", "links.png", "report.html"]
    page = (tmp_path / "out" / "report.html").read_text()
    assert "Not drawn: the results hold a single batch size" in page
    assert page.count("Not drawn: no scenario has both a base run and another strategy") == 2


def test_cli_bad_results_is_one_line_exit_2(tmp_path, capsys):
    from hwmodel.cli import main
    (tmp_path / "junk.sqlite").write_text("not sqlite at all, just text " * 10)
    for target in ("missing.sqlite", "junk.sqlite"):
        assert main(["report", str(tmp_path / target), "-o", str(tmp_path / "out")]) == 2
        err = capsys.readouterr().err.strip()
        assert err.count("\n") == 0 and target in err
    assert not (tmp_path / "out").exists()
