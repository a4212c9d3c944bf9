"""Operating a deployed serverless run: start, status, redrive, missing."""
