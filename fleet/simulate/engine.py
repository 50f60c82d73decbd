"""Discrete-event simulation of one fleet: the queue, the metrics publisher, the autoscaler and the instances.

Events at the same instant run in a fixed order (arrivals, job completions, instances finishing boot, metric
publication, autoscaler evaluation) so that a run is a pure function of the trace and the policy.
"""

from __future__ import annotations

import heapq
from collections import deque
from dataclasses import dataclass, field
from enum import IntEnum, StrEnum

from fleet.simulate.policy import Policy, Statistic
from fleet.simulate.trace import Arrival

# A fleet that never settles (e.g. min_replicas above zero keeps evaluating forever) stops this long after the
# last job finished.
SETTLE_LIMIT = 6 * 3600.0


class Event(IntEnum):
    # The value is the tie-break order for events at the same instant.
    ARRIVAL = 0
    JOB_DONE = 1
    BOOTED = 2
    PUBLISH = 3
    EVALUATE = 4


class InstanceState(StrEnum):
    BOOTING = "booting"
    READY = "ready"
    RETIRING = "retiring"  # takes no new jobs; powers off when its running jobs finish
    GONE = "gone"


@dataclass(slots=True)
class Instance:
    ident: int
    launched: float
    state: InstanceState = InstanceState.BOOTING
    running: int = 0
    ended: float | None = None


@dataclass(slots=True)
class Sample:
    time: float
    queue_size: int
    desired: int
    running: int
    booting: int


@dataclass
class Outcome:
    policy: Policy
    waits: list[float]
    completed: int
    instance_seconds: float
    busy_slot_seconds: float
    slot_seconds: float
    end_time: float
    events: int
    scale_actions: int
    peak_instances: int
    samples: list[Sample] = field(default_factory=list)


class Simulation:
    def __init__(self, policy: Policy, arrivals: list[Arrival]) -> None:
        self.p = policy
        self.arrivals = arrivals
        self.heap: list[tuple[float, int, int, int]] = []
        self.seq = 0
        self.queue: deque[int] = deque()  # indexes into arrivals, FIFO
        self.processing = 0
        self.done = 0
        self.waits: list[float] = [0.0] * len(arrivals)
        self.instances: list[Instance] = []
        self.active: set[int] = set()  # booting or ready: what the autoscaling group counts
        self.live: set[int] = set()  # every instance not yet powered off, retiring ones included
        self.free_slots: deque[int] = deque()  # one entry per free slot on a ready instance (stale ones skipped)
        self.desired = policy.min_replicas
        self.metric: deque[tuple[float, int]] = deque()  # published (time, queue size)
        self.last_scale_out = float("-inf")
        self.last_scale = float("-inf")
        self.scale_actions = 0
        self.peak = 0
        self.samples: list[Sample] = []
        self.busy_slot_seconds = 0.0
        self.slot_seconds = 0.0
        self.last_job_done = 0.0

    def _push(self, time: float, kind: Event, payload: int) -> None:
        self.seq += 1
        heapq.heappush(self.heap, (time, int(kind), self.seq, payload))

    def _launch(self, now: float, boot_seconds: float) -> None:
        inst = Instance(len(self.instances), now)
        self.instances.append(inst)
        self.active.add(inst.ident)
        self.live.add(inst.ident)
        self._push(now + boot_seconds, Event.BOOTED, inst.ident)

    def _end(self, inst: Instance, now: float) -> None:
        inst.state = InstanceState.GONE
        inst.ended = now
        self.active.discard(inst.ident)
        self.live.discard(inst.ident)

    def _booted(self, inst: Instance, now: float) -> None:
        if inst.state is not InstanceState.BOOTING:
            return  # canceled by a scale-in while booting
        inst.state = InstanceState.READY
        self.free_slots.extend([inst.ident] * self.p.job_slots)

    def _scale_in(self, count: int, now: float) -> None:
        # Cheapest first: instances still booting, then idle ones, then busy ones retire after their jobs.
        candidates = sorted(
            (self.instances[i] for i in self.active),
            key=lambda x: (x.state is not InstanceState.BOOTING, x.running, -x.launched),
        )
        for inst in candidates[:count]:
            if inst.running == 0:
                self._end(inst, now)
            else:
                inst.state = InstanceState.RETIRING
                self.active.discard(inst.ident)

    def _dispatch(self, now: float) -> None:
        while self.queue and self.free_slots:
            inst = self.instances[self.free_slots.popleft()]
            if inst.state is not InstanceState.READY:
                continue
            job = self.queue.popleft()
            arrival = self.arrivals[job]
            self.waits[job] = now - arrival.submit
            inst.running += 1
            self.processing += 1
            self.busy_slot_seconds += arrival.duration
            self._push(now + arrival.duration, Event.JOB_DONE, inst.ident)

    def _job_done(self, inst: Instance, now: float) -> None:
        inst.running -= 1
        self.processing -= 1
        self.done += 1
        self.last_job_done = now
        if inst.state is InstanceState.RETIRING:
            if inst.running == 0:
                self._end(inst, now)
        else:
            self.free_slots.append(inst.ident)

    def _publish(self, now: float) -> None:
        size = len(self.queue) + self.processing
        self.metric.append((now, size))
        booting = sum(1 for i in self.active if self.instances[i].state is InstanceState.BOOTING)
        running = len(self.live) - booting
        self.samples.append(Sample(now, size, self.desired, running, booting))
        self._push(now + self.p.publish_interval, Event.PUBLISH, 0)

    def _evaluate(self, now: float) -> None:
        self._push(now + self.p.metric_period, Event.EVALUATE, 0)
        seen_until = now - self.p.evaluation_delay
        window_start = seen_until - self.p.metric_period
        while self.metric and self.metric[0][0] <= window_start:
            self.metric.popleft()
        window = [size for t, size in self.metric if t <= seen_until]
        if not window:
            return  # no data yet: autoscalers leave the group alone
        value = max(window) if self.p.statistic is Statistic.MAXIMUM else sum(window) / len(window)
        wanted = self.p.next_desired(self.desired, value)
        if wanted > self.desired and now - self.last_scale_out >= self.p.scale_out_cooldown:
            self.last_scale_out = self.last_scale = now
        elif wanted < self.desired and now - self.last_scale >= self.p.scale_in_cooldown:
            self.last_scale = now
        else:
            return
        self.desired = wanted
        self.scale_actions += 1
        self._reconcile(now)

    def _reconcile(self, now: float) -> None:
        gap = self.desired - len(self.active)
        for _ in range(gap):
            self._launch(now, self.p.boot_seconds)
        if gap < 0:
            self._scale_in(-gap, now)
        self.peak = max(self.peak, len(self.live))

    def _settled(self, now: float) -> bool:
        if self.done < len(self.arrivals):
            return False
        if now - self.last_job_done > SETTLE_LIMIT:
            return True
        return self.desired == self.p.min_replicas and len(self.live) == self.desired

    def run(self) -> Outcome:
        for index, arrival in enumerate(self.arrivals):
            self._push(arrival.submit, Event.ARRIVAL, index)
        for _ in range(self.p.min_replicas):
            self._launch(0.0, 0.0)  # the minimum fleet is already warm when the trace starts
        self.peak = self.p.min_replicas
        self._push(0.0, Event.PUBLISH, 0)
        self._push(self.p.metric_period, Event.EVALUATE, 0)
        events = 0
        now = 0.0
        while self.heap:
            now, kind, _, payload = heapq.heappop(self.heap)
            events += 1
            if kind == Event.ARRIVAL:
                self.queue.append(payload)
            elif kind == Event.JOB_DONE:
                self._job_done(self.instances[payload], now)
            elif kind == Event.BOOTED:
                self._booted(self.instances[payload], now)
            elif kind == Event.PUBLISH:
                self._publish(now)
            else:
                self._evaluate(now)
                if self._settled(now):
                    break
            self._dispatch(now)
        return self._outcome(now, events)

    def _outcome(self, end: float, events: int) -> Outcome:
        instance_seconds = 0.0
        for inst in self.instances:
            stop = inst.ended if inst.ended is not None else end
            instance_seconds += stop - inst.launched
        return Outcome(
            policy=self.p,
            waits=self.waits,
            completed=self.done,
            instance_seconds=instance_seconds,
            busy_slot_seconds=self.busy_slot_seconds,
            slot_seconds=instance_seconds * self.p.job_slots,
            end_time=end,
            events=events,
            scale_actions=self.scale_actions,
            peak_instances=self.peak,
            samples=self.samples,
        )


def simulate(policy: Policy, arrivals: list[Arrival]) -> Outcome:
    return Simulation(policy, arrivals).run()
