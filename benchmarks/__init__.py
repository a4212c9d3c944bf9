"""Reproducible measurements (``make bench``), run from the repository root as modules:
``python -m benchmarks.copy_suite``, so they import the tests' helpers and the Lambda
functions as the tests do."""
