"""CloudWatch metrics of the Lambda functions, one per outcome with the type as dimension.

Needs aws-lambda-powertools (the ``lambda`` extra); only the handlers import it.
"""

from __future__ import annotations

from collections.abc import Mapping

from aws_lambda_powertools.metrics import MetricUnit, single_metric

from mastodon_s3_sync.mastodon.layout import RecordType


def emit(record_type: RecordType, counts: Mapping[str, tuple[int, MetricUnit]]) -> None:
    """One EMF record per metric, dimension ``Type``; zero counts are skipped."""
    for name, (value, unit) in counts.items():
        if value:
            with single_metric(name=name, unit=unit, value=value) as metric:
                metric.add_dimension(name="Type", value=str(record_type))
