"""Sizes come from the layouts: every default table size of a unit's twin, RTL and harness is
its layout's paper value (Table II: 512 experts per layer, 16-bit heatmap counters, 2 PDU
bits per expert), and the wafer's parameters default to the same sizes."""

import inspect

import pytest

from hwmodel.components.atu import ATU, ATUTwin
from hwmodel.components.atu.params import PAPER as ATU_PAPER
from hwmodel.components.atu.sim import run_atu_twin, simulate_atu
from hwmodel.components.global_cp import GlobalCPTwin, PredictorTwin
from hwmodel.components.global_cp.params import HEATMAP_COUNT_BITS
from hwmodel.components.global_cp.params import PAPER as EDT_PAPER
from hwmodel.components.global_cp.rtl import EDT, TopNPredictor
from hwmodel.components.global_cp.sim import simulate_edt, simulate_predict, simulate_top_n
from hwmodel.components.local_cp import LocalCP, LocalCPTwin
from hwmodel.components.local_cp.params import PAPER as LOCAL_CP_PAPER
from hwmodel.components.local_cp.sim import run_local_cp_twin, simulate_local_cp
from hwmodel.components.pdu import PDU, PDUTwin
from hwmodel.components.pdu.params import BITS_PER_EXPERT, WORD_BITS
from hwmodel.components.pdu.params import PAPER as PDU_PAPER
from hwmodel.components.pdu.sim import run_pdu_twin, simulate_pdu
from hwmodel.components.pdu.twin import pack_words, without_is_local
from hwmodel.params import load_wafer


def _default(function, name):
    return inspect.signature(function).parameters[name].default


def test_the_layouts_hold_the_papers_sizes():
    assert ATU_PAPER.entries == PDU_PAPER.experts == EDT_PAPER.entries == 512
    assert LOCAL_CP_PAPER.experts == 512
    assert (HEATMAP_COUNT_BITS, BITS_PER_EXPERT, WORD_BITS) == (16, 2, 16)
    assert PDU_PAPER.size_bytes == 128 and ATU_PAPER.entry_bits == 68


@pytest.mark.parametrize("function, name, layout_value", [
    (ATUTwin, "num_entries", ATU_PAPER.entries), (ATU, "num_entries", ATU_PAPER.entries),
    (run_atu_twin, "num_entries", ATU_PAPER.entries),
    (simulate_atu, "num_entries", ATU_PAPER.entries),
    (PDUTwin, "num_experts", PDU_PAPER.experts), (PDU, "num_experts", PDU_PAPER.experts),
    (pack_words, "num_experts", PDU_PAPER.experts),
    (run_pdu_twin, "num_experts", PDU_PAPER.experts),
    (simulate_pdu, "num_experts", PDU_PAPER.experts),
    (LocalCPTwin, "num_experts", LOCAL_CP_PAPER.experts),
    (LocalCP, "num_experts", LOCAL_CP_PAPER.experts),
    (run_local_cp_twin, "num_experts", LOCAL_CP_PAPER.experts),
    (simulate_local_cp, "num_experts", LOCAL_CP_PAPER.experts),
    (LocalCPTwin, "num_sm_slots", LOCAL_CP_PAPER.sm_slots),
    (LocalCP, "num_sm_slots", LOCAL_CP_PAPER.sm_slots),
    (EDT, "num_experts", EDT_PAPER.entries), (TopNPredictor, "num_experts", EDT_PAPER.entries),
    (simulate_edt, "num_experts", EDT_PAPER.entries),
    (TopNPredictor, "count_bits", HEATMAP_COUNT_BITS),
    (simulate_predict, "count_bits", HEATMAP_COUNT_BITS),
    (simulate_top_n, "count_bits", HEATMAP_COUNT_BITS),
    (PredictorTwin, "count_bits", HEATMAP_COUNT_BITS),
    (GlobalCPTwin.for_mesh, "count_bits", HEATMAP_COUNT_BITS)])
def test_a_units_default_size_is_its_layouts(function, name, layout_value):
    assert _default(function, name) == layout_value


def test_the_wafers_defaults_are_the_layouts():
    wafer = load_wafer("tsmc-sow")
    assert wafer.die.atu_entries == ATU_PAPER.entries
    assert wafer.die.pdu_experts == PDU_PAPER.experts
    assert wafer.global_cp.edt_entries == EDT_PAPER.entries
    assert wafer.global_cp.heatmap_count_bits == HEATMAP_COUNT_BITS


def test_an_eviction_clears_one_is_local_bit_by_hand():
    """Expert 13 is the sixth of register 1 (13 = 8 + 5): its is_local is bit 2 x 5 + 1 = 11;
    0xffff loses exactly that bit (0xf7ff), cp_en (bit 10) stays."""
    assert without_is_local(0xFFFF, 13) == 0xF7FF
    assert without_is_local(0x0400, 13) == 0x0400
