"""Operating a deployed serverless run: one module per command (``start``, ``status``,
``redrive``, ``missing``), on the stack that :mod:`.stack` finds by its outputs."""
