"""AWS CloudWatch: PutMetricData, the metric the Terraform modules' scaling policies read."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from metrics_publisher.backends.base import batches
from metrics_publisher.series import Sample

METRIC_NAME = "src_executors_queue_size"
# PutMetricData accepts up to 1000 datums per request.
MAX_DATUMS_PER_CALL = 1000


def make_client(
    region: str,
    access_key_id: str | None,
    secret_access_key: str | None,
    session_token: str | None,
    timeout: float,
) -> Any:
    """A CloudWatch client: static keys when given, else boto3's default chain. boto3 itself honours
    AWS_ENDPOINT_URL."""
    # Imported here, not at the top: boto3 costs a quarter second, wasted by every run that does not use AWS.
    import boto3
    from botocore.config import Config

    session = boto3.session.Session(
        aws_access_key_id=access_key_id,
        aws_secret_access_key=secret_access_key,
        aws_session_token=session_token,
        region_name=region,
    )
    # One retry inside a round; the publisher's own backoff spaces out the rounds after that.
    config = Config(connect_timeout=timeout, read_timeout=timeout, retries={"mode": "standard", "max_attempts": 1})
    return session.client("cloudwatch", config=config)


class CloudWatchBackend:
    name: str = "cloudwatch"
    cloud: str | None = "aws"

    def __init__(self, client: Any, namespace: str, environment: str) -> None:
        self._client = client
        self.namespace = namespace
        self.environment = environment

    def datum(self, sample: Sample, at: datetime) -> dict[str, Any]:
        return {
            "MetricName": METRIC_NAME,
            "Dimensions": [
                {"Name": "queueName", "Value": sample.queue_name},
                {"Name": "environment", "Value": self.environment},
            ],
            "Timestamp": at,
            "Value": float(sample.value),
            "Unit": "Count",
        }

    def publish(self, samples: Sequence[Sample], at: datetime) -> int:
        calls = 0
        for chunk in batches([self.datum(s, at) for s in samples], MAX_DATUMS_PER_CALL):
            self._client.put_metric_data(Namespace=self.namespace, MetricData=list(chunk))
            calls += 1
        return calls

    def close(self) -> None:
        self._client.close()
