"""The enumerator's failed invocations: bounded retries, then a queue that keeps the event."""

from __future__ import annotations

from aws_cdk.assertions import Match

from infra.lambdas import ENUMERATOR_MAX_EVENT_AGE, ENUMERATOR_RETRY_ATTEMPTS
from mastodon_s3_sync.contract import STACK_OUTPUTS
from tests.support.synthesized import Synthesized


def _id(synth: Synthesized, construct: object) -> str:
    value: str = synth.stack.resolve(
        synth.stack.get_logical_id(construct.node.default_child)  # type: ignore[attr-defined]
    )
    return value


def test_async_failures_retry_a_bounded_number_of_times_then_go_to_the_queue(
    synthesized: Synthesized,
) -> None:
    stack = synthesized.stack
    queue = _id(synthesized, stack.failed_events_queue)
    synthesized.template.has_resource_properties(
        "AWS::Lambda::EventInvokeConfig",
        {
            "FunctionName": {"Ref": _id(synthesized, stack.enumerator)},
            "MaximumRetryAttempts": ENUMERATOR_RETRY_ATTEMPTS,
            "MaximumEventAgeInSeconds": ENUMERATOR_MAX_EVENT_AGE.to_seconds(),
            "DestinationConfig": {"OnFailure": {"Destination": {"Fn::GetAtt": [queue, "Arn"]}}},
        },
    )
    assert 0 <= ENUMERATOR_RETRY_ATTEMPTS <= 2  # Lambda's range
    # the function may send to it (Lambda sends as the function's role)
    synthesized.template.has_resource_properties(
        "AWS::IAM::Policy",
        {
            "PolicyDocument": {
                "Statement": Match.array_with(
                    [
                        Match.object_like(
                            {
                                "Action": Match.array_with(["sqs:SendMessage"]),
                                "Resource": {"Fn::GetAtt": [queue, "Arn"]},
                            }
                        )
                    ]
                )
            }
        },
    )


def test_the_failed_events_queue_is_encrypted_and_refuses_plain_http(
    synthesized: Synthesized,
) -> None:
    queue = _id(synthesized, synthesized.stack.failed_events_queue)
    body = synthesized.template.to_json()["Resources"][queue]
    assert body["Properties"]["SqsManagedSseEnabled"] is True
    synthesized.template.has_resource_properties(
        "AWS::SQS::QueuePolicy",
        {
            "Queues": [{"Ref": queue}],
            "PolicyDocument": {
                "Statement": Match.array_with(
                    [
                        Match.object_like(
                            {
                                "Effect": "Deny",
                                "Condition": {"Bool": {"aws:SecureTransport": "false"}},
                            }
                        )
                    ]
                )
            },
        },
    )


def test_an_alarm_fires_on_any_failed_event(synthesized: Synthesized) -> None:
    queue = _id(synthesized, synthesized.stack.failed_events_queue)
    synthesized.template.has_resource_properties(
        "AWS::CloudWatch::Alarm",
        {
            "Namespace": "AWS/SQS",
            "MetricName": "ApproximateNumberOfMessagesVisible",
            "Dimensions": [{"Name": "QueueName", "Value": {"Fn::GetAtt": [queue, "QueueName"]}}],
            "ComparisonOperator": "GreaterThanThreshold",
            "Threshold": 0,
        },
    )


def test_the_queue_is_an_output_the_operations_read(synthesized: Synthesized) -> None:
    queue = _id(synthesized, synthesized.stack.failed_events_queue)
    outputs = synthesized.template.to_json()["Outputs"]
    assert outputs[STACK_OUTPUTS["failed_events_queue_url"]]["Value"] == {"Ref": queue}
    assert outputs[STACK_OUTPUTS["failed_events_queue_arn"]]["Value"] == {
        "Fn::GetAtt": [queue, "Arn"]
    }
