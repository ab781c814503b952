"""Webhook delivery: the background worker every serve process runs, and its HTTP sender."""
