"""Seeded random stimuli for every unit, shaped as its ``simulate_*`` / twin functions take them.

Shared by the engine-equivalence tests and ``benchmarks/bench_rtlsim.py`` so both drive the
units with the same streams. Every generator takes a ``numpy.random.Generator`` and draws
in-range values only (addresses from small pools, so lookups hit and miss).
"""

from __future__ import annotations

import numpy as np

from ..components.global_cp.params import HEATMAP_COUNT_BITS
from ..components.pdu.params import WORD_BITS, PDULayout

__all__ = [
    "allocator_layers",
    "atu_transactions",
    "edt_transactions",
    "local_cp_layers",
    "pdu_transactions",
    "predictor_groups",
    "predictor_twin_bitmaps",
]


def atu_transactions(rng, count: int, layout) -> list[tuple]:
    """ATU inserts, lookups (half of them), invalidates; ``layout``: an ``ATULayout``.

    Lookups mostly revisit an index inserted before (with its address or another one from a
    small pool), so hits, misses on address and misses on invalid entries all occur."""
    pool = rng.integers(0, 1 << layout.remote_addr_bits, size=8).tolist()
    inserted = [0]
    out = []
    for kind in rng.random(count):
        index = int(rng.integers(layout.entries))
        if kind < 0.3:
            inserted.append(index)
            out.append(("insert", index, pool[rng.integers(8)],
                        int(rng.integers(1 << layout.local_addr_bits))))
        elif kind < 0.8:
            if rng.random() < 0.8:
                index = inserted[int(rng.integers(max(0, len(inserted) - 16), len(inserted)))]
            out.append(("lookup", index, pool[rng.integers(8)]))
        elif kind < 0.99:
            out.append(("invalidate", index))
        else:
            out.append(("invalidate_all",))
    return out


def pdu_transactions(rng, count: int, num_experts: int) -> list[tuple]:
    """PDU word writes, queries (half), ``set_local`` and rare ``clear``."""
    num_words = PDULayout(experts=num_experts).num_words
    out = []
    for kind in rng.random(count):
        if kind < 0.25:
            out.append(("write_word", int(rng.integers(num_words)),
                        int(rng.integers(1 << WORD_BITS))))
        elif kind < 0.75:
            out.append(("query", int(rng.integers(num_experts))))
        elif kind < 0.99:
            out.append(("set_local", int(rng.integers(num_experts))))
        else:
            out.append(("clear",))
    return out


def edt_transactions(rng, count: int, num_experts: int, num_dies: int) -> list[tuple]:
    """EDT writes, reads, and presence updates that never clear an entry's home die."""
    homes = [0] * num_experts
    out = []
    for kind in rng.random(count):
        expert = int(rng.integers(num_experts))
        die = int(rng.integers(num_dies))
        if kind < 0.2:
            homes[expert] = die
            presence = int(rng.integers(1 << min(num_dies, 62))) | 1 << die
            out.append(("write", expert, die, presence))
        elif kind < 0.6:
            out.append(("read", expert))
        elif kind < 0.8 or die == homes[expert]:
            out.append(("set_present", expert, die))
        else:
            out.append(("clear_present", expert, die))
    return out


def predictor_groups(rng, groups: int, num_experts: int, rows_per_group: int = 3,
                     count_bits: int = HEATMAP_COUNT_BITS) -> list[list[list[int]]]:
    """Per die, 1..``rows_per_group`` heatmap rows of small counts (many ties)."""
    top = min(1 << count_bits, 64)
    return [[rng.integers(0, top, size=num_experts).tolist()
             for _ in range(int(rng.integers(1, rows_per_group + 1)))] for _ in range(groups)]


def predictor_twin_bitmaps(groups, num_experts: int, costs) -> list[int]:
    """The Global CP twin's ``cp_en`` bitmap of each group of :func:`predictor_groups` (the
    group's rows loaded as heatmap rows 0, 1, ..., predicted for experts 0, 1, ...)."""
    from ..components.global_cp import GlobalCPTwin
    bitmaps = []
    for group in groups:
        twin = GlobalCPTwin.for_mesh(2, 2, 1, num_experts, costs, block_size=4)
        matrix = np.zeros((num_experts, num_experts), dtype=np.int64)
        matrix[:len(group)] = group
        twin.heatmap_add_matrix(0, matrix)
        bitmaps.append(twin.predict(0, range(len(group))))
    return bitmaps


def allocator_layers(rng, layers: int, num_experts: int, active: int = 16,
                     max_tokens: int = 2000) -> list[list[int]]:
    """Per layer, ``active`` experts with 1..``max_tokens`` tokens, the others idle."""
    out = []
    for _ in range(layers):
        counts = np.zeros(num_experts, dtype=np.int64)
        chosen = rng.choice(num_experts, size=min(active, num_experts), replace=False)
        counts[chosen] = rng.integers(1, max_tokens + 1, size=len(chosen))
        out.append(counts.tolist())
    return out


def local_cp_layers(rng, layers: int, num_experts: int, num_dies: int,
                    tasks_per_layer: int = 12) -> list[tuple]:
    """``(tasks, cp_en, is_local)`` layers: tasks ``(expert, tokens, source_die)``."""
    out = []
    for _ in range(layers):
        tasks = [(int(rng.integers(num_experts)), int(rng.integers(1, 1000)),
                  int(rng.integers(num_dies))) for _ in range(tasks_per_layer)]
        cp_en = sorted(set(rng.integers(num_experts, size=num_experts // 8 + 1).tolist()))
        local = sorted(set(rng.integers(num_experts, size=num_experts // 8 + 1).tolist()))
        out.append((tasks, cp_en, local))
    return out
