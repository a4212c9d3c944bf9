"""Canned Lambda events (JSON, as AWS delivers them) and factories that vary them."""
