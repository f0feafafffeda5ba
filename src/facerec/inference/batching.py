"""A small dynamic batcher: calls that arrive together share one model run.

Each caller hands over its inputs (the chips of its faces, say) and blocks until its outputs are
back. Callers that meet while a group is open join it; the first caller of a group (its leader)
waits until the group holds ``max_batch`` inputs, or ``max_wait_s`` has passed and fewer than
``max_concurrent`` runs of this model are in progress, then runs the model once on every input of
the group, in its own thread, and hands each member its rows. There is no thread of its own: the
work runs in the callers' (executor) threads, so nothing is left behind to stop.

- With ``max_wait_s = 0`` a lone caller never waits: groups form only while the model is busy
  (all ``max_concurrent`` runs taken), which is when waiting costs nothing.
- Only inputs with the same ``key`` share a run (a detector batches only images of one tensor
  size).
- A failed group run is retried one member at a time, so an error reaches only the caller whose
  input caused it.
- A member waits at most ``timeout_s`` for its rows (then :class:`OverloadedError`, 429).
- :meth:`close`: groups being gathered run at once; later calls fail with
  :class:`ServiceUnavailableError`.

Outputs are whatever the run function returns for each input, in input order.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from facerec.errors import OverloadedError, ServiceUnavailableError

In = TypeVar("In")
Out = TypeVar("Out")


@dataclass(frozen=True)
class BatchPolicy:
    """``max_batch`` inputs per run at most (one caller with more runs alone, unsplit);
    ``max_wait_s`` a leader waits for company; ``max_concurrent`` runs at once."""

    max_batch: int = 8
    max_wait_s: float = 0.002
    max_concurrent: int = 1
    timeout_s: float = 60.0

    def __post_init__(self) -> None:
        if self.max_batch < 1 or self.max_concurrent < 1:
            raise ValueError("max_batch and max_concurrent must be at least 1")
        if self.max_wait_s < 0 or self.timeout_s <= 0:
            raise ValueError("max_wait_s must be >= 0 and timeout_s > 0")


@dataclass
class _Member(Generic[In, Out]):
    inputs: Sequence[In]
    outputs: list[Out] | None = None
    error: BaseException | None = None


@dataclass
class _Group(Generic[In, Out]):
    key: Hashable
    members: list[_Member[In, Out]] = field(default_factory=list)
    size: int = 0
    gathering: bool = True  # still accepts members
    done: threading.Event = field(default_factory=threading.Event)


@dataclass
class BatchStats:
    runs: int = 0
    inputs: int = 0
    callers: int = 0
    largest: int = 0


class MicroBatcher(Generic[In, Out]):
    def __init__(
        self,
        run: Callable[[Sequence[In]], Sequence[Out]],
        policy: BatchPolicy | None = None,
        *,
        name: str = "",
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._run = run
        self.policy = policy or BatchPolicy()
        self.name = name
        self._clock = clock
        self._cond = threading.Condition()
        self._open: dict[Hashable, _Group[In, Out]] = {}
        self._running = 0
        self._closed = False
        self._taken = 0
        self.stats = BatchStats()

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def gathered_inputs(self) -> int:
        """Inputs taken in so far: run, running or waiting in a group."""
        with self._cond:
            return self._taken

    def submit(self, inputs: Sequence[In], key: Hashable = None) -> list[Out]:
        """The outputs for ``inputs``, computed in a run shared with whoever arrives together."""
        if not inputs:
            return []
        member: _Member[In, Out] = _Member(inputs)
        with self._cond:
            if self._closed:
                raise ServiceUnavailableError(
                    f"model {self.name!r} is shutting down", code="shutting_down"
                )
            group = self._open.get(key)
            leader = group is None or group.size + len(inputs) > self.policy.max_batch
            if leader:
                if group is not None:  # full for this caller: its leader runs it as it is
                    self._stop_gathering(group)
                    self._cond.notify_all()
                group = _Group(key)
                self._open[key] = group
            assert group is not None
            group.members.append(member)
            group.size += len(inputs)
            self._taken += len(inputs)
            if group.size >= self.policy.max_batch:
                self._stop_gathering(group)
                self._cond.notify_all()
        if leader:
            self._lead(group)
        elif not group.done.wait(self.policy.timeout_s):
            raise OverloadedError(
                f"model {self.name!r} did not answer within {self.policy.timeout_s:g} s",
                code="overloaded",
            )
        if member.error is not None:
            raise member.error
        assert member.outputs is not None
        return member.outputs

    def _stop_gathering(self, group: _Group[In, Out]) -> None:
        group.gathering = False
        if self._open.get(group.key) is group:
            del self._open[group.key]

    def _lead(self, group: _Group[In, Out]) -> None:
        policy = self.policy
        with self._cond:
            deadline = self._clock() + policy.max_wait_s
            while group.gathering and not self._closed:
                remaining = deadline - self._clock()
                if remaining <= 0 and self._running < policy.max_concurrent:
                    break
                # Past the deadline with every run slot taken: keep gathering until one frees.
                self._cond.wait(remaining if remaining > 0 else None)
            self._stop_gathering(group)
            while self._running >= policy.max_concurrent and not self._closed:
                self._cond.wait()
            self._running += 1
        try:
            self._execute(group)
        finally:
            with self._cond:
                self._running -= 1
                self.stats.runs += 1
                self.stats.inputs += group.size
                self.stats.callers += len(group.members)
                self.stats.largest = max(self.stats.largest, group.size)
                self._cond.notify_all()
            group.done.set()

    def _execute(self, group: _Group[In, Out]) -> None:
        members = group.members
        flat = [item for member in members for item in member.inputs]
        try:
            outputs = self._checked_run(flat)
        except Exception as exc:
            if len(members) == 1:
                members[0].error = exc
                return
            # Which input failed is unknown: each member runs alone and gets its own answer.
            for member in members:
                try:
                    member.outputs = self._checked_run(member.inputs)
                except Exception as own:
                    member.error = own
            return
        start = 0
        for member in members:
            member.outputs = outputs[start : start + len(member.inputs)]
            start += len(member.inputs)

    def _checked_run(self, inputs: Sequence[In]) -> list[Out]:
        outputs = list(self._run(inputs))
        if len(outputs) != len(inputs):
            raise RuntimeError(
                f"model {self.name!r} returned {len(outputs)} results for {len(inputs)} inputs"
            )
        return outputs

    def close(self) -> None:
        """Run the groups being gathered now and refuse later calls."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
