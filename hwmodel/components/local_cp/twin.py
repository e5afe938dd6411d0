"""Python twin of the Local CP, the per-die command processor.

Per MoE layer the Local CP of a die (docs/rtl.md, flow (1)-(4)):

1. writes its PDU table with the Global CP's prediction (``cp_en``) and the experts already held
   locally (``is_local``), as 16-bit register words;
2. receives its sub-kernel as task descriptors (expert, token count, data source die) and hands
   each to an SM slot. Slots are served round-robin (task ``i`` of the layer goes to slot
   ``i % num_sm_slots``) and a busy slot back-pressures the task stream, so the assignment does
   not depend on SM timing and the RTL and this twin agree exactly;
3. for a task whose weights come from another die, asks the PDU whether the arriving data is to
   be copied (``cp_en and not is_local``); a copy sets ``is_local`` and counts a duplication;
4. counts SM completions and, once the layer's last task has completed, returns a
   :class:`LocalCPStats` message to the Global CP (which updates its EDT from
   ``duplicated_experts``).

Beyond the paper, the Local CP also owns its die's replica replacement when the replica region
is bounded (``replica_capacity_bytes``, or physical mode's HBM budget): it decides the copies,
so it keeps its replicas in LRU order (:meth:`LocalCPTwin.bound_replicas`,
:meth:`LocalCPTwin.replicas_used`, :meth:`LocalCPTwin.keep_copies`) and names the replica to
evict, which the caller then invalidates in the ATU and the EDT (and clears in the PDU). The
order lives in a row of :class:`~.replicas.ReplicaRegions` (compiled; the replay drives every
die's row at once with the same code). The RTL has no replica region yet: the paper's is
unbounded.
"""

from __future__ import annotations

from collections.abc import Iterable

import attrs
import numpy as np

from ...checks import check_int, check_int_array
from ..pdu.twin import PDUTwin
from .params import PAPER, TOKEN_BITS, LocalCPLayout
from .replicas import ReplicaRegions

__all__ = ["TOKEN_BITS", "LocalCPStats", "LocalCPTwin", "SMTask", "TaskDescriptor"]


def _non_negative_int(name, hi=None):
    def validate(instance, attribute, value):
        check_int(f"{name}.{attribute.name}", value, 0, hi)
    return validate


@attrs.frozen
class TaskDescriptor:
    """One task of a die's sub-kernel: run ``tokens`` tokens of ``expert``, weights from
    ``source_die`` (this die, its home die or a die holding a copy)."""

    expert: int = attrs.field(validator=_non_negative_int("TaskDescriptor"))
    tokens: int = attrs.field(validator=_non_negative_int("TaskDescriptor", 1 << TOKEN_BITS))
    source_die: int = attrs.field(validator=_non_negative_int("TaskDescriptor"))


@attrs.frozen
class SMTask:
    """What an SM slot receives: the task, whether its data is remote and whether it is copied."""

    slot: int
    expert: int
    tokens: int
    remote: bool
    copy: bool


@attrs.frozen
class LocalCPStats:
    """Statistics message of one layer on one die, sent to the Global CP.

    Attributes
    ----------
    die : int
    tasks : int
        Tasks completed.
    tokens : int
        Tokens of the completed tasks.
    remote_tasks : int
        Tasks whose weights came from another die.
    duplications : int
        Remote experts copied into this die (PDU ``cp_en`` set and not yet local).
    duplicated_experts : tuple of int
        The copied experts, in the order the copies were made.
    """

    die: int
    tasks: int
    tokens: int
    remote_tasks: int
    duplications: int
    duplicated_experts: tuple[int, ...]


class LocalCPTwin:
    """Transaction-level twin of :class:`hwmodel.components.local_cp.LocalCP`.

    Parameters
    ----------
    die : int
        This die's id (tasks with another ``source_die`` are remote).
    num_sm_slots : int
        SM slots tasks are dispatched to (round-robin).
    num_experts : int
        Experts per layer (PDU table size) of the PDU made when ``pdu`` is None (a given
        ``pdu`` brings its own size).
    num_dies : int
        Dies on the wafer: ``die`` and every task's ``source_die`` are below it
        (:class:`~.params.LocalCPLayout`).
    pdu : PDUTwin, optional
        The die's PDU, which this Local CP writes and asks (default: a PDU of its own with
        ``num_experts`` experts). The replay hands each die's Local CP that die's PDU, so the
        copy decisions and the PDU state are one.
    replicas : ReplicaRegions, optional
        The wafer's replica regions, whose row ``die`` keeps this die's (default: a region of
        its own). The replay hands every die's Local CP the same regions and drives all their
        rows at once, with the code these methods run on one row.

    Examples
    --------
    >>> cp = LocalCPTwin(die=3, num_sm_slots=2, num_experts=16)
    >>> stats = cp.run_layer([TaskDescriptor(5, 40, 3), TaskDescriptor(7, 12, 0)], cp_en=[7])
    >>> stats.duplications, stats.duplicated_experts
    (1, (7,))
    """

    def __init__(self, die: int, num_sm_slots: int = PAPER.sm_slots,
                 num_experts: int = PAPER.experts, *,
                 num_dies: int = PAPER.num_dies, pdu: PDUTwin | None = None,
                 replicas: ReplicaRegions | None = None):
        if pdu is None:
            pdu = PDUTwin(num_experts)
        elif not isinstance(pdu, PDUTwin):
            raise TypeError(f"pdu must be a PDUTwin, not {pdu!r}")
        self.layout = LocalCPLayout(num_dies=num_dies, experts=pdu.num_experts,
                                    sm_slots=check_int("num_sm_slots", num_sm_slots, 1, 65))
        self._die = check_int("die", die, 0, self.layout.num_dies)
        self._num_sm_slots = self.layout.sm_slots
        self.pdu = pdu
        # the bounded replica region, in LRU order: row ``die`` of the wafer's regions, or the
        # one row of this twin's own
        if replicas is None:
            replicas, self._replica_row = ReplicaRegions(1, pdu.num_experts), 0
        elif not isinstance(replicas, ReplicaRegions):
            raise TypeError(f"replicas must be a ReplicaRegions, not {replicas!r}")
        else:
            self._replica_row = check_int("die", die, 0, replicas.rows)
        self.replicas = replicas
        self._begin()

    @property
    def die(self) -> int:
        return self._die

    @property
    def num_sm_slots(self) -> int:
        return self._num_sm_slots

    @property
    def num_experts(self) -> int:
        return self.pdu.num_experts

    # ------------------------------------------------ replica replacement (bounded region)
    @property
    def replica_slots(self) -> int | None:
        """Replicas this die may hold (None: unbounded)."""
        return self.replicas.slots_of(self._replica_row)

    @property
    def evictions(self) -> int:
        """Replicas this die's region has evicted so far."""
        return int(self.replicas.evictions[self._replica_row])

    def replicas_lru(self) -> list[tuple[int, int]]:
        """``(layer, expert)`` of the replicas held, least recently used first (no order is
        kept while the region is unbounded: empty, or the order it had when unbounded)."""
        return self.replicas.lru(self._replica_row)

    def bound_replicas(self, slots: int | None) -> list[tuple[int, int]]:
        """Bound the replica region to ``slots`` whole experts (None: unbounded); returns the
        replicas to evict, least recently used first, until the rest fit."""
        count = -1 if slots is None else check_int("slots", int(slots), 0)
        return self._pairs(self.replicas.bound(np.array([self._replica_row]),
                                               np.array([count])))

    def replicas_used(self, layer: int, experts) -> None:
        """The ATU served these experts' reads of ``layer`` from replicas (a hit at a layer
        launch): each becomes the most recently used, in the order given.

        Raises
        ------
        KeyError
            ``(layer, expert)`` of the first expert a bounded region does not hold.
        """
        layer, experts = self._replica_keys(layer, experts)
        self.replicas.use(np.full(len(experts), self._replica_row), layer, experts)

    def keep_copies(self, layer: int, experts) -> list[tuple[int, int]]:
        """The copies of ``layer`` this Local CP made (its report's ``duplicated_experts``)
        join the region, each the most recently used (a copy of a replica already held keeps
        its place); returns the replicas to evict, in the order they are dropped (after each
        copy, the least recently used while over)."""
        layer, experts = self._replica_keys(layer, experts)
        return self._pairs(self.replicas.keep_copies(np.full(len(experts), self._replica_row),
                                                     layer, experts))

    def _replica_keys(self, layer, experts) -> tuple[int, np.ndarray]:
        experts = np.fromiter((int(e) for e in experts), np.int64)
        return (check_int("layer", layer, 0),
                check_int_array("experts", experts, 0, self.replicas.num_experts))

    @staticmethod
    def _pairs(evicted) -> list[tuple[int, int]]:
        _, layers, experts = evicted
        return list(zip(layers.tolist(), experts.tolist()))

    # ---------------------------------------------------------------- layer (paper flows)
    def _begin(self):
        self._dispatched = 0
        self._outstanding = [0] * self._num_sm_slots
        self._tasks = self._tokens = self._remote = 0
        self._dups: list[int] = []
        self._pending_tokens: list[list[int]] = [[] for _ in range(self._num_sm_slots)]

    def configure_pdu(self, cp_en=None, is_local=None) -> list[int]:
        """Start a layer: reset the counters and write the PDU table; returns the words."""
        self._begin()
        return self.pdu.configure(cp_en, is_local)

    def dispatch(self, task: TaskDescriptor) -> SMTask:
        """Hand ``task`` to the next SM slot (round-robin); the PDU decides on a copy."""
        if not isinstance(task, TaskDescriptor):
            raise TypeError(f"task must be a TaskDescriptor, not {task!r}")
        check_int("task.expert", task.expert, 0, self.num_experts)
        check_int("task.source_die", task.source_die, 0, self.layout.num_dies)
        slot = self._dispatched % self._num_sm_slots
        self._dispatched += 1
        remote = task.source_die != self._die
        copy = remote and self.pdu.should_copy(task.expert)
        if copy:
            self.pdu.set_local(task.expert)
            self._dups.append(task.expert)
        self._outstanding[slot] += 1
        self._remote += remote
        self._pending_tokens[slot].append(task.tokens)
        return SMTask(slot, task.expert, task.tokens, remote, copy)

    def complete(self, slot: int) -> None:
        """SM slot ``slot`` finished its oldest task."""
        slot = check_int("slot", slot, 0, self._num_sm_slots)
        if self._outstanding[slot] == 0:
            raise ValueError(f"slot {slot} has no task outstanding to complete")
        self._outstanding[slot] -= 1
        self._tasks += 1
        self._tokens += self._pending_tokens[slot].pop(0)

    def finish(self) -> LocalCPStats:
        """The layer's statistics message; every dispatched task must have completed."""
        if any(self._outstanding):
            raise ValueError(f"{sum(self._outstanding)} dispatched tasks have not completed "
                             f"(outstanding per slot: {self._outstanding})")
        return LocalCPStats(self._die, self._tasks, self._tokens, self._remote,
                            len(self._dups), tuple(self._dups))

    def run_layer(self, tasks: Iterable[TaskDescriptor], cp_en=None,
                  is_local=None) -> LocalCPStats:
        """One whole layer: configure the PDU, dispatch every task, complete them, report.

        The same result and final state as :meth:`configure_pdu`, then :meth:`dispatch` and
        :meth:`complete` per task, then :meth:`finish`; the task list is validated once,
        before anything changes (see :meth:`run_layer_arrays`).

        Parameters
        ----------
        tasks : iterable of TaskDescriptor (or (expert, tokens, source_die) tuples)
        cp_en, is_local : sequence of one bool per expert, iterable of expert ids, or None
        """
        fields = []
        for i, task in enumerate(tasks):
            if not isinstance(task, TaskDescriptor):
                try:
                    task = TaskDescriptor(*task)
                except TypeError as error:
                    raise TypeError(f"tasks[{i}] must be a TaskDescriptor or an (expert, tokens, "
                                    f"source_die) tuple, not {task!r}") from error
            fields.append((task.expert, task.tokens, task.source_die))
        table = np.array(fields, np.int64).reshape(-1, 3)
        return self.run_layer_arrays(table[:, 0], table[:, 1], table[:, 2], cp_en, is_local,
                                     _names=("tasks[{i}].expert", "tasks[{i}].tokens",
                                             "tasks[{i}].source_die"))

    def run_layer_arrays(self, experts, tokens, source_dies, cp_en=None, is_local=None, *,
                         _names=("experts", "tokens", "source_dies")) -> LocalCPStats:
        """:meth:`run_layer` on a task list given as three arrays, validated once (numpy).

        Task ``i`` is ``(experts[i], tokens[i], source_dies[i])``. Result and final state equal
        :meth:`run_layer`'s (and so the per-transaction calls'): the PDU is configured, task
        ``i`` goes to slot ``i % num_sm_slots``, a remote task copies its expert when
        ``cp_en and not is_local`` (the copy sets ``is_local``, so a later task of the same
        expert does not copy again), every task completes.

        Raises
        ------
        TypeError, ValueError
            On a bad array or field, naming it and the task index; nothing has changed then.
        """
        experts = check_int_array(_names[0], experts, 0, self.num_experts)
        n = len(experts)
        tokens = check_int_array(_names[1], tokens, 0, 1 << TOKEN_BITS, length=n)
        sources = check_int_array(_names[2], source_dies, 0, self.layout.num_dies,
                                  length=n)
        self.configure_pdu(cp_en, is_local)
        return self._dispatch_checked(experts, tokens, sources)[0]

    def dispatch_layer(self, experts, tokens, source_dies) -> tuple[LocalCPStats, np.ndarray]:
        """A layer's tasks (three arrays, as :meth:`run_layer_arrays`) on the PDU as it stands.

        The layer's counters start from zero but the PDU is not written (its table was
        configured by the caller, e.g. register by register): every task is dispatched, the
        PDU decides each remote task's copy (``cp_en and not is_local``; a copy sets
        ``is_local``), every task completes.

        Returns
        -------
        stats : LocalCPStats
            The layer's statistics message (copies in the order they were made).
        order : numpy.ndarray of int64
            The task indices in the order they were handed to the SM slots (the order the
            die runs them).
        """
        experts = check_int_array("experts", experts, 0, self.num_experts)
        n = len(experts)
        tokens = check_int_array("tokens", tokens, 0, 1 << TOKEN_BITS, length=n)
        sources = check_int_array("source_dies", source_dies, 0, self.layout.num_dies,
                                  length=n)
        self._begin()
        return self._dispatch_checked(experts, tokens, sources)

    def _dispatch_checked(self, experts, tokens, sources):
        """Dispatch checked task arrays in arrival order (slot ``i % num_sm_slots``)."""
        n = len(experts)
        copied, order = self.dispatch_tasks(self.pdu.table_row, np.zeros(n, np.int64),
                                            np.full(n, self._die, np.int64), experts, sources)
        self._dispatched = n
        self._tasks = n
        self._tokens = int(tokens.sum())
        self._remote = int((sources != self._die).sum())
        self._dups = experts[copied].tolist()
        return self.finish(), order

    # ------------------------------------------------- every die's Local CP at once (the replay)
    @staticmethod
    def dispatch_tasks(registers, rows, dies, experts, sources) -> tuple[np.ndarray, np.ndarray]:
        """The tasks of a layer, task ``i`` = ``experts[i]`` on die ``dies[i]`` with weights
        from ``sources[i]``, dispatched by their dies' Local CPs on the PDUs whose registers are
        rows ``rows[i]`` of ``registers`` (int64 arrays, unchecked: the caller builds them).

        Each Local CP dispatches its tasks in arrival order; a remote task
        (``sources[i] != dies[i]``) asks its PDU, which copies when ``cp_en and not is_local``
        and sets ``is_local`` (:meth:`PDUTwin.arrivals`, compiled). :meth:`dispatch_layer` is
        this call on one die's tasks and its one PDU row.

        Returns
        -------
        copied : numpy.ndarray of bool
            Whether task ``i``'s arriving data was copied.
        order : numpy.ndarray of int64
            The task indices in the order the Local CPs hand them to the SM slots (arrival
            order: each die runs its tasks in the order they came).
        """
        remote = sources != dies
        copied = np.zeros(len(experts), np.bool_)
        copied[remote] = PDUTwin.arrivals(registers, rows[remote], experts[remote])
        return copied, np.arange(len(experts), dtype=np.int64)

    @staticmethod
    def layer_reports(dies, experts, tokens, sources, copied) -> dict[int, LocalCPStats]:
        """Every Local CP's statistics message of a layer dispatched by :meth:`dispatch_tasks`
        (its arrays, and the ``copied`` it returned), per die with tasks, dies ascending: the
        same messages as :meth:`dispatch_layer` gives on each die's tasks."""
        reports = {}
        order = np.argsort(dies, kind="stable")
        bounds = np.flatnonzero(np.diff(dies[order])) + 1
        for mine in np.split(order, bounds) if len(order) else []:
            d = int(dies[mine[0]])
            dups = experts[mine][copied[mine]].tolist()
            reports[d] = LocalCPStats(d, len(mine), int(tokens[mine].sum()),
                                      int((sources[mine] != d).sum()), len(dups), tuple(dups))
        return reports
