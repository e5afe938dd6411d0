"""The placement interface: a context in, a :class:`Placement` out, and the policy registry."""

from __future__ import annotations

from typing import Any, ClassVar

import attrs
import numpy as np

from ..moe_layer import expert_time_ns

__all__ = ["POLICIES", "Placement", "PlacementContext", "PlacementPolicy", "make_policy",
           "register_policy", "shares_from_hosts"]


@attrs.frozen
class PlacementContext:
    """What a policy may look at.

    Parameters
    ----------
    cluster : Cluster
        The cluster graph (GPU count, nodes, GPU parameters).
    model : MoEModel
        Model shapes (for the roofline cost).
    prefill_counts : array (L, E)
        Tokens per expert in the prefills (what a deployable policy knows).
    batch_tokens : int
        (token, expert) pairs per layer of the batch to place for; prefill frequencies are
        scaled to it before the roofline cost (which is not linear in tokens).
    decode_counts : array (L, E), optional
        The batch's own decode counts: only the oracles may read them.
    replicas_per_gpu : int
        Extra expert slots per GPU (``R``) for replicating policies.
    seed : int
        Seed of the randomised policies.
    extra : dict
        Policy-specific inputs (the locality policy's request vectors; the oracles'
        precomputed candidate placements).
    """
    cluster: Any
    model: Any
    prefill_counts: np.ndarray
    batch_tokens: int
    decode_counts: np.ndarray | None = None
    replicas_per_gpu: int = 1
    seed: int = 0
    extra: dict = attrs.field(factory=dict)

    @property
    def num_layers(self) -> int:
        return self.prefill_counts.shape[0]

    @property
    def num_experts(self) -> int:
        return self.prefill_counts.shape[1]

    @property
    def num_gpus(self) -> int:
        return self.cluster.num_gpus

    @property
    def experts_per_gpu(self) -> int:
        if self.num_experts % self.num_gpus:
            raise ValueError(f"{self.num_experts} experts do not split evenly over "
                             f"{self.num_gpus} GPUs")
        return self.num_experts // self.num_gpus

    def scaled(self, counts) -> np.ndarray:
        """``counts`` per layer scaled to sum to :attr:`batch_tokens` (float)."""
        counts = np.asarray(counts, np.float64)
        totals = counts.sum(axis=1, keepdims=True)
        return np.divide(counts * self.batch_tokens, totals, out=np.zeros_like(counts),
                         where=totals > 0)

    def cost(self, tokens) -> np.ndarray:
        """Roofline time (ns) of expert copies serving ``tokens`` tokens."""
        return expert_time_ns(tokens, self.model, self.cluster.params.gpu)


@attrs.frozen
class Placement:
    """Where each expert's tokens go.

    Members
    -------
    shares : array (L, E, G)
        Share of expert ``e``'s tokens served by its copy on GPU ``g``; each (l, e) sums to 1.
    request_node : array of int, optional
        Node (device group) of each batch request, when the policy also groups requests
        (locality); otherwise requests are dealt round-robin over all GPUs.
    """
    shares: np.ndarray
    request_node: np.ndarray | None = None

    def copies(self) -> np.ndarray:
        """Copies of each expert per layer, shape (L, E)."""
        return (self.shares > 0).sum(axis=2)


def shares_from_hosts(hosts: np.ndarray) -> np.ndarray:
    """Even split over copies: ``hosts`` (L, E, G) counts copies of e on g."""
    hosts = np.asarray(hosts, np.float64)
    return hosts / hosts.sum(axis=2, keepdims=True)


class PlacementPolicy:
    """A placement policy: ``place(context) -> Placement``. Subclasses set ``name``."""
    name: ClassVar[str] = ""
    oracle: ClassVar[bool] = False
    doc: ClassVar[str] = ""

    def place(self, context: PlacementContext) -> Placement:  # pragma: no cover - interface
        raise NotImplementedError


#: Registered policies by name, in registration order.
POLICIES: dict[str, type[PlacementPolicy]] = {}


def register_policy(cls: type[PlacementPolicy]) -> type[PlacementPolicy]:
    """Class decorator adding a policy to :data:`POLICIES` under its ``name``."""
    if not cls.name or cls.name in POLICIES:
        raise ValueError(f"policy name {cls.name!r} is empty or taken")
    POLICIES[cls.name] = cls
    return cls


def make_policy(name: str, **options) -> PlacementPolicy:
    """An instance of the policy registered as ``name``.

    Raises
    ------
    ValueError
        On an unknown name (listing the known ones).
    """
    if name not in POLICIES:
        raise ValueError(f"unknown placement policy {name!r}; expected one of "
                         f"{', '.join(POLICIES)}")
    return POLICIES[name](**options)
