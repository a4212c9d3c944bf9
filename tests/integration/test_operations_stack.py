"""The operations find their stack by its CloudFormation outputs, or say which flag to fix."""

from __future__ import annotations

import uuid

import pytest

from mastodon_s3_sync.cli import main
from mastodon_s3_sync.errors import SettingsError
from mastodon_s3_sync.ops.stack import find_stack
from tests.support.stack_fixture import OUTPUT_NAMES, Deployed, template

pytestmark = pytest.mark.integration


def test_the_stack_is_found_by_its_outputs(deployed: Deployed) -> None:
    stack = deployed.stack
    assert stack.enumerator_function == "MastodonS3Sync-Enumerator-1A2B3C"
    assert stack.stack_name.startswith("Ops-")
    assert stack.copier_log_group.startswith(f"{stack.stack_name}-CopierLogs")
    assert stack.dead_letter_queue_arn.endswith(stack.dead_letter_queue_url.rsplit("/", 1)[1])
    # the queue URL reaches the stack's queue
    sqs = deployed.clients.sqs
    sqs.send_message(QueueUrl=stack.copy_queue_url, MessageBody="{}")
    attributes = sqs.get_queue_attributes(
        QueueUrl=stack.copy_queue_url, AttributeNames=["ApproximateNumberOfMessages", "QueueArn"]
    )["Attributes"]
    assert attributes == {"ApproximateNumberOfMessages": "1", "QueueArn": stack.copy_queue_arn}


def test_a_missing_stack_or_output_names_the_stack_flag(deployed: Deployed) -> None:
    cloudformation = deployed.clients.cloudformation
    with pytest.raises(SettingsError, match=r"^--stack NoSuchStack: Stack with id NoSuchStack"):
        find_stack(cloudformation, "NoSuchStack")
    name = f"Ops-{uuid.uuid4().hex[:10]}"
    cloudformation.create_stack(StackName=name, TemplateBody=template(OUTPUT_NAMES[:4]))
    try:
        with pytest.raises(SettingsError) as raised:
            find_stack(cloudformation, name)
    finally:
        cloudformation.delete_stack(StackName=name)
    assert str(raised.value).startswith(
        f"--stack {name}: the stack (CREATE_COMPLETE) has no output CopyQueueUrl, CopyQueueArn, "
        "DeadLetterQueueUrl, DeadLetterQueueArn, DashboardUrl"
    )


def test_the_cli_reports_a_missing_stack_with_exit_2(
    deployed: Deployed, capsys: pytest.CaptureFixture[str]
) -> None:
    args = deployed.cli("status", "--run-id", "20261127T061500Z-3f9a1c")
    args[args.index(deployed.stack.stack_name)] = "NotDeployed"
    assert main(args) == 2
    assert capsys.readouterr().err.startswith("mastodon-s3-sync: error: --stack NotDeployed: ")
