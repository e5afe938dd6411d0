"""Python twin of the Global CP's Expert Distribution Table (EDT), the RTL's
:class:`~hwmodel.components.global_cp.rtl.EDT`.

Per (MoE layer, expert) the EDT holds the expert's home die and a presence bitmap, one bit per
die: the home plus every die holding a replica (docs/rtl.md). Homes follow docs/replay.md:
``floor(e / p)`` with ``p = floor(E / N)``, experts past ``p*N - 1`` on die ``e mod N``, over
the live dies of a faulty wafer.
"""

from __future__ import annotations

import numpy as np

from ...checks import check_int_array
from .params import check_positive_ints

__all__ = ["EDTTwin", "home_dies", "home_placement", "presence_bitmaps"]


def home_dies(num_experts: int, num_dies: int) -> np.ndarray:
    """Home die of every expert (docs/replay.md placement), as an int64 array."""
    if num_experts < 1 or num_dies < 1:
        raise ValueError(f"num_experts ({num_experts}) and num_dies ({num_dies}) must be >= 1")
    per_die = num_experts // num_dies
    experts = np.arange(num_experts, dtype=np.int64)
    if per_die == 0:
        return experts % num_dies
    home = experts // per_die
    over = experts > per_die * num_dies - 1
    home[over] = experts[over] % num_dies
    return home


def home_placement(num_experts: int, live_dies) -> np.ndarray:
    """Home die of every expert over the live dies (ascending ids): :func:`home_dies` of the
    live count, mapped to their ids, so a wafer without faults gets ``floor(e / p)``."""
    live = np.asarray(live_dies, np.int64)
    return live[home_dies(num_experts, len(live))]



def presence_bitmaps(presence) -> list[int]:
    """Presence rows (experts x dies, bool) as EDT bitmaps, bit ``d`` = die ``d`` (any width)."""
    rows = np.packbits(np.asarray(presence, np.bool_), axis=1, bitorder="little")
    return [int.from_bytes(row.tobytes(), "little") for row in rows]




class EDTTwin:
    """Transaction-level twin of the EDT of every MoE layer.

    Parameters
    ----------
    num_layers : int
        MoE layers (one table of entries each).
    num_experts : int
        Routed experts per layer (entries).
    num_dies : int
        Dies on the wafer (presence bits).
    live_dies : sequence of int, optional
        Dies that work, ascending (wafer faults): homes spread over them (default: all).

    Raises
    ------
    TypeError, ValueError
        On a bad parameter, naming it.
    """

    def __init__(self, num_layers: int, num_experts: int, num_dies: int, *, live_dies=None):
        check_positive_ints(num_layers=num_layers, num_experts=num_experts, num_dies=num_dies)
        self.num_layers = int(num_layers)
        self.num_experts = int(num_experts)
        self.num_dies = int(num_dies)
        dies = np.arange(self.num_dies, dtype=np.int64)
        live = dies if live_dies is None else np.asarray(live_dies, np.int64)
        if len(live) == 0 or not np.isin(live, dies).all():
            raise ValueError(f"live_dies must be die ids in 0..{self.num_dies - 1}, not "
                             f"{live_dies!r}")
        #: whether each die works (Algorithm 1 never picks a dead one)
        self.alive = np.isin(dies, live)
        #: home die of each expert
        self.homes = home_placement(self.num_experts, live)
        # one bool per (layer, expert, die): any number of dies (the RTL's bitmap is this row)
        self._presence = np.zeros((self.num_layers, self.num_experts, self.num_dies),
                                  dtype=np.bool_)
        self.clear_replicas()

    def check_layer_expert(self, layer, expert) -> None:
        """``ValueError`` unless ``layer`` and ``expert`` index an entry."""
        if not 0 <= layer < self.num_layers:
            raise ValueError(f"layer must be in 0..{self.num_layers - 1}, not {layer!r}")
        if not 0 <= expert < self.num_experts:
            raise ValueError(f"expert must be in 0..{self.num_experts - 1}, not {expert!r}")

    def _check_die(self, die) -> None:
        if not 0 <= die < self.num_dies:
            raise ValueError(f"die must be in 0..{self.num_dies - 1}, not {die!r}")

    def home(self, expert: int) -> int:
        """Home die of ``expert``."""
        self.check_layer_expert(0, expert)
        return int(self.homes[expert])

    def presence(self, layer: int, expert: int) -> int:
        """Presence bitmap of ``expert`` in ``layer`` (bit d set: die d holds its weights)."""
        self.check_layer_expert(layer, expert)
        return presence_bitmaps(self._presence[layer, expert:expert + 1])[0]

    def set_present(self, layer: int, expert: int, die: int) -> None:
        """Note that ``die`` now holds a copy of ``expert`` of ``layer`` (Local CP report)."""
        self.check_layer_expert(layer, expert)
        self.set_present_many(layer, np.array([expert]), die)

    def set_present_many(self, layer: int, experts, die: int) -> None:
        """:meth:`set_present` of each of ``experts`` (one die's report), checked once."""
        self.check_layer_expert(layer, 0)
        experts = check_int_array("experts", experts, 0, self.num_experts)
        self._check_die(die)
        self.set_present_pairs(layer, experts, np.full(len(experts), die, np.int64))

    def set_present_pairs(self, layer: int, experts, dies) -> None:
        """:meth:`set_present` of each ``(experts[i], dies[i])`` of ``layer`` (every die's
        report of a layer at once): int64 arrays of equal length, unchecked (the caller
        builds them)."""
        self._presence[layer, experts, dies] = True

    def clear_present(self, layer: int, expert: int, die: int) -> None:
        """Note that ``die`` dropped its copy of ``expert`` of ``layer`` (a replica evicted
        from a bounded replica region). The home die's bit cannot be cleared."""
        self.check_layer_expert(layer, expert)
        self._check_die(die)
        if die == self.homes[expert]:
            raise ValueError(f"die {die} is the home of expert {expert}: its copy is not a "
                             f"replica and cannot be cleared")
        self._presence[layer, expert, die] = False

    def clear_present_pairs(self, layers, experts, dies) -> None:
        """:meth:`clear_present` of each ``(layers[i], experts[i], dies[i])`` (the evictions
        of every die at once): int64 arrays of equal length, in range (the caller builds them);
        a home die's bit cannot be cleared, as there."""
        home = dies == self.homes[experts]
        if home.any():
            i = int(np.argmax(home))
            raise ValueError(f"die {int(dies[i])} is the home of expert {int(experts[i])}: its "
                             f"copy is not a replica and cannot be cleared")
        self._presence[layers, experts, dies] = False

    def clear_replicas(self) -> None:
        """Forget every replica: each expert is present on its home die only."""
        self._presence[:] = False
        self._presence[:, np.arange(self.num_experts), self.homes] = True

    def presence_matrix(self, layer: int) -> np.ndarray:
        """Read-only view of ``layer``'s presence: bool, shape (experts, dies); row ``e`` is
        :meth:`presence` ``(layer, e)`` as one bool per die."""
        self.check_layer_expert(layer, 0)
        view = self._presence[layer].view()
        view.flags.writeable = False
        return view

    def replicas_per_die(self) -> list[int]:
        """Replicas each die holds now, over all layers (presence off the home die)."""
        held = self._presence.sum(axis=(0, 1))
        homes = np.bincount(self.homes, minlength=self.num_dies) * self.num_layers
        return (held - homes).tolist()

