"""The CDK app (cdk.json runs ``.venv/bin/python -m infra.app`` from the repository root).

``npx aws-cdk@2 synth -c config=PATH`` (or ``deploy``) builds one stack from the TOML file
at PATH — by default ``mastodon-s3-sync.toml`` next to cdk.json — and checks it with
cdk-nag's AwsSolutions rules. A configuration error stops synth with one line that names
the setting.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import aws_cdk as cdk
from cdk_nag import AwsSolutionsChecks

from mastodon_s3_sync.errors import SettingsError

from .bundling import BundleError, build_asset
from .config import CONFIG_CONTEXT_KEY, StackConfig, config_path, load_stack_config
from .lambdas import AssetBuilder
from .stack import MastodonS3SyncStack

PROJECT_DIR = Path(__file__).resolve().parent.parent
"""Where cdk.json is: the default configuration file is looked for here."""


def add_stack(
    app: cdk.App, config: StackConfig, *, asset_builder: AssetBuilder = build_asset
) -> MastodonS3SyncStack:
    """The stack for ``config`` in ``app``, checked by cdk-nag's AwsSolutions pack."""
    stack = MastodonS3SyncStack(
        app,
        config.stack_name,
        config=config,
        asset_builder=asset_builder,
        description="mastodon-s3-sync: copies a Mastodon instance's media between S3 buckets",
        env=cdk.Environment(
            account=os.environ.get("CDK_DEFAULT_ACCOUNT"),
            region=os.environ.get("CDK_DEFAULT_REGION"),
        ),
    )
    add_checks(app)
    return stack


def add_checks(app: cdk.App) -> None:
    """cdk-nag's AwsSolutions rules: an unacknowledged finding fails synth, with a report."""
    cdk.Validations.of(app).add_plugins(AwsSolutionsChecks(app, verbose=True))


def main() -> int:
    """Synthesize; 2 for a configuration error, 1 when an asset cannot be built."""
    app = cdk.App()
    try:
        path = config_path(app.node.try_get_context(CONFIG_CONTEXT_KEY), PROJECT_DIR, Path.cwd())
        config = load_stack_config(path)
    except SettingsError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    try:
        add_stack(app, config)
    except BundleError as error:
        print(f"error: building a Lambda asset: {error}", file=sys.stderr)
        return 1
    app.synth()
    return 0


if __name__ == "__main__":
    sys.exit(main())
