"""D2D link model (SPEC sections 3 and 6): closed forms, and contention for one link worked by
hand through the replay's event kernel."""

from fractions import Fraction
from math import ceil

import attrs
import pytest
from kernel_tables import make_tables, run_layer

from hwmodel.components.d2d import transfer_latency_ns
from hwmodel.params import D2DParams, load_wafer
from hwmodel.system.engine import Counter, LayerKernel
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
    """Three dies in a line, links L0 (0-1) and L1 (1-2); expert e homed on die e."""
    route = {(0, 1): [0], (1, 0): [0], (1, 2): [1], (2, 1): [1], (0, 2): [0, 1],
             (2, 0): [1, 0]}
    request = [transfer_latency_ns(LINK, h, 10) for h in range(3)]
    data = [transfer_latency_ns(LINK, h, 500) for h in range(3)]
    tables = make_tables(3, route, home=[0, 1, 2], llc_miss=10, llc_write=3,
                         request_by_hops=request, data_by_hops=data, slice_bytes=500.0,
                         request_bytes=10.0)
    return LayerKernel(tables, num_links=2), request, data


def _run(kernel, experts, dies):
    end, stalled, _ = run_layer(kernel, experts, dies)
    assert not stalled
    return end


def test_lone_remote_read_by_hand():
    """Expert 1 (home die 1) run on die 2: lookup miss 10 -> request 1 hop (21) -> remote
    HBM 40 -> slice back 1 hop (70) -> compute 7 = 148 ns."""
    kernel, request, data = _line_kernel()
    assert request == [1, 21, 41] and data == [50, 70, 90]
    assert _run(kernel, [1], [2]) == 10 + 21 + 40 + 70 + 7
    assert kernel.counters[Counter.HOPS] == 1                    # hops of request messages
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
    kernel, _, _ = _line_kernel()
    end = _run(kernel, [0, 1], [2, 2])
    assert end == 258
    assert kernel.counters[Counter.HOPS] == 2 + 1
    assert list(kernel.link_bytes) == [10 + 500, 2 * (10 + 500)]
    # alone, expert 1 would finish at 148 and expert 0 at 10 + 41 + 40 + 90 + 7 = 188
    alone_kernel, _, _ = _line_kernel()
    assert _run(alone_kernel, [0], [2]) == 188


def test_the_lowering_and_the_link_give_one_latency_for_every_route():
    """One formula: on tsmc-sow every route's request and slice latency in the replay's
    tables equals the link's own ``transfer_latency_ns`` over the route's hops (16-byte
    requests, Llama-4 slices); with one slow link, the routes over it pay its rate once."""
    from hwmodel.models import load_model
    from hwmodel.system.lowering import lower
    llama = load_model("llama4-maverick")
    slice_bytes = llama.expert_bytes / llama.matrices_per_expert
    wafer = build_wafer(load_wafer("tsmc-sow"))
    tables = lower(wafer, llama, max_tokens=1)
    link = wafer.links[0]
    for s in range(wafer.num_dies):
        for d in range(wafer.num_dies):
            hops = wafer.hop_count(s, d)
            expect_request = link.transfer_latency_ns(hops, 16) if hops else 0
            expect_data = link.transfer_latency_ns(hops, slice_bytes) if hops else 0
            assert (tables.request_ns[s, d], tables.data_ns[s, d]) == (expect_request,
                                                                       expect_data)
    slow = attrs.evolve(load_wafer("tsmc-sow"), links={"link_3_4": {"bandwidth_GBps": 100.0}})
    tables = lower(build_wafer(slow), llama, max_tokens=1)
    # die 7 -> die 0 runs along y over 7 links, link 3-4 among them: 7 x 200 ns + the slice at
    # 100 x 0.9 B/ns (hand: 83,886,080 / 90 = 932,067.6 -> 932,068)
    assert tables.data_ns[7, 0] == 7 * 200 + 932_068
    assert tables.data_ns[8, 16] == link.transfer_latency_ns(1, slice_bytes)   # off the link
