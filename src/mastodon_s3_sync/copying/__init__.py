"""Copying one object reference (skip / copy / missing / failed), and verifying a copy."""
