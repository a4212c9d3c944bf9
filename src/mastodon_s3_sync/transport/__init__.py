"""How references travel: the in-process engine, SQS fan-out, the Lambda-edge helpers."""
