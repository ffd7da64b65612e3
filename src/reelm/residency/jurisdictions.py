"""ISO 3166-1 alpha-2 codes, from pycountry's maintained list: the only valid jurisdictions."""

from __future__ import annotations

from functools import lru_cache

import pycountry


@lru_cache(maxsize=1)
def all_jurisdictions() -> dict[str, str]:
    """Code → English short name, sorted by name, for sign-up pickers."""
    pairs = sorted(((c.alpha_2, c.name) for c in pycountry.countries), key=lambda p: p[1])
    return dict(pairs)


def is_country(code: str) -> bool:
    return code in all_jurisdictions()


def country_name(code: str) -> str:
    return all_jurisdictions().get(code, code)
