"""Kernels without numba at start-up (issue 18): hwmodel.jit's lazy kernels and hwmodel.aot's
ahead-of-time build. The build's argument check must accept exactly what numba's ``typeof``
types as the build's signature (a wrong type read by a compiled wrapper is memory read
wrongly), and a replay through the build must print what the JIT prints."""

import json
import shutil
import subprocess
import sys
import sysconfig
from typing import NamedTuple

import numpy as np
import pytest
from conftest import subprocess_env

from hwmodel.aot import _checker, _spec, source_key
from hwmodel.jit import Kernel, njit


class Pair(NamedTuple):
    left: np.ndarray
    right: np.ndarray


class Other(NamedTuple):      # the same fields as Pair, another class
    left: np.ndarray
    right: np.ndarray


def _arrays(rng) -> list:
    """Arrays numba types differently: dtypes, dimensions, layouts, read-only, unaligned,
    foreign byte order, a subclass."""
    found = []
    for dtype in (np.bool_, np.uint8, np.int16, np.int32, np.int64, np.uint64, np.float32,
                  np.float64):
        for ndim in (1, 2, 3):
            shape = tuple(int(s) for s in rng.integers(1, 4, size=ndim))
            base = rng.integers(0, 2, size=shape).astype(dtype)
            found.append(base)
            found.append(np.asfortranarray(base))
            found.append(np.repeat(base, 2, axis=-1)[..., ::2])      # strided: layout A
            frozen = base.copy()
            frozen.flags.writeable = False
            found.append(frozen)
    raw = np.zeros(8 * 5 + 1, np.uint8)
    found.append(raw[1:].view(np.int64))                               # unaligned
    found.append(np.zeros(3, ">i8"))                                    # foreign byte order
    found.append(np.zeros((2, 2), np.int64).view(np.matrix))           # a subclass
    found.append(np.zeros((0, 3), np.int64))                            # empty
    return found


def _values(rng) -> list:
    arrays = _arrays(rng)
    scalars = [True, np.bool_(False), 3, np.int64(3), np.int32(3), 2 ** 63, -(2 ** 63),
               2.5, np.float64(2.5), np.float32(2.5), None, "x"]
    one, two = np.zeros(3, np.int64), np.zeros((2, 2), np.float64)
    tuples = [Pair(one, two), Pair(two, one), Other(one, two), (one, two),
              Pair(one, np.asfortranarray(np.zeros((2, 3))))]
    return arrays + scalars + tuples


def _numba_type(value):
    import numba
    from numba.core.errors import NumbaError
    try:
        return numba.typeof(value)
    except (ValueError, TypeError, NumbaError):
        return None


@pytest.mark.parametrize("seed", range(3))
def test_the_argument_check_accepts_exactly_numbas_type(seed):
    values = _values(np.random.default_rng(seed))
    types = [_numba_type(v) for v in values]
    specs = 0
    for value, numba_type in zip(values, types):
        spec = _spec(numba_type) if numba_type is not None else None
        if spec is None:
            continue          # a type the build does not take: such calls stay with the JIT
        specs += 1
        accepts = _checker([spec])
        for other, other_type in zip(values, types):
            same = other_type is not None and other_type == numba_type
            # a subclass, and an unaligned array (numba types it as aligned), go to the JIT
            plain = type(other) is not np.matrix and not (
                isinstance(other, np.ndarray) and not other.flags.aligned)
            assert accepts((other,)) == (same and plain), (value, other)
        assert not accepts(()) and not accepts((value, value))
    assert specs >= 60        # the arrays, int64, float64, bool and the named tuples


def test_a_structure_accepted_once_is_not_checked_again_but_another_one_is():
    import numba
    pair = Pair(np.zeros(3, np.int64), np.zeros((2, 2)))
    accepts = _checker([_spec(numba.typeof(pair))])
    assert accepts((pair,)) and accepts((pair,))
    assert not accepts((Pair(np.zeros(3, np.int32), np.zeros((2, 2))),))
    assert accepts((Pair(np.zeros(5, np.int64), np.ones((4, 1))),))


@pytest.mark.parametrize("damage", ["no manifest", "manifest not JSON", "library not loadable"])
def test_a_broken_build_leaves_the_kernels_to_numba(tmp_path, damage):
    folder = tmp_path / source_key()
    folder.mkdir()
    if damage != "no manifest":
        (folder / "manifest.json").write_text("[{" if damage == "manifest not JSON" else "[]")
    (folder / f"hwmodel_aot_{source_key()}.so").write_bytes(b"not a library")
    counting = ("import sys, numpy as np\nfrom hwmodel.system import engine\n"
                "out = np.zeros((1, 4), np.int64)\n"
                "engine.count_experts(np.array([[[1]], [[3]], [[1]]], np.uint8), 4, out)\n"
                "print(out.tolist(), 'numba' in sys.modules)\n")
    assert _run(counting, tmp_path) == "[[0, 2, 0, 1]] True\n"


def _count(rows, out):
    for r in range(rows.shape[0]):
        out[rows[r]] += 1


def test_a_kernel_is_numbas_function_and_numba_compiles_calls_to_it():
    kernel = njit(cache=False)(_count)
    assert isinstance(kernel, Kernel) and kernel.py_func is _count

    @njit(cache=False)
    def twice(rows, out):          # calls the kernel from compiled code: numba resolves it
        kernel(rows, out)
        kernel(rows, out)

    rows = np.random.default_rng(0).integers(0, 5, size=50)
    out = np.zeros(5, np.int64)
    twice(rows, out)
    assert out.tolist() == (2 * np.bincount(rows, minlength=5)).tolist()
    assert len(twice.signatures) == 1 and len(kernel.signatures) == 1


def _run(code: str, aot) -> str:
    env = subprocess_env(HWMODEL_AOT=str(aot), HWMODEL_TRACE_CACHE="off")
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=env, check=True).stdout


def _replay(trace) -> str:
    """A fresh process's replay of 6 requests of ``trace``, then whether it loaded numba (the
    built-in batch is synthesised with numba, so a trace is read)."""
    return ("import sys\nfrom hwmodel.cli import main\n"
            f"main(['replay', '--trace', {str(trace)!r}, '--batch', '6', '--strategy',"
            " 'ep,base', '--wafer', 'tsmc-sow', '--jobs', '1', '--quiet'])\n"
            "print('numba loaded:', 'numba' in sys.modules)\n")


@pytest.mark.slow  # builds an extension module: a minute or more under load
@pytest.mark.skipif(shutil.which(sysconfig.get_config_var("CC").split()[0]) is None,
                    reason="numba's pycc needs the C compiler Python was built with")
def test_a_replay_through_the_build_prints_what_the_jit_prints(llama4_traces, tmp_path):
    trace = llama4_traces / "mmlu" / "anatomy"
    build = ("from hwmodel.aot.build import build\n"
             f"build(['--trace', {str(trace)!r}, '--batch', '6', '--strategy', 'ep,base',"
             f" '--wafer', 'tsmc-sow'], {str(tmp_path)!r})\n")
    _run(build, "off")
    manifest = json.loads((tmp_path / source_key() / "manifest.json").read_text())
    assert {"hwmodel.system.engine:_run_layer", "hwmodel.system.engine:count_experts"} <= {
        entry["kernel"] for entry in manifest}
    through_build, through_jit = _run(_replay(trace), tmp_path), _run(_replay(trace), "off")
    assert through_build.endswith("numba loaded: False\n")
    assert through_jit.endswith("numba loaded: True\n")
    assert through_build.splitlines()[:-1] == through_jit.splitlines()[:-1]
    assert "ep" in through_build and "base" in through_build

    # the counting kernels on random inputs at their edges (no request, one expert, the
    # largest id), against their Python source; other types go to the JIT
    counting = (
        "import sys, numpy as np\nfrom hwmodel.system import engine\n"
        "rng = np.random.default_rng(1)\nbad = 0\n"
        "for n, layers, k, experts in [(0, 2, 1, 3), (1, 1, 1, 1), (7, 3, 2, 256),"
        " (40, 5, 4, 128)]:\n"
        "    rows = rng.integers(0, experts, size=(n, layers, k)).astype(np.uint8)\n"
        "    out, ref = np.full((layers, experts), 9), np.full((layers, experts), 9)\n"
        "    engine.count_experts(rows, experts, out)\n"
        "    engine.count_experts.py_func(rows, experts, ref)\n"
        "    bad += not np.array_equal(out, ref)\n"
        "    for layer in range(layers):\n"
        "        got, want = np.zeros(experts, np.int64), np.zeros(experts, np.int64)\n"
        "        m = engine.first_appearance(rows, layer, experts, got)\n"
        "        bad += m != engine.first_appearance.py_func(rows, layer, experts, want)\n"
        "        bad += not np.array_equal(got, want)\n"
        "print('mismatches', bad, 'numba loaded:', 'numba' in sys.modules)\n"
        "wide = rng.integers(0, 300, size=(5, 2, 2)).astype(np.int16)\n"
        "out = np.zeros((2, 300), np.int64)\nengine.count_experts(wide, 300, out)\n"
        "print(out.sum(), np.array_equal(out[0], np.bincount(wide[:, 0].ravel(), "
        "minlength=300)), 'numba loaded:', 'numba' in sys.modules)\n")
    assert _run(counting, tmp_path).splitlines() == [
        "mismatches 0 numba loaded: False", "20 True numba loaded: True"]


@pytest.mark.parametrize("seed", range(3))
def test_the_argument_check_of_several_arguments_is_each_ones(seed):
    # a call is accepted exactly when every argument has its own position's type
    rng = np.random.default_rng(10 + seed)
    values = [v for v in _values(rng) if _numba_type(v) is not None]
    typed = [(v, _spec(_numba_type(v))) for v in values]
    # each value its own type's check accepts (not a subclass, not an unaligned array)
    typed = [(v, s) for v, s in typed if s is not None and _checker([s])((v,))]
    for _ in range(200):
        count = int(rng.integers(1, 6))
        chosen = [typed[i] for i in rng.integers(0, len(typed), size=count)]
        accepts = _checker([spec for _, spec in chosen])
        assert accepts(tuple(v for v, _ in chosen))
        position = int(rng.integers(0, count))
        other, other_spec = typed[int(rng.integers(0, len(typed)))]
        args = [v for v, _ in chosen]
        args[position] = other
        single = _checker([chosen[position][1]])
        assert accepts(tuple(args)) == single((other,)), (chosen[position][1], other_spec)


def test_the_set_up_build_is_skipped_when_off_or_already_built(tmp_path, monkeypatch, capsys):
    from hwmodel.aot import build as aot_build
    monkeypatch.setattr(aot_build, "build", lambda **_: pytest.fail("must not build"))
    monkeypatch.setenv("HWMODEL_AOT", "off")
    assert aot_build.install() == 0
    assert capsys.readouterr().out == ("kernels: HWMODEL_AOT=off, no ahead-of-time build "
                                       "(they run through numba's JIT)\n")
    target = tmp_path / source_key()
    target.mkdir()
    (target / "manifest.json").write_text("[]\n")
    (target / f"hwmodel_aot_{source_key()}.so").write_bytes(b"")
    assert aot_build.install(tmp_path) == 0
    assert capsys.readouterr().out.startswith("kernels: built ahead of time for these sources "
                                              "already")
    (target / "manifest.json").unlink()       # an unfinished build is no build
    assert aot_build.built(tmp_path) is None


@pytest.mark.parametrize("failure", ["no pycc", "compiler fails", "sample fails"])
def test_the_set_up_build_never_fails(tmp_path, monkeypatch, capsys, failure):
    monkeypatch.delenv("HWMODEL_REQUIRE_AOT", raising=False)
    # without numba's pycc, or when the C compiler or the sample replay fails, the set-up
    # says so in one line and goes on (exit 0); the kernels then run through the JIT
    from hwmodel.aot import build as aot_build
    if failure == "no pycc":
        monkeypatch.setitem(sys.modules, "numba.pycc", None)       # import fails
    else:
        def broken(**_):
            if failure == "sample fails":
                raise SystemExit(2)
            raise RuntimeError("error: command 'gcc' failed: No such file or directory\nmore")
        monkeypatch.setattr(aot_build, "build", broken)
    assert aot_build.install(tmp_path) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("kernels: compiling ahead of time") and len(out) == 2
    assert out[1].startswith("kernels: no ahead-of-time build (")
    assert out[1].endswith("they run through numba's JIT (same results, slower start of each "
                           "process)")
    assert {"no pycc": "numba.pycc", "compiler fails": "gcc' failed",
            "sample fails": "SystemExit: 2"}[failure] in out[1]
    assert aot_build.built(tmp_path) is None
    monkeypatch.setenv("HWMODEL_REQUIRE_AOT", "1")     # CI: the same failure is an error
    assert aot_build.install(tmp_path) == 1
    assert capsys.readouterr().out.splitlines()[1:] == out[1:]
