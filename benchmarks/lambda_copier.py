"""The copier Lambda handler, run outside Lambda: one SQS message per invocation, in turn.

Called by the benchmark suite as a child process with the function's ``MSS_*``
environment (credentials from Secrets Manager on a local moto_server). Each message body
of BODIES_FILE (one per line) becomes an event exactly as the SQS event source mapping
delivers it with batch size 1, the stack's default, and the handler is invoked with it,
as one warm Lambda instance would be, one invocation after the other. Writes the
handler's wall time and this process's CPU time over those invocations (the billed part;
imports and the first client set-up are the cold start) to RESULT_FILE as JSON.

    python -m benchmarks.lambda_copier BODIES_FILE RESULT_FILE
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import resource
import time
from pathlib import Path

import functions.copier.handler as copier_handler
from tests.events.factory import FakeLambdaContext, sqs_event_for_bodies


def cpu_seconds() -> float:
    """User + system CPU time of this process so far."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("bodies", type=Path)
    parser.add_argument("result", type=Path)
    args = parser.parse_args()
    bodies = args.bodies.read_text().splitlines()
    copier_handler.runtime()  # the cold start: settings, secrets, clients, threads
    started, cpu_started = time.perf_counter(), cpu_seconds()
    # Powertools prints one metrics document per invocation to stdout.
    with contextlib.redirect_stdout(io.StringIO()):
        for body in bodies:
            context = FakeLambdaContext().as_lambda_context()
            response = copier_handler.handler(sqs_event_for_bodies([body]), context)
            if response["batchItemFailures"]:
                raise SystemExit(f"a message failed: {response}")
    args.result.write_text(
        json.dumps(
            {
                "seconds": time.perf_counter() - started,
                "cpu_seconds": cpu_seconds() - cpu_started,
                "invocations": len(bodies),
            }
        )
    )


if __name__ == "__main__":
    main()
