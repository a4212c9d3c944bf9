"""The configurations the template tests synthesize, and synthesis as ``cdk synth`` does it.

Synthesis builds the Lambda assets (``infra.bundling.build_asset``, cached in
``.cdk-assets``) and runs cdk-nag.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aws_cdk as cdk
from aws_cdk.assertions import Template

from infra.app import add_stack
from infra.config import StackConfig, load_stack_config
from infra.stack import MastodonS3SyncStack

REPO_ROOT = Path(__file__).resolve().parents[2]
EXAMPLE_CONFIG = REPO_ROOT / "mastodon-s3-sync.example.toml"
NONAWS_CONFIG = REPO_ROOT / "infra" / "example-nonaws.toml"

DATABASE_SECRET = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:mastodon/db-AbCdEf"
VPC_CONFIG = f"""
[database]
url = "postgresql://mastodon@localhost/mastodon_production"
sslmode = "disable"

[source]
bucket = "old-media"
key_prefix = "media"

[destination]
bucket = "new-media"
key_prefix = "mastodon"

[copy]
acl = "private"
workers = 32

[stack]
stack_name = "MastodonS3SyncVpc"
database_secret_arn = "{DATABASE_SECRET}"
vpc_id = "vpc-0123456789abcdef0"
subnet_ids = ["subnet-0123456789abcdef0", "subnet-0fedcba9876543210"]
database_security_group_id = "sg-0123456789abcdef0"
database_port = 6432
max_concurrency = 50
reserved_concurrency = 60
batch_size = 2
max_receive_count = 7
copier_timeout_seconds = 600
copier_memory_mb = 1769
"""
"""AWS buckets with key prefixes, the enumerator in a VPC, every number away from its default."""


VALIDATION_REPORT_JSON = "@aws-cdk/core:validationReportJson"


@dataclass(frozen=True)
class Synthesized:
    """A configuration, its stack, the template and what validation said about it."""

    config: StackConfig
    stack: MastodonS3SyncStack
    template: Template
    validation_report: Any
    """``policy-validation-report.json``: cdk-nag's and CloudFormation validation's findings."""
    messages: list[tuple[str, str]]
    """(level, text) of every annotation on the stack (errors, warnings, infos)."""


def synthesize(path: Path) -> Synthesized:
    """Load ``path`` and synthesize its stack the way infra/app.py does.

    Synthesis fails (``RuntimeError: ValidationFailed``) on any unacknowledged cdk-nag error.
    """
    config = load_stack_config(path)
    app = cdk.App(context={VALIDATION_REPORT_JSON: True})
    stack = add_stack(app, config)
    template = Template.from_stack(stack)
    assembly = app.synth()  # the assembly Template.from_stack just wrote
    report = json.loads(
        (Path(assembly.directory) / "policy-validation-report.json").read_text(encoding="utf-8")
    )
    messages = [
        (str(message.level), str(message.entry.data))
        for message in assembly.get_stack_artifact(stack.artifact_id).messages
    ]
    return Synthesized(config, stack, template, report, messages)
