"""The stack's invariants, asserted on synthesized templates (no resource counts).

Three configurations are synthesized once each (see conftest): the repository's example
(AWS buckets), infra/example-nonaws.toml (non-AWS providers, bastion, no reserved
concurrency) and one with key prefixes and the enumerator in a VPC.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import aws_cdk as cdk
import pytest
from aws_cdk import Validations
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_sqs as sqs
from aws_cdk.assertions import Match, Template
from aws_lambda_powertools.metrics import MetricUnit

from infra.app import add_checks
from infra.bundling import HANDLER, PYTHON_VERSION
from infra.config import DEFAULT_CONFIG_NAME, config_path, load_stack_config
from infra.grants import MEDIA_FOLDERS
from infra.lambdas import RUNTIME
from infra.monitoring import outcome_metric
from infra.queues import COPY_QUEUE_RETENTION, DEAD_LETTER_RETENTION, VISIBILITY_TIMEOUT_FACTOR
from mastodon_s3_sync.config.lambda_env import (
    bucket_settings,
    copy_settings,
    database_settings,
    time_guard_seconds,
)
from mastodon_s3_sync.config.settings import AclMode
from mastodon_s3_sync.config.stack import DEFAULT_MAX_CONCURRENCY, STACK_KEYS
from mastodon_s3_sync.contract import (
    BYTES_COPIED_METRIC,
    ENUMERATED_METRIC,
    METRICS_NAMESPACE,
    OUTCOME_METRICS,
    QUEUE_URL,
)
from mastodon_s3_sync.errors import SettingsError
from mastodon_s3_sync.mastodon.layout import RecordType, apply_key_prefix
from mastodon_s3_sync.outcomes import Outcome
from mastodon_s3_sync.transport import lambda_metrics
from tests.support.synthesized import DATABASE_SECRET, REPO_ROOT, Synthesized

Json = dict[str, Any]


# -- helpers over the template --------------------------------------------------------------


def logical_id(synth: Synthesized, construct: Any) -> str:
    """The template's logical id of an L2 construct's main resource."""
    value: str = synth.stack.resolve(synth.stack.get_logical_id(construct.node.default_child))
    return value


def resource(synth: Synthesized, construct: Any) -> Json:
    """The template resource of an L2 construct."""
    resources: Json = synth.template.to_json()["Resources"]
    found: Json = resources[logical_id(synth, construct)]
    return found


def properties(synth: Synthesized, construct: Any) -> Json:
    """The ``Properties`` of an L2 construct's resource."""
    found: Json = resource(synth, construct)["Properties"]
    return found


def role_statements(synth: Synthesized, function: lambda_.Function) -> list[Json]:
    """Every IAM statement of every inline policy attached to the function's role."""
    role = function.role
    assert role is not None
    role_ref = {"Ref": logical_id(synth, role)}
    statements: list[Json] = []
    for policy in synth.template.find_resources("AWS::IAM::Policy").values():
        if role_ref in policy["Properties"].get("Roles", []):
            statements += policy["Properties"]["PolicyDocument"]["Statement"]
    return statements


def as_list(value: Any) -> list[Any]:
    """IAM's ``Action``/``Resource``: a string or a list."""
    return value if isinstance(value, list) else [value]


def render(value: Any) -> str:
    """A CloudFormation string value with ``Ref``/``Fn::Join`` spelt out, for matching."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and "Fn::Join" in value:
        separator, parts = value["Fn::Join"]
        return str(separator).join(render(part) for part in parts)
    if isinstance(value, dict) and "Ref" in value:
        return f"<{value['Ref']}>"
    if isinstance(value, dict) and "Fn::GetAtt" in value:
        return f"<{'.'.join(value['Fn::GetAtt'])}>"
    return json.dumps(value, sort_keys=True)


def references(value: Any) -> Iterator[str]:
    """Logical ids a template value points at (``Ref``, ``Fn::GetAtt``, ``Fn::Sub``)."""
    if isinstance(value, dict):
        for key, inner in value.items():
            if key == "Ref" and isinstance(inner, str):
                yield inner
            elif key == "Fn::GetAtt":
                yield inner[0] if isinstance(inner, list) else inner.split(".")[0]
            elif key == "Fn::Sub":
                text = inner[0] if isinstance(inner, list) else inner
                yield from (name.split(".")[0] for name in re.findall(r"\$\{([^}!]+)\}", text))
                if isinstance(inner, list):
                    yield from references(inner[1])
            else:
                yield from references(inner)
    elif isinstance(value, list):
        for inner in value:
            yield from references(inner)


def dependency_cycle(resources: Mapping[str, Json]) -> list[str] | None:
    """A cycle of resources CloudFormation would refuse to create, or None."""
    edges = {
        name: {
            target
            for target in (*references(body), *as_list(body.get("DependsOn", [])))
            if target in resources and target != name
        }
        for name, body in resources.items()
    }
    state: dict[str, int] = {}  # 1: on the path, 2: done
    path: list[str] = []

    def visit(name: str) -> list[str] | None:
        state[name] = 1
        path.append(name)
        for target in sorted(edges[name]):
            if state.get(target) == 1:
                return [*path[path.index(target) :], target]
            if target not in state:
                found = visit(target)
                if found:
                    return found
        path.pop()
        state[name] = 2
        return None

    for name in sorted(resources):
        if name not in state:
            found = visit(name)
            if found:
                return found
    return None


# -- queues -------------------------------------------------------------------------------


def test_copier_event_source_reports_failed_messages_and_caps_concurrency(
    synthesized: Synthesized,
) -> None:
    config = synthesized.config
    synthesized.template.has_resource_properties(
        "AWS::Lambda::EventSourceMapping",
        {
            "FunctionName": {"Ref": logical_id(synthesized, synthesized.stack.copier)},
            "EventSourceArn": {
                "Fn::GetAtt": [logical_id(synthesized, synthesized.stack.copy_queue), "Arn"]
            },
            "FunctionResponseTypes": ["ReportBatchItemFailures"],
            "BatchSize": config.batch_size,
            "ScalingConfig": {"MaximumConcurrency": config.max_concurrency},
        },
    )


def test_failing_messages_go_to_the_dead_letter_queue(synthesized: Synthesized) -> None:
    stack = synthesized.stack
    redrive = properties(synthesized, stack.copy_queue)["RedrivePolicy"]
    assert redrive == {
        "deadLetterTargetArn": {
            "Fn::GetAtt": [logical_id(synthesized, stack.dead_letter_queue), "Arn"]
        },
        "maxReceiveCount": synthesized.config.max_receive_count,
    }
    assert synthesized.config.max_receive_count >= 5  # the default and every example


def test_visibility_timeout_is_at_least_six_copier_timeouts(synthesized: Synthesized) -> None:
    stack = synthesized.stack
    visibility = properties(synthesized, stack.copy_queue)["VisibilityTimeout"]
    timeout = properties(synthesized, stack.copier)["Timeout"]
    assert VISIBILITY_TIMEOUT_FACTOR >= 6
    assert visibility >= 6 * timeout
    assert timeout == synthesized.config.copier_timeout_seconds


def test_dead_letter_queue_keeps_messages_longer_than_the_copy_queue(
    synthesized: Synthesized,
) -> None:
    stack = synthesized.stack
    queue = properties(synthesized, stack.copy_queue)["MessageRetentionPeriod"]
    dead_letters = properties(synthesized, stack.dead_letter_queue)["MessageRetentionPeriod"]
    assert dead_letters == DEAD_LETTER_RETENTION.to_seconds() == 14 * 86400
    assert queue == COPY_QUEUE_RETENTION.to_seconds()
    assert dead_letters > queue


def test_queues_are_encrypted_and_refuse_plain_http(synthesized: Synthesized) -> None:
    stack = synthesized.stack
    for queue in (stack.copy_queue, stack.dead_letter_queue):
        assert properties(synthesized, queue)["SqsManagedSseEnabled"] is True
        synthesized.template.has_resource_properties(
            "AWS::SQS::QueuePolicy",
            {
                "Queues": [{"Ref": logical_id(synthesized, queue)}],
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


# -- functions ------------------------------------------------------------------------------


def test_functions_run_the_bundled_handler_on_the_configured_platform(
    synthesized: Synthesized,
) -> None:
    assert RUNTIME.name == f"python{PYTHON_VERSION}"
    for function in (synthesized.stack.enumerator, synthesized.stack.copier):
        found = properties(synthesized, function)
        assert found["Runtime"] == RUNTIME.name
        assert found["Handler"] == HANDLER
        assert found["Architectures"] == [synthesized.config.architecture]
    assert properties(synthesized, synthesized.stack.enumerator)["Timeout"] == 900
    memory = properties(synthesized, synthesized.stack.copier)["MemorySize"]
    assert memory == synthesized.config.copier_memory_mb


def test_copier_never_runs_in_a_vpc(synthesized: Synthesized) -> None:
    assert "VpcConfig" not in properties(synthesized, synthesized.stack.copier)


def test_enumerator_outside_a_vpc_unless_configured(
    example: Synthesized, nonaws: Synthesized
) -> None:
    for synth in (example, nonaws):
        assert "VpcConfig" not in properties(synth, synth.stack.enumerator)


def test_enumerator_in_the_configured_subnets_may_reach_the_database(in_vpc: Synthesized) -> None:
    vpc = in_vpc.config.vpc
    assert vpc is not None
    vpc_config = properties(in_vpc, in_vpc.stack.enumerator)["VpcConfig"]
    assert vpc_config["SubnetIds"] == list(vpc.subnet_ids)
    [group] = vpc_config["SecurityGroupIds"]
    group_id = group["Fn::GetAtt"][0]
    # the database's security group lets the enumerator's in, on the database port only
    in_vpc.template.has_resource_properties(
        "AWS::EC2::SecurityGroupIngress",
        {
            "GroupId": vpc.database_security_group_id,
            "SourceSecurityGroupId": {"Fn::GetAtt": [group_id, "GroupId"]},
            "IpProtocol": "tcp",
            "FromPort": vpc.database_port,
            "ToPort": vpc.database_port,
        },
    )
    # and its own group, in the VPC, goes out to the AWS APIs (HTTPS) besides the database
    group_properties = in_vpc.template.to_json()["Resources"][group_id]["Properties"]
    assert group_properties["VpcId"] == vpc.vpc_id
    egress = group_properties["SecurityGroupEgress"]
    assert {(rule.get("FromPort"), rule.get("ToPort")) for rule in egress} == {(443, 443)}


def test_reserved_concurrency_is_never_below_maximum_concurrency(
    example: Synthesized, in_vpc: Synthesized
) -> None:
    # default: reserved = maximum concurrency; set: at least it
    assert example.config.max_concurrency == DEFAULT_MAX_CONCURRENCY
    for synth in (example, in_vpc):
        reserved = properties(synth, synth.stack.copier)["ReservedConcurrentExecutions"]
        assert reserved >= synth.config.max_concurrency
    assert properties(example, example.stack.copier)["ReservedConcurrentExecutions"] == 20
    assert properties(in_vpc, in_vpc.stack.copier)["ReservedConcurrentExecutions"] == 60


def test_reserved_concurrency_can_be_turned_off(nonaws: Synthesized) -> None:
    assert nonaws.config.reserved_concurrency is None
    assert "ReservedConcurrentExecutions" not in properties(nonaws, nonaws.stack.copier)


def test_copier_environment_is_what_the_handler_reads(synthesized: Synthesized) -> None:
    config = synthesized.config
    environment = properties(synthesized, synthesized.stack.copier)["Environment"]["Variables"]
    assert all(isinstance(value, str) for value in environment.values())
    assert environment["POWERTOOLS_METRICS_NAMESPACE"] == METRICS_NAMESPACE
    assert environment["POWERTOOLS_SERVICE_NAME"] == config.stack_name
    read: list[str] = []

    def read_secret(arn: str) -> dict[str, str]:
        read.append(arn)
        return {"access_key_id": "AKIAEXAMPLE", "secret_access_key": "not-a-secret"}

    for side in config.sides():
        settings = bucket_settings(environment, side.side, read_secret)
        assert settings.bucket == side.bucket
        assert settings.key_prefix == side.key_prefix
        assert settings.endpoint_url == side.endpoint_url
        assert settings.region == side.region
        assert settings.addressing_style == side.addressing_style
        assert (settings.access_key_id is None) == side.uses_role
    assert read == [side.credentials_secret_arn for side in config.sides() if not side.uses_role]
    assert copy_settings(environment).acl == AclMode(config.acl)
    assert copy_settings(environment).workers == config.copier_threads
    assert copy_settings(environment).private_objects == config.private_objects
    assert time_guard_seconds(environment) == config.time_guard_seconds
    # the CLI's credentials never reach the function
    assert not any("ACCESS_KEY" in name or "PROFILE" in name for name in environment)


def test_enumerator_environment_is_what_the_handler_reads(synthesized: Synthesized) -> None:
    stack = synthesized.stack
    environment = properties(synthesized, stack.enumerator)["Environment"]["Variables"]
    assert environment[QUEUE_URL] == {"Ref": logical_id(synthesized, stack.copy_queue)}
    plain = {name: value for name, value in environment.items() if name != QUEUE_URL}
    rds_secret = {"username": "mastodon", "password": "x", "host": "db", "dbname": "mastodon"}
    database = database_settings(plain, lambda arn: rds_secret)
    assert database.sslmode == synthesized.config.database_sslmode
    assert plain["MSS_DATABASE_SECRET_ARN"] == synthesized.config.database_secret_arn
    assert plain.get("MSS_BASTION_SECRET_ARN") == synthesized.config.bastion_secret_arn
    assert plain.get("MSS_SOURCE_KEY_PREFIX", "") == synthesized.config.source.key_prefix


# -- permissions --------------------------------------------------------------------------


def test_no_wildcard_actions_and_no_wildcard_resources_on_the_buckets(
    synthesized: Synthesized,
) -> None:
    buckets = {side.bucket for side in synthesized.config.sides()}
    for function in (synthesized.stack.enumerator, synthesized.stack.copier):
        for statement in role_statements(synthesized, function):
            assert statement["Effect"] == "Allow"
            for action in as_list(statement["Action"]):
                assert "*" not in action, statement
            for value in as_list(statement["Resource"]):
                arn = render(value)
                assert arn != "*", statement
                if ":s3:::" in arn:
                    bucket, _, key = arn.partition(":s3:::")[2].partition("/")
                    assert bucket in buckets, arn
                    assert key in {"", *key_patterns(synthesized)}, arn


def key_patterns(synth: Synthesized) -> set[str]:
    """Object key patterns the copier may touch: Mastodon's folders under each prefix."""
    patterns = set()
    for side in synth.config.sides():
        prefixes = {side.key_prefix, ""} if side.side == "source" else {side.key_prefix}
        for prefix in prefixes:
            patterns |= {apply_key_prefix(prefix, f"{folder}/*") for folder in MEDIA_FOLDERS}
    return patterns


def s3_grants(synth: Synthesized) -> dict[str, set[str]]:
    """Copier S3 permissions: rendered resource -> actions."""
    grants: dict[str, set[str]] = {}
    for statement in role_statements(synth, synth.stack.copier):
        for value in as_list(statement["Resource"]):
            arn = render(value)
            if ":s3:::" in arn:
                grants.setdefault(arn, set()).update(as_list(statement["Action"]))
    return grants


def test_copier_reads_the_source_and_writes_the_destination_only(in_vpc: Synthesized) -> None:
    # given AWS buckets with key prefixes "media" (source) and "mastodon" (destination)
    grants = s3_grants(in_vpc)
    bucket = "arn:<AWS::Partition>:s3:::"
    # the source: read objects (and their ACLs for acl = "copy"; this config is "private"),
    # in Mastodon's folders, under the prefix and without it (the copier's fallback)
    for folder in MEDIA_FOLDERS:
        assert grants.pop(f"{bucket}old-media/media/{folder}/*") == {"s3:GetObject"}
        assert grants.pop(f"{bucket}old-media/{folder}/*") == {"s3:GetObject"}
        assert grants.pop(f"{bucket}new-media/mastodon/{folder}/*") == {
            "s3:PutObject",
            "s3:PutObjectAcl",
            "s3:GetObject",
            "s3:AbortMultipartUpload",
        }
    assert grants == {
        f"{bucket}old-media": {"s3:ListBucket"},
        f"{bucket}new-media": {"s3:ListBucket"},
    }


def test_acl_permissions_follow_the_acl_mode(example: Synthesized) -> None:
    # acl = "copy" (the example's default) reads each source ACL and writes one
    assert example.config.acl == "copy"
    actions = set().union(*s3_grants(example).values())
    assert {"s3:GetObjectAcl", "s3:PutObjectAcl"} <= actions
    assert not any("Delete" in action for action in actions)


def test_non_aws_sides_give_the_copier_their_key_secrets_and_no_s3_access(
    nonaws: Synthesized,
) -> None:
    statements = role_statements(nonaws, nonaws.stack.copier)
    actions = {action for statement in statements for action in as_list(statement["Action"])}
    assert not any(action.startswith("s3:") for action in actions)
    secrets = {
        render(value)
        for statement in statements
        if "secretsmanager:GetSecretValue" in as_list(statement["Action"])
        for value in as_list(statement["Resource"])
    }
    assert secrets == {side.credentials_secret_arn for side in nonaws.config.sides()}
    # and nothing else may read them
    for statement in role_statements(nonaws, nonaws.stack.enumerator):
        for value in as_list(statement["Resource"]):
            assert render(value) not in secrets


def test_enumerator_reads_its_secrets_sends_to_the_queue_and_continues(
    nonaws: Synthesized,
) -> None:
    stack = nonaws.stack
    statements = role_statements(nonaws, stack.enumerator)
    grants: dict[str, set[str]] = {}
    for statement in statements:
        for value in as_list(statement["Resource"]):
            grants.setdefault(render(value), set()).update(as_list(statement["Action"]))
    config = nonaws.config
    assert grants[config.database_secret_arn] == {"secretsmanager:GetSecretValue"}
    assert config.bastion_secret_arn is not None
    assert grants[config.bastion_secret_arn] == {"secretsmanager:GetSecretValue"}
    queue_arn = f"<{logical_id(nonaws, stack.copy_queue)}.Arn>"
    assert "sqs:SendMessage" in grants[queue_arn]
    assert grants[f"<{logical_id(nonaws, stack.enumerator)}.Arn>"] == {"lambda:InvokeFunction"}
    assert not any(action.startswith("s3:") for actions in grants.values() for action in actions)


def test_no_circular_dependency_and_no_fixed_names(synthesized: Synthesized) -> None:
    resources: dict[str, Json] = synthesized.template.to_json()["Resources"]
    assert dependency_cycle(resources) is None
    name_properties = {
        "AWS::Lambda::Function": "FunctionName",
        "AWS::SQS::Queue": "QueueName",
        "AWS::SNS::Topic": "TopicName",
        "AWS::CloudWatch::Dashboard": "DashboardName",
        "AWS::CloudWatch::Alarm": "AlarmName",
        "AWS::IAM::Role": "RoleName",
        "AWS::Logs::LogGroup": "LogGroupName",
        "AWS::EC2::SecurityGroup": "GroupName",
    }
    for name, body in resources.items():
        assert name_properties.get(body["Type"]) not in body.get("Properties", {}), name


def test_dependency_cycle_finder_finds_one() -> None:
    resources: dict[str, Json] = {
        "Function": {"DependsOn": ["Policy"], "Properties": {}},
        "Policy": {"Properties": {"Resource": {"Fn::GetAtt": ["Function", "Arn"]}}},
    }
    assert dependency_cycle(resources) == ["Function", "Policy", "Function"]


# -- observability --------------------------------------------------------------------------


def test_alarm_on_any_message_in_the_dead_letter_queue(synthesized: Synthesized) -> None:
    dead_letters = logical_id(synthesized, synthesized.stack.dead_letter_queue)
    synthesized.template.has_resource_properties(
        "AWS::CloudWatch::Alarm",
        {
            "Namespace": "AWS/SQS",
            "MetricName": "ApproximateNumberOfMessagesVisible",
            "Dimensions": [
                {"Name": "QueueName", "Value": {"Fn::GetAtt": [dead_letters, "QueueName"]}}
            ],
            "ComparisonOperator": "GreaterThanThreshold",
            "Threshold": 0,
        },
    )


def test_alarm_on_the_age_of_the_oldest_copy_message(synthesized: Synthesized) -> None:
    queue = logical_id(synthesized, synthesized.stack.copy_queue)
    threshold = synthesized.config.queue_age_alarm_hours * 3600
    assert threshold < COPY_QUEUE_RETENTION.to_seconds()
    synthesized.template.has_resource_properties(
        "AWS::CloudWatch::Alarm",
        {
            "MetricName": "ApproximateAgeOfOldestMessage",
            "Dimensions": [{"Name": "QueueName", "Value": {"Fn::GetAtt": [queue, "QueueName"]}}],
            "Threshold": threshold,
        },
    )


def test_alarms_mail_the_configured_address(nonaws: Synthesized, example: Synthesized) -> None:
    nonaws.template.has_resource_properties(
        "AWS::SNS::Subscription", {"Protocol": "email", "Endpoint": nonaws.config.alarm_email}
    )
    topic = logical_id(nonaws, nonaws.stack.alarm_topic)
    for alarm in nonaws.stack.alarms:
        assert properties(nonaws, alarm)["AlarmActions"] == [{"Ref": topic}]
    # without alarm_email, alarms but no topic
    assert example.stack.alarm_topic is None
    assert example.template.find_resources("AWS::SNS::Topic") == {}


def test_dashboard_shows_outcomes_per_type_queues_and_copier_health(
    synthesized: Synthesized,
) -> None:
    body = render(properties(synthesized, synthesized.stack.dashboard)["DashboardBody"])
    for metric in (
        *OUTCOME_METRICS.values(),
        BYTES_COPIED_METRIC,
        ENUMERATED_METRIC,
        "ApproximateNumberOfMessagesVisible",
        "ApproximateNumberOfMessagesNotVisible",
        "Throttles",
        "Errors",
    ):
        assert f'"{metric}"' in body, metric
    for record_type in RecordType:
        assert f'"Type","{record_type}","service","{synthesized.config.stack_name}"' in body
    assert f'"{METRICS_NAMESPACE}"' in body


def test_dashboard_metrics_are_those_the_handlers_emit(
    example: Synthesized, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # given the copier's Powertools environment, as the stack sets it
    environment = properties(example, example.stack.copier)["Environment"]["Variables"]
    for name in ("POWERTOOLS_SERVICE_NAME", "POWERTOOLS_METRICS_NAMESPACE"):
        monkeypatch.setenv(name, environment[name])
    # when the handlers' metrics module emits a count
    copied = OUTCOME_METRICS[Outcome.COPIED]
    lambda_metrics.emit(RecordType.MEDIA_ATTACHMENTS, {copied: (3, MetricUnit.Count)})
    emf = json.loads(capsys.readouterr().out)
    [directive] = emf["_aws"]["CloudWatchMetrics"]
    [dimension_names] = directive["Dimensions"]
    # then the dashboard's metric has its namespace and exactly its dimensions
    metric = outcome_metric(example.stack.stack_name, copied, RecordType.MEDIA_ATTACHMENTS)
    assert directive["Namespace"] == metric.namespace == METRICS_NAMESPACE
    assert {name: emf[name] for name in dimension_names} == metric.dimensions


def test_outputs_name_the_functions_queues_and_dashboard(synthesized: Synthesized) -> None:
    outputs = synthesized.template.to_json()["Outputs"]
    stack = synthesized.stack
    assert outputs["EnumeratorFunctionName"]["Value"] == {
        "Ref": logical_id(synthesized, stack.enumerator)
    }
    assert outputs["CopierFunctionName"]["Value"] == {"Ref": logical_id(synthesized, stack.copier)}
    assert outputs["CopyQueueUrl"]["Value"] == {"Ref": logical_id(synthesized, stack.copy_queue)}
    assert outputs["DeadLetterQueueUrl"]["Value"] == {
        "Ref": logical_id(synthesized, stack.dead_letter_queue)
    }
    assert outputs["CopierLogGroupName"]["Value"] == {
        "Ref": logical_id(synthesized, stack.copier_logs)
    }
    assert "DeadLetterQueueArn" in outputs
    assert "CopierRoleArn" in outputs
    assert "#dashboards:name=" in render(outputs["DashboardUrl"]["Value"])


# -- cdk-nag --------------------------------------------------------------------------------


def test_validation_reports_no_finding_and_no_annotation(synthesized: Synthesized) -> None:
    # synthesis already failed on any unacknowledged cdk-nag error; warnings count too
    assert synthesized.validation_report["pluginReports"] == []
    assert synthesized.messages == []  # no error, warning or info annotation either


def test_every_acknowledged_finding_says_why(synthesized: Synthesized) -> None:
    acknowledged = {
        (construct.node.path, rule): reason
        for construct in synthesized.stack.node.find_all()
        for entry in construct.node.metadata
        if entry.type == Validations.ACKNOWLEDGED_RULES_METADATA_KEY
        for rule, reason in entry.data.items()
    }
    assert acknowledged
    for (path, rule), reason in acknowledged.items():
        assert "AwsSolutions-" in rule, (path, rule)
        assert len(reason.split()) >= 6, (path, rule, reason)


def test_cdk_nag_fails_synth_on_an_unacknowledged_finding(tmp_path: Path) -> None:
    # given the app's checks, and a queue that breaks two AwsSolutions rules
    app = cdk.App(outdir=str(tmp_path), context={"@aws-cdk/core:validationReportJson": True})
    stack = cdk.Stack(app, "Control")
    sqs.Queue(stack, "PlainQueue")
    add_checks(app)
    # when synthesized, then synthesis fails and the report names both rules
    with pytest.raises(RuntimeError, match="ValidationFailed"):
        Template.from_stack(stack)
    report = json.loads((tmp_path / "policy-validation-report.json").read_text(encoding="utf-8"))
    [plugin] = report["pluginReports"]
    rules = {violation["ruleName"] for violation in plugin["violations"]}
    assert {"AwsSolutions-SQS3", "AwsSolutions-SQS4"} <= rules


# -- configuration errors ---------------------------------------------------------------------


def config_text(stack: str = "", source: str = "", destination: str = "") -> str:
    """A minimal valid configuration, with lines added to three of its sections."""
    return (
        f'[source]\nbucket = "old"\n{source}\n'
        f'[destination]\nbucket = "new"\n{destination}\n'
        f'[stack]\ndatabase_secret_arn = "{DATABASE_SECRET}"\n{stack}\n'
    )


def test_minimal_configuration_has_the_documented_defaults(
    write_config: Callable[[str], Path],
) -> None:
    config = load_stack_config(write_config(config_text()))
    assert (config.stack_name, config.architecture) == ("MastodonS3Sync", "arm64")
    assert (config.copier_memory_mb, config.copier_timeout_seconds) == (1024, 300)
    assert (config.batch_size, config.max_concurrency, config.reserved_concurrency) == (1, 20, 20)
    assert (config.max_receive_count, config.database_sslmode, config.vpc) == (5, "require", None)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (config_text("max_concurrency = 1"), r"\[stack\] max_concurrency: 1 is not .* 2 to 1000"),
        (config_text("max_concurrency = 1001"), r"\[stack\] max_concurrency: "),
        (config_text("max_concurrency = true"), r"\[stack\] max_concurrency: "),
        (
            config_text("reserved_concurrency = 10"),
            r"\[stack\] reserved_concurrency: 10 must be false .* max_concurrency \(20\)",
        ),
        (
            config_text("max_concurrency = 50\nreserved_concurrency = 49"),
            r"\[stack\] reserved_concurrency: 49 must be false .* \(50\)",
        ),
        (config_text('architecture = "aarch64"'), r"\[stack\] architecture: 'aarch64' is not"),
        (config_text("batch_size = 11"), r"\[stack\] batch_size: "),
        (config_text("max_receive_count = 0"), r"\[stack\] max_receive_count: "),
        (config_text("copier_memory_mb = 256"), r"\[stack\] copier_memory_mb: 256 .* 512"),
        (config_text("copier_timeout_seconds = 901"), r"\[stack\] copier_timeout_seconds: "),
        (
            config_text("copier_timeout_seconds = 120\ntime_guard_seconds = 120"),
            r"\[stack\] time_guard_seconds: 120 .* 1 to 119",
        ),
        (config_text("queue_age_alarm_hours = 96"), r"\[stack\] queue_age_alarm_hours: "),
        (config_text("max_concurency = 5"), r"\[stack\] unknown key\(s\): max_concurency;"),
        (config_text('stack_name = "1st"'), r"\[stack\] stack_name: '1st' is not"),
        (config_text('alarm_email = "admin"'), r"\[stack\] alarm_email: 'admin' is not"),
        (config_text('database_sslmode = "prefer"'), r"\[stack\] database_sslmode: "),
        (
            config_text().replace(f'database_secret_arn = "{DATABASE_SECRET}"', ""),
            r"\[stack\] database_secret_arn is missing: .*RDS-style",
        ),
        (
            config_text().replace(DATABASE_SECRET, DATABASE_SECRET[:-7]),
            r"\[stack\] database_secret_arn: .* is not a complete Secrets Manager secret ARN",
        ),
        (
            config_text(source='endpoint_url = "https://s3.wasabisys.com"'),
            r"\[stack\] source_credentials_secret_arn is missing: \[source\] endpoint_url",
        ),
        (
            config_text(destination='endpoint_url = "https://x.r2.cloudflarestorage.com"'),
            r"\[stack\] destination_credentials_secret_arn is missing",
        ),
        (config_text('subnet_ids = ["subnet-0123456789abcdef0"]'), r"\[stack\] subnet_ids: only"),
        (config_text("database_port = 6432"), r"\[stack\] database_port: only used with vpc_id"),
        (config_text('vpc_id = "vpc-0123456789abcdef0"'), r"\[stack\] subnet_ids: with vpc_id"),
        (
            config_text('vpc_id = "vpc-1"\nsubnet_ids = ["subnet-0123456789abcdef0"]'),
            r"\[stack\] vpc_id: 'vpc-1' is not a VPC id",
        ),
        (config_text().replace('bucket = "new"\n', ""), r"\[destination\] bucket is missing"),
        (
            '[source]\nbucket = "a"\n[destination]\nbucket = "b"\n',
            r"\[stack\] database_secret_arn is missing",
        ),
        (
            f'[destination]\nbucket = "new"\n[stack]\ndatabase_secret_arn = "{DATABASE_SECRET}"',
            r"\[source\] is missing: the stack needs \[source\] bucket",
        ),
        ("[stack\n", r"-c config=PATH: .* is not valid TOML"),
        ("stack = 1\n", r"unknown section \[stack\]|stack must be a \[stack\] table"),
    ],
)
def test_a_broken_configuration_is_one_line_naming_the_setting(
    write_config: Callable[[str], Path], text: str, message: str
) -> None:
    with pytest.raises(SettingsError) as raised:
        load_stack_config(write_config(text))
    assert re.search(message, str(raised.value)), str(raised.value)
    assert "\n" not in str(raised.value)


def test_every_stack_key_is_accepted(write_config: Callable[[str], Path]) -> None:
    # given a value for every [stack] key at once
    arn = DATABASE_SECRET
    lines = [
        'stack_name = "Every-Key"',
        'architecture = "x86_64"',
        "copier_memory_mb = 3008",
        "copier_timeout_seconds = 900",
        "time_guard_seconds = 90",
        "batch_size = 10",
        "max_concurrency = 1000",
        "reserved_concurrency = true",
        "max_receive_count = 10",
        'database_sslmode = "verify-full"',
        f'bastion_secret_arn = "{arn}"',
        f'source_credentials_secret_arn = "{arn}"',
        f'destination_credentials_secret_arn = "{arn}"',
        'vpc_id = "vpc-0123456789abcdef0"',
        'subnet_ids = ["subnet-0123456789abcdef0"]',
        'database_security_group_id = "sg-0123456789abcdef0"',
        "database_port = 5433",
        "bastion_port = 2222",
        'alarm_email = "ops@example.org"',
        "queue_age_alarm_hours = 95",
    ]
    assert {line.partition(" = ")[0] for line in lines} | {"database_secret_arn"} == STACK_KEYS
    config = load_stack_config(write_config(config_text(stack="\n".join(lines))))
    # then each is taken as given
    assert config.stack_name == "Every-Key"
    assert config.reserved_concurrency == 1000
    assert config.vpc is not None
    assert config.vpc.bastion_port == 2222
    assert not config.source.uses_role
    assert not config.destination.uses_role


def test_aws_endpoints_need_no_key_secret(write_config: Callable[[str], Path]) -> None:
    text = config_text(source='endpoint_url = "https://s3.eu-west-1.amazonaws.com"')
    config = load_stack_config(write_config(text))
    assert config.source.uses_role
    assert config.source.environment()["MSS_SOURCE_ENDPOINT_URL"].endswith("amazonaws.com")


def test_default_configuration_file_or_a_clear_error(tmp_path: Path) -> None:
    # no -c config=PATH and no mastodon-s3-sync.toml next to cdk.json
    with pytest.raises(SettingsError, match=r"^no configuration: pass -c config=PATH"):
        config_path(None, tmp_path, tmp_path)
    (tmp_path / DEFAULT_CONFIG_NAME).write_text("", encoding="utf-8")
    assert config_path(None, tmp_path, Path("/")) == tmp_path / DEFAULT_CONFIG_NAME
    # a relative -c config=PATH is relative to where cdk runs
    assert config_path("x/c.toml", Path("/project"), tmp_path) == tmp_path / "x" / "c.toml"
    with pytest.raises(SettingsError, match=r"-c config=PATH: file .* does not exist"):
        load_stack_config(tmp_path / "absent.toml")


def run_app(config: Path, outdir: Path) -> subprocess.CompletedProcess[str]:
    """``python -m infra.app`` as the cdk CLI runs it (context in CDK_CONTEXT_JSON)."""
    environment = {
        **os.environ,
        "CDK_CONTEXT_JSON": json.dumps({"config": str(config)}),
        "CDK_OUTDIR": str(outdir),
    }
    return subprocess.run(
        [sys.executable, "-m", "infra.app"],
        cwd=REPO_ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_synth_fails_with_the_message_of_a_broken_configuration(
    write_config: Callable[[str], Path], tmp_path: Path
) -> None:
    done = run_app(write_config(config_text("max_concurrency = 5000")), tmp_path / "out")
    assert done.returncode == 2
    # (jsii may print a banner about the Node.js version before it)
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert errors == ["error: [stack] max_concurrency: 5000 is not a whole number from 2 to 1000"]
    assert done.stderr.rstrip().endswith(errors[0])
    assert not (tmp_path / "out" / "manifest.json").exists()
