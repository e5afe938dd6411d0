"""Grid expansion and validation (hwmodel.sweep.grid)."""

import pytest

from hwmodel.config import ConfigError
from hwmodel.sweep import load_grid, parse_grid


def _grid(**section):
    base = {"models": ["llama4-maverick"], "batches": [4], "wafers": ["dojo"],
            "strategies": ["base"]}
    base.update(section)
    return parse_grid({"sweep": base}, "g.yaml")


def test_runs_are_the_cross_product_in_fixed_order():
    grid = _grid(models=["llama4-maverick", "qwen3-235b"], batches=[4, 8],
                 wafers=["dojo", "tsmc-sow"], strategies=["base", "ep", "allo"],
                 params={"max_iterations": [2, 3], "block_size": 256})
    # 2 models x 2 batches x 2 wafers x 2 max_iterations x 3 strategies
    assert len(grid.runs) == 48
    first, last = grid.runs[0], grid.runs[-1]
    assert (first.trace.model, first.trace.batch, first.wafer, first.strategy) == \
        ("llama4-maverick", 4, "dojo", "base")
    assert first.params_dict() == {"block_size": 256, "max_iterations": 2}
    assert (last.trace.model, last.trace.batch, last.wafer, last.strategy) == \
        ("qwen3-235b", 8, "tsmc-sow", "allo")
    assert last.params_dict()["max_iterations"] == 3
    # strategies vary fastest: runs 0..2 share everything else
    assert [r.strategy for r in grid.runs[:3]] == ["base", "ep", "allo"]


def test_strategies_default_to_all_five():
    grid = parse_grid({"sweep": {"models": ["llama4-maverick"], "batches": [4],
                                 "wafers": ["dojo"]}}, "g.yaml")
    assert [r.strategy for r in grid.runs] == ["base", "ep", "allo", "pred", "allo+pred"]


@pytest.mark.parametrize("section, key, words", [
    ({"strategies": ["base", "fast"]}, "sweep.strategies", "'fast'"),
    ({"batches": [4, 0]}, "sweep.batches", "0"),
    ({"batches": []}, "sweep.batches", "[]"),
    ({"colour": 1}, "sweep.colour", "unknown key"),
    ({"params": {"block_size": -1}}, "block_size", "-1"),
    ({"params": {"bogus": 1}}, "bogus", "bogus"),
    ({"seed": "x"}, "sweep.seed", "'x'"),
    ({"traces": [3]}, "sweep.traces", "3"),
    ({"traces": ["missing.store"]}, "sweep.traces", "missing.store"),
])
def test_bad_values_name_the_key_and_value(section, key, words):
    with pytest.raises(ConfigError) as error:
        _grid(**section)
    message = str(error.value)
    assert message.startswith("g.yaml: ") and key in message and words in message
    assert "\n" not in message


def test_unknown_wafer_and_model_are_config_errors():
    with pytest.raises(ConfigError, match="nowafer"):
        _grid(wafers=["nowafer"])
    with pytest.raises(ConfigError, match="nomodel"):
        _grid(models=["nomodel"])


def test_user_wafer_yaml_is_relative_to_the_grid_file(tmp_path):
    (tmp_path / "w.yaml").write_text("wafer:\n  name: w\n  mesh_x: 2\n  mesh_y: 3\n")
    (tmp_path / "g.yaml").write_text("sweep:\n  models: [llama4-maverick]\n  batches: [4]\n"
                                     "  wafers: [w.yaml, dojo]\n  strategies: [base]\n")
    grid = load_grid(tmp_path / "g.yaml")
    assert [r.wafer for r in grid.runs] == [str(tmp_path / "w.yaml"), "dojo"]


def test_cli_bad_grid_is_one_line_exit_2(tmp_path, capsys):
    from hwmodel.cli import main
    (tmp_path / "g.yaml").write_text("sweep:\n  models: [llama4-maverick]\n  batches: [four]\n"
                                     "  wafers: [dojo]\n")
    assert main(["sweep", str(tmp_path / "g.yaml"), "-o", str(tmp_path / "r.sqlite")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "sweep.batches" in err and "'four'" in err
    assert not (tmp_path / "r.sqlite").exists()


def test_trace_entries_synth_like_and_paths(tmp_path):
    (tmp_path / "t.store").write_bytes(b"")
    grid = _grid(traces=["synth", {"synth_like": str(tmp_path / "t.store")},
                         str(tmp_path / "t.store")])
    specs = [(r.trace.path, r.trace.like) for r in grid.runs]
    assert specs == [(None, None), (None, str(tmp_path / "t.store")),
                     (str(tmp_path / "t.store"), None)]
    with pytest.raises(ConfigError, match=r"sweep.traces.synth_like: no trace source"):
        _grid(traces=[{"synth_like": "nowhere"}])
