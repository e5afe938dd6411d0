"""D2D link model (SPEC sections 3 and 6): closed forms, and contention for one link worked by
hand through the replay's event kernel."""

from fractions import Fraction
from math import ceil

import numpy as np
import pytest

from hwmodel.components.d2d import transfer_latency_ns
from hwmodel.params import D2DParams, load_wafer
from hwmodel.system.engine import LayerKernel
from hwmodel.system.replay import Latencies
from hwmodel.topologies.wafer import build_wafer


@pytest.mark.parametrize("hops", [0, 1, 2, 7, 9])
@pytest.mark.parametrize("nbytes", [16, 1566, 1567, 29_360_128, 83_886_080])
def test_transfer_latency_is_hops_plus_bytes_over_effective_bandwidth(hops, nbytes):
    """200 ns x hops + ceil(bytes / (1741 x 0.9)) on the preset links."""
    link = build_wafer(load_wafer("tsmc-sow")).links[0]
    expected = 200 * hops + ceil(Fraction(nbytes) / (Fraction(1741) * Fraction("0.9")))
    assert link.transfer_latency_ns(hops, nbytes) == expected


def test_hand_worked_transfers():
    p = D2DParams()
    assert transfer_latency_ns(p, 1, 16) == 201              # a request message, one hop
    assert transfer_latency_ns(p, 7, 16) == 1401
    # a Llama-4 slice: 83,886,080 / 1566.9 = 53,536.7 -> 53,537 ns, plus 3 hops
    assert transfer_latency_ns(p, 3, 83_886_080) == 600 + 53_537
    with pytest.raises(ValueError, match="hops"):
        transfer_latency_ns(p, -1, 16)


# A 1 x 3 line of dies 0 - 1 - 2 with links L0 = (0, 1) and L1 = (1, 2); simple latencies so
# the timeline can be followed by hand. Link parameters: 20 ns per hop; a 10-byte request
# takes 1 ns of bandwidth, a 500-byte slice 50 ns (10 B/ns at efficiency 1).
LINK = D2DParams(bandwidth_GBps=10, efficiency=1.0, hop_latency_ns=20, request_bytes=10)


def _line_kernel():
    route = {(0, 1): [0], (1, 0): [0], (1, 2): [1], (2, 1): [1], (0, 2): [0, 1],
             (2, 0): [1, 0]}
    route_links = np.zeros((3, 3, 2), np.int64)
    route_len = np.zeros((3, 3), np.int64)
    for (s, d), links in route.items():
        route_len[s, d] = len(links)
        route_links[s, d, :len(links)] = links
    lat = Latencies(llc_hit=100, llc_miss=10, llc_write=3,
                    request=np.array([transfer_latency_ns(LINK, h, 10) for h in range(3)]),
                    data=np.array([transfer_latency_ns(LINK, h, 500) for h in range(3)]),
                    hbm_slice=40, local_read=np.full(4, 40), compute=np.full(4, 7),
                    slice_bytes=500.0, act_bytes_per_token=0.0, request_bytes=10.0)
    return LayerKernel(3, 2, route_links, route_len, llc_sets=1, llc_ways=2), lat


def _run(kernel, lat, experts, dies, homes):
    n = len(experts)
    e = np.array(experts, np.int64)
    d = np.array(dies, np.int64)
    home = np.array(homes, np.int64)
    prio = (d != home[e]).astype(np.int64)
    lo, hi = np.full(3, -1), np.full(3, -1)
    end, stalled, _ = kernel.run(0, 0, e, d, np.ones(n, np.int64), home, prio, pred=False,
                                 copy_ok=False, cp_en=np.zeros((3, 3), bool),
                                 is_local=np.zeros((3, 3), bool), num_experts=3, slices=1,
                                 lat=lat, dram_bytes=np.zeros(3), span_lo=lo, span_hi=hi)
    assert not stalled
    return end


def test_lone_remote_read_by_hand():
    """Expert 1 (home die 1) run on die 2: lookup miss 10 -> request 1 hop (21) -> remote
    HBM 40 -> slice back 1 hop (70) -> compute 7 = 148 ns."""
    kernel, lat = _line_kernel()
    assert list(lat.request) == [1, 21, 41] and list(lat.data) == [50, 70, 90]
    assert _run(kernel, lat, [1], [2], [0, 1, 2]) == 10 + 21 + 40 + 70 + 7
    assert kernel.counters[0] == 1                     # hops of request messages
    assert list(kernel.link_bytes) == [0, 10 + 500]


def test_second_transfer_waits_for_the_first_on_a_shared_link():
    """Expert 0 (home 0, 2 hops over L0 and L1) and expert 1 (home 1, 1 hop over L1), both
    run on die 2. By hand (times in ns):

    * lookups share die 2's LLC port: expert 0 at 0-10, expert 1 at 10-20;
    * request of 0 holds L1+L0 at 10-51; request of 1 is admitted when L1 is released, at
      51 (not 20), and holds L1 at 51-72;
    * die 0's HBM reads 0's slice at 51-91; its data needs L0+L1 but L1 is busy until 72,
      so it is admitted at 91 and holds both links 91-181;
    * die 1's HBM reads 1's slice at 72-112; its data needs L1, held by 0's data until 181:
      it waits, runs 181-251, and its compute ends the layer at 251 + 7 = 258.
    """
    kernel, lat = _line_kernel()
    end = _run(kernel, lat, [0, 1], [2, 2], [0, 1, 2])
    assert end == 258
    assert kernel.counters[0] == 2 + 1
    assert list(kernel.link_bytes) == [10 + 500, 2 * (10 + 500)]
    # alone, expert 1 would finish at 148 and expert 0 at 10 + 41 + 40 + 90 + 7 = 188
    alone_kernel, _ = _line_kernel()
    assert _run(alone_kernel, lat, [0], [2], [0, 1, 2]) == 188
