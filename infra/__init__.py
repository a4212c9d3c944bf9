"""The serverless deployment: a CDK app (``app``), its stack (``stack``), its settings
(``config``, read from the same TOML file as the CLI) and the Lambda assets (``bundling``).
"""
