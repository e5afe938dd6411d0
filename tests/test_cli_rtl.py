# amaranth: UnusedElaboratable=no
"""``hwmodel rtl sim / verilog / area`` through the CLI dispatcher."""

import re

from hwmodel.cli import main


def test_rtl_sim_predictor_reports_agreement_and_cycles(capsys):
    assert main(["rtl", "sim", "predictor"]) == 0
    out = capsys.readouterr().out
    # 4 rows of 32 counts: (32 + 1) cycles per row plus the bitmap hand-over
    cycles = int(re.search(r"(\d+) cycles", out).group(1))
    assert "RTL == reference" in out
    assert 4 * 33 <= cycles <= 4 * 33 + 12


def test_rtl_verilog_pdu_has_module_and_ports(tmp_path, capsys):
    out = tmp_path / "x.v"
    assert main(["rtl", "verilog", "pdu", "-o", str(out)]) == 0
    text = out.read_text()
    assert re.search(r"^module pdu\(", text, re.MULTILINE)
    for port in ("clk", "rst", "cmd__valid", "cmd__ready", "resp__valid"):
        assert re.search(rf"^\s*(input|output)\b.*\b{port};", text, re.MULTILINE), port
    assert "lines of Verilog" in capsys.readouterr().out


def test_rtl_area_edt_counts_the_registers_by_hand(capsys):
    assert main(["rtl", "area", "edt"]) == 0
    line = next(ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("edt"))
    _, method, cells, flip_flops, sram_bits = line.split()[:5]
    assert method == "synth"
    # resp.valid + the read-modify-write flag + the pending command's op (2 bits: SET or
    # CLEAR_PRESENT), expert address (9 bits for 512 entries) and die (6 bits); Yosys drops
    # the unused pending fields.
    assert int(flip_flops) == 1 + 1 + 2 + 9 + 6
    # 512 entries x (home 6 + presence 64); the 2 reserved bits are never written.
    assert int(sram_bits) == 512 * 70
    assert 50 < int(cells) < 2000
