"""reelm: short videos whose makers' personal data stays in their own jurisdiction's region."""

__version__ = "0.1.0"
