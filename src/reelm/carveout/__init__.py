"""Carve-out: plan, move, verify, report, and hand-over between operators."""
