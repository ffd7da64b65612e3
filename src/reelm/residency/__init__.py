"""Residency: the policy, the Directory, region stores, Egress and the scanner that proves the rule."""
