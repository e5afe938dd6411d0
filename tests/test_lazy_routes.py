"""Route tables are built only for a run that sends a message (issue 20, class 2): ``ep``
sends none and never builds the all-pairs tables; a run that does builds them at its first
remote task and gets the very tables (and result) of eager lowering."""

import json

import numpy as np
import pytest
from test_system_lowering import LLAMA, _wafer
from test_system_replay import _tiny_store

from hwmodel.config import ConfigError
from hwmodel.system import Replay, ReplayParams
from hwmodel.system.lowering import has_routes, lower


def _replay(wafer, store):
    return Replay(wafer=wafer, model=LLAMA, store=store, params=ReplayParams(max_iterations=2))


def _json(result):
    out = result.to_json()
    out.pop("wall_s")
    return json.dumps(out, sort_keys=True)


def test_ep_builds_no_route_tables():
    """ep runs every task on its expert's home die: no message, so neither the replay's
    tables nor the mesh's route cache may hold routes after it (before: 24 x 24 pairs)."""
    wafer = _wafer()
    replay = _replay(wafer, _tiny_store([([0, 55, 56], [0, 7])]))
    result = replay.run("ep")
    assert result.hops == 0
    assert not has_routes(replay.tables)
    assert getattr(wafer.mesh, "_all_routes", None) is None


def test_a_run_that_sends_gets_the_eager_tables_and_result():
    """base on the same replay after ep: at its first remote task it builds the routes; its
    tables equal eager lowering's field by field, and its result a fresh replay's."""
    store = _tiny_store([([0, 55, 56], [0, 7])])
    wafer = _wafer()
    replay = _replay(wafer, store)
    replay.run("ep")
    lazy = _json(replay.run("base"))
    assert has_routes(replay.tables)
    eager = lower(_wafer(), LLAMA, max_tokens=replay.workload.max_task_tokens(),
                  hbm_efficiency=replay.hbm_efficiency)
    for name, table in zip(eager._fields, eager):
        assert np.array_equal(getattr(replay.tables, name), table), name
    fresh = _replay(_wafer(), store).run("base")
    assert fresh.hops > 0
    assert lazy == _json(fresh)


@pytest.mark.parametrize("cut", [(0, 1, 0, 8), (5, 4, 5, 6, 5, 13)])
@pytest.mark.parametrize("routes", [True, False])
def test_a_cut_off_die_is_refused_with_or_without_route_tables(cut, routes):
    """tsmc-sow is 3 x 8 (die = y + 8 x): die 0 has links to 1 and 8, die 5 to 4, 6 and 13.
    With its links dead on the graph a die is alive but unreachable; the check without route
    tables names the same two dies as the all-pairs check: the first live die and the first
    it cannot reach."""
    wafer = _wafer()
    links = list(zip(cut[::2], cut[1::2]))
    for a, b in links:
        wafer.link(a, b).alive = False
    lonely = links[0][0]
    first, other = (0, lonely) if lonely else (0, 1)
    names = [wafer.mesh.die_name(d) for d in (first, other)]
    with pytest.raises(ConfigError, match=f"no live route from {names[0]} to {names[1]} "):
        lower(wafer, LLAMA, max_tokens=2, routes=routes)
