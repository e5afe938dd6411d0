"""hwmodel.checks: the bulk check equals the per-element check, messages name the element."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hwmodel.checks import check_int, check_int_array, index_bits


@settings(deadline=None)    # the first call loads the compiled range check
@given(st.lists(st.integers(-3, 12), max_size=10))
def test_check_int_array_accepts_and_refuses_like_check_int(values):
    def per_element():
        return [check_int(f"x[{i}]", v, 0, 10) for i, v in enumerate(values)]
    try:
        expected = per_element()
    except ValueError as error:
        with pytest.raises(ValueError) as bulk:
            check_int_array("x", values, 0, 10)
        assert str(bulk.value) == str(error)    # first bad element, same message
        with pytest.raises(ValueError) as bulk:
            check_int_array("x", np.array(values, np.int64), 0, 10)
        assert str(bulk.value) == str(error)
    else:
        got = check_int_array("x", np.array(values, np.int64), 0, 10)
        assert got.dtype == np.int64 and got.tolist() == expected


@pytest.mark.parametrize("dtype", [np.int8, np.uint8, np.int16, np.uint16, np.int32, np.uint32,
                                   np.int64, np.uint64])
@pytest.mark.parametrize("lo, hi", [(0, 10), (3, 100), (None, 7), (2, None)])
def test_check_int_array_bounds_are_exact_for_every_integer_dtype(dtype, lo, hi):
    # the fast path compares each dtype with int64 bounds: one off at either end, or a
    # bound ignored, would accept lo - 1 or hi, or refuse lo or hi - 1
    edges = [v for v in (lo, hi) if v is not None]
    for value in sorted({max(0, v + step) for v in edges for step in (-1, 0, 1)}):
        ok = (lo is None or value >= lo) and (hi is None or value < hi)
        array = np.array([value], dtype)
        if ok:
            assert check_int_array("x", array, lo, hi).tolist() == [value]
        else:
            with pytest.raises(ValueError, match="x\\[0\\] must be"):
                check_int_array("x", array, lo, hi)


@pytest.mark.parametrize("values, kind, error", [
    ([1, True], TypeError, r"x\[1\] must be an integer, not True"),   # numpy would make it 1
    (np.array([1.0]), TypeError, r"x\[0\] must be an integer, not 1.0"),
    (np.zeros((2, 2), np.int64), TypeError, "1-D"),
    ([1, 2], ValueError, "x must have 3 entries"),
])
def test_check_int_array_refuses_bad_arrays(values, kind, error):
    with pytest.raises(kind, match=error):
        check_int_array("x", values, 0, 10, length=3 if kind is ValueError else None)


def test_check_int_names_element_with_a_template():
    with pytest.raises(ValueError, match=r"tasks\[2\]\.expert must be in \[0, 4\), not 7"):
        check_int_array("tasks[{i}].expert", [0, 1, 7], 0, 4)


def test_check_int_keeps_refusing_bool_and_accepts_numpy_integers():
    with pytest.raises(TypeError, match="n must be an integer, not False"):
        check_int("n", False)
    assert check_int("n", np.int16(5), 0, 6) == 5 and type(check_int("n", np.uint8(3))) is int



@pytest.mark.parametrize("count, bits", [(1, 1), (2, 1), (3, 2), (24, 5), (25, 5), (32, 5),
                                         (33, 6), (64, 6), (65, 7), (256, 8), (1024, 10)])
def test_index_bits_is_ceil_log2_at_least_one(count, bits):
    # die ids 0 .. count - 1: 32 ids fit 5 bits, the 33rd needs a sixth
    assert index_bits(count) == bits


def test_index_bits_refuses_an_empty_range():
    with pytest.raises(ValueError, match=r"count must be 1 or more, not 0"):
        index_bits(0)
