"""Wafer configuration: YAML errors name the file, the YAML path and the value; round trips."""

import pytest

from hwmodel.config import ConfigError
from hwmodel.params import WAFER_PRESETS, load_wafer
from hwmodel.topologies.wafer import build_wafer

GOOD = """\
wafer:
  name: mine
  mesh_x: 8
  mesh_y: 8
  die:
    d2d: {bandwidth_GBps: 1741.0}
"""


def write(tmp_path, text, name="w.yaml"):
    path = tmp_path / name
    path.write_text(text)
    return path


def error_of(tmp_path, text) -> ConfigError:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_wafer(path)
    assert str(path) in str(info.value)
    return info.value


def test_good_user_yaml_loads(tmp_path):
    params = load_wafer(write(tmp_path, GOOD))
    assert (params.name, params.mesh_x, params.mesh_y, params.num_dies) == ("mine", 8, 8, 64)


def test_unknown_key_names_path_and_choices(tmp_path):
    error = error_of(tmp_path, GOOD.replace("bandwidth_GBps", "bandwith_GBps"))
    assert error.path == "wafer.die.d2d.bandwith_GBps"
    assert "unknown key 'bandwith_GBps' for D2DParams" in str(error)
    assert "bandwidth_GBps" in str(error).split("expected one of:")[1]


def test_wrong_type_names_path_and_value(tmp_path):
    error = error_of(tmp_path, GOOD.replace("mesh_y: 8", "mesh_y: eight"))
    assert error.path == "wafer.mesh_y"
    assert "expected an integer, not 'eight'" in str(error)


@pytest.mark.parametrize("value", ["0", "-5.0"])
def test_non_positive_bandwidth_names_path_and_value(tmp_path, value):
    error = error_of(tmp_path, GOOD.replace("1741.0", value))
    assert error.path == "wafer.die.d2d.bandwidth_GBps"
    assert f"bandwidth_GBps must be greater than zero, not {float(value)!r}" in str(error)


@pytest.mark.parametrize(("line", "path", "message"), [
    ("mesh_x: 0", "wafer.mesh_x", "mesh_x must be greater than zero, not 0"),
    ("mesh_x: -3", "wafer.mesh_x", "mesh_x must be greater than zero, not -3"),
    ("mesh_x: 2.5", "wafer.mesh_x", "expected an integer, not 2.5"),
])
def test_impossible_mesh_names_path_and_value(tmp_path, line, path, message):
    error = error_of(tmp_path, GOOD.replace("mesh_x: 8", line))
    assert error.path == path and message in str(error)


@pytest.mark.parametrize(("section", "value", "path", "message"), [
    ("hbm: {efficiency: 1.5}", None, "wafer.die.hbm.efficiency",
     "efficiency must be in (0, 1], not 1.5"),
    ("hbm: {reserved_fraction: 1.0}", None, "wafer.die.hbm.reserved_fraction",
     "reserved_fraction must be in [0, 1), not 1.0"),
    ("llc: {hit_latency_ns: -1.0}", None, "wafer.die.llc.hit_latency_ns",
     "hit_latency_ns must be zero or more, not -1.0"),
    ("compute: {peak_TFLOPS: true}", None, "wafer.die.compute.peak_TFLOPS",
     "expected a number, not True"),
])
def test_other_impossible_values(tmp_path, section, value, path, message):
    error = error_of(tmp_path, GOOD.replace("d2d: {bandwidth_GBps: 1741.0}", section))
    assert error.path == path and message in str(error)


def test_missing_mesh_and_missing_section(tmp_path):
    error = error_of(tmp_path, GOOD.replace("  mesh_y: 8\n", ""))
    assert error.path == "wafer.mesh_y" and "missing required key 'mesh_y'" in str(error)
    error = error_of(tmp_path, "name: x\n")
    assert "missing section 'wafer'" in str(error)


def test_unknown_preset_and_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="unknown wafer preset 'dojoo'; expected one of dojo"):
        load_wafer("dojoo")
    with pytest.raises(ConfigError, match="cannot read"):
        load_wafer(tmp_path / "absent.yaml")


@pytest.mark.parametrize("preset", WAFER_PRESETS)
def test_dump_load_round_trip_gives_an_equal_system(tmp_path, preset):
    wafer = build_wafer(load_wafer(preset))
    path = tmp_path / f"{preset}.yaml"
    text = wafer.dump_params(path)
    assert path.read_text() == text
    again = build_wafer(load_wafer(path))
    assert again.graph_params() == wafer.graph_params() == load_wafer(preset)
    assert again.structure() == wafer.structure()
    # And the dump of the reloaded system is byte-identical (deterministic output).
    assert again.dump_params() == text


def test_round_trip_keeps_a_changed_value(tmp_path):
    path = write(tmp_path, GOOD.replace("1741.0", "123.5"))
    wafer = build_wafer(load_wafer(path))
    again = build_wafer(load_wafer(write(tmp_path, wafer.dump_params(), "again.yaml")))
    assert again.links[0].bandwidth_GBps == 123.5
    assert again.structure() == wafer.structure()
    assert again.structure() != build_wafer(load_wafer("dojo")).structure()
