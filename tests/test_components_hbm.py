"""HBM analytical model (SPEC sections 3 and 6) against closed forms and hand-worked cases."""

from fractions import Fraction
from math import ceil

import numpy as np
import pytest
from kernel_tables import make_tables, run_layer

from hwmodel.components.hbm import HBM
from hwmodel.params import HBMParams, load_wafer
from hwmodel.system.engine import Counter, LayerKernel
from hwmodel.topologies.wafer import build_wafer


def _ceil_div(nbytes, bandwidth, efficiency):
    """ceil(bytes / (bandwidth x efficiency)) in exact rational arithmetic."""
    return ceil(Fraction(nbytes) / (Fraction(str(bandwidth)) * Fraction(str(efficiency))))


@pytest.mark.parametrize("nbytes", [0, 1, 3015, 3016, 88_080_384 // 3, 83_886_080, 12_582_912])
def test_lone_read_is_latency_plus_bytes_over_effective_bandwidth(nbytes):
    """300 ns + ceil(bytes / (3350 x 0.9)), the SPEC's formula, for a preset wafer's HBM."""
    hbm = build_wafer(load_wafer("tsmc-sow")).dies[0].hbm
    assert hbm.access_latency_ns(nbytes) == 300 + _ceil_div(nbytes, 3350, 0.9)


def test_hand_worked_reads():
    hbm = HBM(params=HBMParams())
    # 3015 B / 3015 B/ns = exactly 1 ns; one more byte needs a second ns
    assert hbm.access_latency_ns(3015) == 301
    assert hbm.access_latency_ns(3016) == 302
    # a Llama-4 slice (5120 x 8192 x 2 B) at the artefact's 0.85: 83,886,080 / 2847.5
    # = 29,459.55 -> 29,460 ns
    assert hbm.access_latency_ns(83_886_080, efficiency=0.85) == 300 + 29_460
    # local read of one token: the slice plus (hidden + ffn) x 2 B of activations,
    # 83,912,704 / 2847.5 = 29,468.9 -> 29,469 ns
    assert hbm.access_latency_ns(83_886_080 + 13_312 * 2, 0.85) == 300 + 29_469


def test_effective_bandwidth_and_usable_capacity():
    hbm = HBM(params=HBMParams(bandwidth_GBps=8000, efficiency=0.5, capacity_bytes=180 * 10**9))
    assert hbm.effective_bandwidth_GBps() == 4000
    assert hbm.effective_bandwidth_GBps(0.25) == 2000
    assert hbm.access_latency_ns(4001) == 302
    assert hbm.usable_bytes == 162 * 10**9          # 10 % reserved for the system


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match="nbytes"):
        HBM().access_latency_ns(-1)
    with pytest.raises(TypeError, match="HBMParams"):
        HBM(params={"bandwidth_GBps": 1})


def test_lone_local_read_through_the_engine():
    """One task, one slice, on its home die: LLC miss, then HBM read (latency from the HBM
    model, tokens of activations included), then compute and LLC fill in parallel."""
    hbm = HBM(params=HBMParams())
    slice_bytes, act = 30_150, 100
    tokens = 4
    local_read = [hbm.access_latency_ns(slice_bytes + act * t) for t in range(8)]
    tables = make_tables(1, {}, home=[0], hbm_slice=hbm.access_latency_ns(slice_bytes),
                         local_read=local_read, compute=np.arange(8) * 1000,
                         slice_bytes=slice_bytes, act_bytes_per_token=act)
    kernel = LayerKernel(tables, num_links=0)
    end, stalled, dups = run_layer(kernel, [0], [0], [tokens])
    dram = kernel.outputs.dram_bytes
    lo, hi = kernel.outputs.span_lo, kernel.outputs.span_hi
    read = 300 + ceil(Fraction(slice_bytes + act * tokens, 3015))      # 300 + 11 ns
    assert read == 311
    assert end == 110 + read + 4000               # compute (4 us) outlasts the 30 ns fill
    assert not stalled and len(dups) == 0
    assert dram[0] == slice_bytes + act * tokens
    assert kernel.counters[Counter.LOCAL_HBM_READS] == 1
    assert (lo[0], hi[0]) == (0, end)
