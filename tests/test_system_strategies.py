"""Strategies are objects: a user's own runs without touching the replay loop."""

import pytest
from test_system_replay import _replay, _tiny_store

from hwmodel.system import STRATEGIES, Strategy, get_strategy, register_strategy, strategy_names
from hwmodel.system.strategies import FirstAppearance


def test_the_papers_five_are_registered_in_fig12_order():
    assert strategy_names()[:5] == STRATEGIES
    assert [get_strategy(s).predicts for s in STRATEGIES] == [False, False, False, True, True]


def test_a_users_strategy_runs_by_object_and_by_name():
    """Round robin from die 0 instead of die 7: expert 0 (home die 0) runs on its home die, so
    the one-token request makes no remote read, where base makes 3 x 7 hops per layer."""
    store = _tiny_store([([0, 0], [])])
    mine = Strategy("rr0-test", FirstAppearance(offset=0), predicts=False,
                    description="round robin from die 0")
    assert _replay(store, max_iterations=1).run(mine).hops == 0
    assert _replay(store, max_iterations=1).run("base").hops == 3 * 7 * 24
    if "rr0-test" not in strategy_names():
        register_strategy(mine)
    assert _replay(store, max_iterations=1).run("rr0-test").hops == 0
    with pytest.raises(ValueError, match="registered already"):
        register_strategy(mine)
    with pytest.raises(ValueError, match="unknown strategy 'nope'"):
        _replay(store, max_iterations=1).run("nope")
