# amaranth: UnusedElaboratable=no
"""Building, caching and driving the compiled simulator: errors name the cause."""

import pytest

from hwmodel.components.pdu.rtl import PDU, simulate_pdu
from hwmodel.rtlsim import RTLSimError, StreamSink, StreamSource, build, run_streams


def test_second_build_of_the_same_design_loads_the_cached_library(monkeypatch):
    first = build.compile_component(PDU(32))
    monkeypatch.setattr(build, "_atomic_compile",
                        lambda *a, **k: pytest.fail("compiled again despite the cache"))
    assert build.compile_component(PDU(32)) == first
    assert first.parent == build.cache_dir()


def test_cache_folder_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv(build.CACHE_ENV, str(tmp_path / "x"))
    assert build.cache_dir() == tmp_path / "x"
    monkeypatch.delenv(build.CACHE_ENV)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert build.cache_dir() == tmp_path / "hwmodel" / "rtlsim"


def test_missing_compiler_is_one_line_naming_the_debian_package(monkeypatch, tmp_path):
    monkeypatch.setenv(build.CACHE_ENV, str(tmp_path))
    monkeypatch.setenv("CXX", "no-such-g++-here")
    build._tool_versions.cache_clear()
    try:
        with pytest.raises(RTLSimError, match=r"^g\+\+ not found.*Debian package g\+\+") as error:
            simulate_pdu([("query", 1)], 32, engine="cxxrtl")
        assert "\n" not in str(error.value)
    finally:
        build._tool_versions.cache_clear()


def test_source_locations_do_not_change_the_cache_key():
    text = 'module \\top\n  attribute \\src "a.py:1"\n  wire \\x\nend\n'
    moved = text.replace("a.py:1", "/elsewhere/b.py:99")
    assert build.design_key(build._strip(text)) == build.design_key(build._strip(moved))
    assert build.design_key(build._strip(text)) != build.design_key(text.replace("x", "y"))


def test_watchdog_raises_the_pysim_timeout_error():
    # 20 queries need 21 edges (one response per cycle, one cycle of latency).
    tx = [("query", 1)] * 20
    with pytest.raises(TimeoutError, match="within 20 cycles"):
        simulate_pdu(tx, 32, max_cycles=20, engine="cxxrtl")
    with pytest.raises(TimeoutError, match="within 20 cycles"):
        simulate_pdu(tx, 32, max_cycles=20)
    assert simulate_pdu(tx, 32, max_cycles=21, engine="cxxrtl")[1] == 21


def test_unknown_engine_and_port_are_refused_by_name():
    with pytest.raises(ValueError, match="engine must be one of pysim, cxxrtl, not 'verilator'"):
        simulate_pdu([("query", 1)], 32, engine="verilator")
    with pytest.raises(ValueError, match="^the design has no stream port 'nope'$"):
        run_streams(PDU(32), [StreamSource("nope", [0])], [StreamSink("resp", 0)])


def test_vcd_of_the_compiled_run_holds_the_ports(tmp_path):
    path = tmp_path / "pdu.vcd"
    simulate_pdu([("set_local", 3), ("query", 3)], 32, vcd=path, engine="cxxrtl")
    text = path.read_text()
    assert "$var wire 1" in text and "cmd__valid" in text and "resp__payload" in text
    # 3 edges (2 commands, 1 cycle of latency) sampled twice each: last time stamp 2500 ps
    assert "#2500" in text and "#3000" not in text
