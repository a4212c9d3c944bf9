"""CloudWatch metrics of the Lambda functions, one per outcome with the type as dimension.

Needs aws-lambda-powertools (the ``lambda`` extra); only the Lambda-edge modules import it.
The names are the contract's, which the stack's dashboard and ``status`` read.
"""

from __future__ import annotations

from collections.abc import Mapping

from aws_lambda_powertools.metrics import MetricUnit, single_metric

from mastodon_s3_sync.contract import (
    BYTES_COPIED_METRIC,
    CHAINS_FINISHED_METRIC,
    CHAINS_STARTED_METRIC,
    ENUMERATED_METRIC,
    OUTCOME_METRICS,
    TYPE_DIMENSION,
)
from mastodon_s3_sync.mastodon.layout import RecordType
from mastodon_s3_sync.outcomes import Tally


def emit(record_type: RecordType, counts: Mapping[str, tuple[int, MetricUnit]]) -> None:
    """One EMF record per metric, dimension ``Type``; zero counts are skipped."""
    for name, (value, unit) in counts.items():
        if value:
            with single_metric(name=name, unit=unit, value=value) as metric:
                metric.add_dimension(name=TYPE_DIMENSION, value=str(record_type))


def emit_outcomes(record_type: RecordType, tally: Tally) -> None:
    """The copier's metrics: objects per outcome, and the bytes copied."""
    counts = {
        name: (tally.count(outcome), MetricUnit.Count) for outcome, name in OUTCOME_METRICS.items()
    }
    emit(record_type, counts | {BYTES_COPIED_METRIC: (tally.bytes_copied, MetricUnit.Bytes)})


def emit_enumerated(record_type: RecordType, objects: int) -> None:
    """The enumerator's metric: objects sent to the queue."""
    emit(record_type, {ENUMERATED_METRIC: (objects, MetricUnit.Count)})


def emit_chain(record_type: RecordType, *, started: bool, finished: bool) -> None:
    """The enumerator's end-of-invocation marks: an enumeration begun, an enumeration done."""
    emit(
        record_type,
        {
            CHAINS_STARTED_METRIC: (int(started), MetricUnit.Count),
            CHAINS_FINISHED_METRIC: (int(finished), MetricUnit.Count),
        },
    )
