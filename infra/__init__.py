"""The serverless deployment: a CDK app (``app``) and its stack (``stack``: ``queues``,
``lambdas``, ``grants``, ``monitoring``, cdk-nag ``findings``), its settings (``config``, read
from the same TOML file as the CLI) and the Lambda assets (``bundling``).
"""
