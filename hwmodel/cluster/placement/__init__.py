"""Expert-placement policies behind one interface (:class:`PlacementPolicy`), with a registry.

``make_policy(name).place(context)`` returns a :class:`Placement`. Registered, in order:
default (linear), random, remap, dup, eplb, locality, best, worst.
"""

# Imported in this order so the registry lists the baselines first and the oracles last.
from . import simple  # noqa: F401, I001
from . import greedy  # noqa: F401
from . import eplb  # noqa: F401
from . import locality  # noqa: F401
from . import oracles  # noqa: F401
from .base import (POLICIES, Placement, PlacementContext, PlacementPolicy, make_policy,
                   register_policy, shares_from_hosts)

__all__ = ["POLICIES", "Placement", "PlacementContext", "PlacementPolicy", "make_policy",
           "register_policy", "shares_from_hosts"]
