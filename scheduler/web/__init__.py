"""Blueprints, one per file."""
