"""Failures: endpoints down then back, throttling, the fleet server down, a hung backend, health."""

from __future__ import annotations

import time

import grpc
import pytest

from metrics_publisher.backends.cloudwatch import CloudWatchBackend
from metrics_publisher.publisher import Publisher
from tests.metrics_publisher.common import FakeClock, cloudwatch_client, google_backend, make_publisher, published
from tests.metrics_publisher.standins import FaultProxy, FleetStandIn, MonitoringServer


def round_until_ok(publisher: Publisher, clock: FakeClock, interval: float, seconds: float = 15) -> int:
    """Rounds (moving the clock one interval each) until one succeeds; returns how many it took."""
    deadline = time.monotonic() + seconds
    rounds = 0
    while time.monotonic() < deadline:
        clock.advance(interval)
        rounds += 1
        if publisher.run_round(wait=10).ok:
            return rounds
        time.sleep(0.2)
    raise AssertionError(f"no successful round within {seconds}s")


def test_google_down_then_back_while_cloudwatch_keeps_publishing(
    monkeypatch: pytest.MonkeyPatch,
    moto_url: str,
    namespace: str,
    fleet_standin: FleetStandIn,
    monitoring: MonitoringServer,
) -> None:
    clock = FakeClock()
    cw = CloudWatchBackend(cloudwatch_client(monkeypatch, moto_url), namespace, namespace)
    publisher = make_publisher(fleet_standin, [cw, google_backend(monitoring)], interval=1, clock=clock)
    fleet_standin.set("batches", queued=2)
    assert publisher.run_round(wait=10).ok

    monitoring.stop()
    fleet_standin.set("batches", queued=5)
    result = publisher.run_round(wait=10)
    assert not result.ok
    assert "cloud-monitoring" in result.errors
    assert result.calls == {"cloudwatch": 1}
    assert published(cw._client, namespace, "batches")[-1] == 5.0
    healthy, detail = publisher.health()
    assert detail["backends"]["cloud-monitoring"]["failures"] == 1

    monitoring.start()
    round_until_ok(publisher, clock, interval=1)
    assert monitoring.values(monitoring.requests[-1]) == {"batches": 5}
    assert publisher.health()[1]["backends"]["cloud-monitoring"]["failures"] == 0


def test_throttled_google_backs_off_exponentially(fleet_standin: FleetStandIn, monitoring: MonitoringServer) -> None:
    clock = FakeClock()
    publisher = make_publisher(fleet_standin, [google_backend(monitoring)], interval=5, clock=clock)
    fleet_standin.set("batches", queued=1)
    monitoring.fail(grpc.StatusCode.RESOURCE_EXHAUSTED, 3, "Quota exceeded for quota metric 'Time series ingestion'")

    attempts_by_round = []
    for _ in range(8):
        result = publisher.run_round(wait=10)
        attempts_by_round.append(monitoring.attempts)
        clock.advance(5)
    # Failures at t=0, 5 (retried next round), 15 (after 10 s), then success at 35 (after 20 s).
    assert attempts_by_round == [1, 2, 2, 3, 3, 3, 3, 4]
    assert result.ok
    assert len(monitoring.requests) == 1


def test_cloudwatch_throttling_and_endpoint_down(
    monkeypatch: pytest.MonkeyPatch, moto_url: str, namespace: str, fleet_standin: FleetStandIn
) -> None:
    proxy = FaultProxy(moto_url)
    proxy.start()
    clock = FakeClock()
    cw = CloudWatchBackend(cloudwatch_client(monkeypatch, proxy.url), namespace, namespace)
    publisher = make_publisher(fleet_standin, [cw], interval=1, clock=clock)
    fleet_standin.set("batches", queued=3)
    try:
        # boto3 retries once inside a round, so two throttled answers fail one round.
        proxy.throttle_next = 2
        result = publisher.run_round(wait=20)
        assert not result.ok
        assert "Throttling" in result.errors["cloudwatch"]
        clock.advance(1)
        assert publisher.run_round(wait=20).ok
        assert published(cw._client, namespace, "batches") == [3.0]

        proxy.stop()
        clock.advance(1)
        result = publisher.run_round(wait=20)
        assert not result.ok and "cloudwatch" in result.errors
        proxy.start()
        fleet_standin.set("batches", queued=6)
        round_until_ok(publisher, clock, interval=1)
        assert max(published(cw._client, namespace, "batches")) == 6.0
    finally:
        proxy.stop()


def test_fleet_down_publishes_nothing_then_recovers(fleet_standin: FleetStandIn, monitoring: MonitoringServer) -> None:
    clock = FakeClock()
    publisher = make_publisher(fleet_standin, [google_backend(monitoring)], interval=5, clock=clock)
    fleet_standin.set("batches", queued=4)
    assert publisher.run_round(wait=10).ok

    fleet_standin.stop()
    for _ in range(4):
        clock.advance(5)
        result = publisher.run_round(wait=10)
        assert not result.ok
        assert "cannot reach the fleet server" in result.errors["fleet"]
    # A missing reading must never be published as 0: that would shrink a busy fleet.
    assert len(monitoring.requests) == 1
    assert publisher.health()[0] is False

    fleet_standin.start()
    clock.advance(5)
    assert publisher.run_round(wait=10).ok
    assert len(monitoring.requests) == 2
    assert publisher.health()[0] is True


def test_rejected_token_is_named(fleet_standin: FleetStandIn, monitoring: MonitoringServer) -> None:
    publisher = make_publisher(fleet_standin, [google_backend(monitoring)])
    fleet_standin.token = "the-server-now-wants-another-token"
    result = publisher.run_round(wait=10)
    assert not result.ok
    assert "FLEET_API_TOKEN" in result.errors["fleet"] and "401" in result.errors["fleet"]


def test_queue_that_disappears_is_published_as_zero(fleet_standin: FleetStandIn, monitoring: MonitoringServer) -> None:
    publisher = make_publisher(fleet_standin, [google_backend(monitoring)])
    fleet_standin.set("batches", queued=2)
    fleet_standin.set("codeintel", queued=1)
    assert publisher.run_round(wait=10).ok
    del fleet_standin.queues["codeintel"]
    assert publisher.run_round(wait=10).ok
    assert monitoring.values(monitoring.requests[-1]) == {"batches": 2, "codeintel": 0}


def test_hung_backend_does_not_hold_up_the_others(
    monkeypatch: pytest.MonkeyPatch,
    moto_url: str,
    namespace: str,
    fleet_standin: FleetStandIn,
    monitoring: MonitoringServer,
) -> None:
    # Far longer than the round's wait: the round must not wait for it, and it is still running at the second
    # round, however busy the machine.
    monitoring.delay = 12
    cw = CloudWatchBackend(cloudwatch_client(monkeypatch, moto_url), namespace, namespace)
    publisher = make_publisher(fleet_standin, [google_backend(monitoring), cw], interval=1)
    fleet_standin.set("batches", queued=1)
    started = time.monotonic()
    result = publisher.run_round(wait=1)
    assert time.monotonic() - started < 10, "the round waited for the hung backend"
    assert result.calls == {"cloudwatch": 1}
    assert "no answer within 1s" in result.errors["cloud-monitoring"]
    second = publisher.run_round(wait=1)
    assert second.errors["cloud-monitoring"] == "previous publish still running"
    assert second.calls == {"cloudwatch": 1}


def test_health_turns_red_after_three_intervals_without_a_good_round(
    fleet_standin: FleetStandIn, monitoring: MonitoringServer
) -> None:
    clock = FakeClock()
    publisher = make_publisher(fleet_standin, [google_backend(monitoring)], interval=5, clock=clock)
    assert publisher.health()[0] is True  # a young process has its grace period
    clock.advance(15.1)
    assert publisher.health()[0] is False
    fleet_standin.set("batches", queued=1)
    assert publisher.run_round(wait=10).ok
    assert publisher.health()[0] is True
    clock.advance(14.9)
    assert publisher.health()[0] is True
    clock.advance(0.2)
    healthy, detail = publisher.health()
    assert healthy is False and detail["secondsSinceLastGoodRound"] > 15
