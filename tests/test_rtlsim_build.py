# amaranth: UnusedElaboratable=no
"""Building, caching and driving the compiled simulator: errors name the cause."""

import pytest

from hwmodel import rtlsim
from hwmodel.components.local_cp.rtl import LocalCP
from hwmodel.components.local_cp.sim import simulate_local_cp
from hwmodel.components.pdu.rtl import PDU
from hwmodel.components.pdu.sim import simulate_pdu
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


def test_optimisation_level_is_in_the_cache_key_and_checked(monkeypatch):
    text = "module \\top\nend\n"
    monkeypatch.setenv(build.OPT_ENV, "-O2")
    optimised = build.design_key(text)
    monkeypatch.delenv(build.OPT_ENV)
    assert build.design_key(text) != optimised
    monkeypatch.setenv(build.OPT_ENV, "-O9")
    with pytest.raises(RTLSimError, match=r"^HWMODEL_RTLSIM_OPT='-O9': expected one of -O0, "):
        simulate_pdu([("query", 1)], 32, engine="cxxrtl")


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


# ------------------------------------------------------------------ one design per process
def test_design_identity_separates_every_parameter_and_a_patched_class():
    assert rtlsim.design_identity(PDU(32)) == rtlsim.design_identity(PDU(32))
    assert rtlsim.design_identity(PDU(32)) != rtlsim.design_identity(PDU(64))
    same = {"num_sm_slots": 3, "num_experts": 16}
    assert rtlsim.design_identity(LocalCP(**same, num_dies=4)) != rtlsim.design_identity(
        LocalCP(**same, num_dies=8))
    assert rtlsim.design_identity(LocalCP(**same)) == rtlsim.design_identity(LocalCP(**same))
    patched = type("PDU", (PDU,), {})      # e.g. a planted bug: a copy of the class
    assert rtlsim.design_identity(patched(32)) != rtlsim.design_identity(PDU(32))


def test_local_cps_of_two_dies_share_one_simulator_and_each_sees_its_die(monkeypatch):
    # Three tasks from die 1 (20 + 30 + 50 tokens), no prediction: on die 1 all are local,
    # on die 2 all three are remote. The die is the design's input port: one library serves
    # both dies (the second call exports nothing), and a strap left at 0 or at the previous
    # die would count 3 remote tasks on both.
    layer = ([(5, 20, 1), (6, 30, 1), (7, 50, 1)], None, None)
    kwargs = {"num_sm_slots": 3, "num_experts": 16, "num_dies": 4, "engine": "cxxrtl"}
    on_2, _, _ = simulate_local_cp([layer], die=2, **kwargs)
    monkeypatch.setattr(rtlsim, "compile_component",
                        lambda *a: pytest.fail("exported again: the design was not shared"))
    on_1, _, _ = simulate_local_cp([layer], die=1, **kwargs)
    assert [(s.die, s.tasks, s.tokens, s.remote_tasks) for s in on_2 + on_1] == [
        (2, 3, 100, 3), (1, 3, 100, 0)]


def test_a_reused_design_starts_each_run_from_reset_like_pysim(monkeypatch):
    # Run 1 sets expert 3's is_local then queries it: (cp_en 0, is_local 1). Run 2 only
    # queries: a fresh PDU answers (0, 0); a simulator left in run 1's state would say (0, 1).
    first, second = [("set_local", 3), ("query", 3)], [("query", 3)]
    assert simulate_pdu(first, 32, engine="cxxrtl") == ([(False, True)], 3)
    monkeypatch.setattr(rtlsim, "compile_component",
                        lambda *a: pytest.fail("exported again: the design was not reused"))
    for _ in range(2):
        assert simulate_pdu(second, 32, engine="cxxrtl") == simulate_pdu(second, 32) == (
            [(False, False)], 2)
        assert simulate_pdu(first, 32, engine="cxxrtl") == simulate_pdu(first, 32)
