"""The residency policy: which operator runs which region where, and which region holds whom.

A policy is a TOML file (see docs/residency-policy.md). Loading validates every rule and fails with
a message that names the file, the key and the fix; nothing half-valid is ever returned.
"""

from __future__ import annotations

import hashlib
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from reelm.errors import PolicyError
from reelm.residency.jurisdictions import all_jurisdictions, country_name, is_country

REGION_NAME = re.compile(r"^[a-z][a-z0-9-]{0,30}$")
TOP_LEVEL_KEYS = {"version", "never_store_in", "operators", "regions", "assignment", "staff_access"}
OPERATOR_KEYS = {"name", "country"}
REGION_KEYS = {"location", "operator", "database_url", "blob_store", "redis_url"}


@dataclass(frozen=True)
class Operator:
    key: str
    name: str
    country: str


@dataclass(frozen=True)
class Region:
    name: str
    location: str
    operator: str
    database_url: str
    blob_store: str
    redis_url: str | None = None  # the region's job queue on Redis; None: a SQLite file


@dataclass(frozen=True)
class ResidencyPolicy:
    version: str
    operators: dict[str, Operator]
    regions: dict[str, Region]
    assignment: dict[str, str]
    default_region: str
    never_store_in: frozenset[str]
    staff_access_file: Path | None
    source: Path
    text: str
    content_hash: str

    def region_for(self, jurisdiction: str) -> str:
        """Home region of a user of this jurisdiction (validated codes only)."""
        if not is_country(jurisdiction):
            raise PolicyError(
                f"Unknown jurisdiction {jurisdiction!r}: use an ISO 3166-1 alpha-2 code such as "
                '"US" or "DE".',
                code="unknown_jurisdiction",
            )
        return self.assignment.get(jurisdiction, self.default_region)

    def operator_of(self, region: str) -> Operator:
        return self.operators[self.regions[region].operator]

    def table(self) -> list[tuple[str, str, str, str]]:
        """(jurisdiction, region, operator name, location) rows, explicit assignments first."""
        rows = [
            (j, r, self.operator_of(r).name, self.regions[r].location)
            for j, r in sorted(self.assignment.items(), key=lambda kv: (kv[1], kv[0]))
        ]
        d = self.default_region
        rows.append(("* (everyone else)", d, self.operator_of(d).name, self.regions[d].location))
        return rows


def policy_hash(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def load_policy(path: Path, *, data_dir: Path | None = None) -> ResidencyPolicy:
    """Read and validate a policy file; `{data_dir}` in URLs and paths is replaced by `data_dir`."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise PolicyError(
            f"{path}: the policy file does not exist. Fix: run `reelm init`, or point "
            "REELM_POLICY_FILE at your policy."
        ) from None
    policy = parse_policy(text, source=path, data_dir=data_dir)
    if policy.staff_access_file is not None:
        from reelm.staff.access import load_staff_policies  # validates the Cedar file at load

        load_staff_policies(policy.staff_access_file)
    return policy


def parse_policy(text: str, *, source: Path, data_dir: Path | None = None) -> ResidencyPolicy:
    """Validate a policy's text. The first problem found raises a PolicyError that names the
    file, the key and the fix; the parts are read in the file's order (top level and version,
    never_store_in, operators, regions, assignment), then the rule that no jurisdiction is
    stored in a never_store_in country is checked, then staff access."""
    check = _Checker(source)
    raw = _read_top_level(text, check)
    version = _read_version(raw, check)
    never_store_in = _read_never_store_in(raw, check)
    operators = _read_operators(raw, check)
    regions = _read_regions(raw, operators, data_dir, check)
    default_region, assignment = _read_assignment(raw, regions, check)
    _check_never_store_in(assignment, default_region, regions, never_store_in, check)
    staff_access_file = _read_staff_access(raw, source, check)
    return ResidencyPolicy(
        version=version,
        operators=operators,
        regions=regions,
        assignment=assignment,
        default_region=default_region,
        never_store_in=never_store_in,
        staff_access_file=staff_access_file,
        source=source,
        text=text,
        content_hash=policy_hash(text),
    )


class _Checker:
    """The errors of one policy file: each names the file, the key, the problem and the fix."""

    def __init__(self, source: Path) -> None:
        self.source = source

    def fail(self, key: str, problem: str, fix: str) -> PolicyError:
        return PolicyError(f"{self.source}: {key}: {problem}. Fix: {fix}.")

    def country(self, key: str, value: Any) -> str:
        if not isinstance(value, str) or not is_country(value):
            raise self.fail(
                key,
                f"{value!r} is not an ISO 3166-1 alpha-2 country code",
                'use a two-letter code from ISO 3166-1, such as "US", "SG" or "DE"',
            )
        return value


def _read_top_level(text: str, check: _Checker) -> dict[str, Any]:
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        hint = "remove the repeated key" if "overwrite" in str(e) else "correct the TOML syntax"
        raise check.fail("(syntax)", f"not valid TOML ({e})", hint) from None
    unknown = set(raw) - TOP_LEVEL_KEYS
    if unknown:
        raise check.fail(
            ", ".join(sorted(unknown)),
            "unknown top-level key",
            f"use only {', '.join(sorted(TOP_LEVEL_KEYS))}",
        )
    return raw


def _read_version(raw: dict[str, Any], check: _Checker) -> str:
    version = raw.get("version")
    if not isinstance(version, str) or not version.strip():
        raise check.fail("version", "missing or empty", 'add a label such as version = "2026-11"')
    return version


def _read_never_store_in(raw: dict[str, Any], check: _Checker) -> frozenset[str]:
    never = raw.get("never_store_in", [])
    if not isinstance(never, list):
        raise check.fail(
            "never_store_in", "must be a list of country codes", 'write never_store_in = ["CN"]'
        )
    return frozenset(check.country(f"never_store_in[{i}]", c) for i, c in enumerate(never))


def _read_operators(raw: dict[str, Any], check: _Checker) -> dict[str, Operator]:
    operators: dict[str, Operator] = {}
    raw_ops = raw.get("operators", {})
    if not isinstance(raw_ops, dict) or not raw_ops:
        raise check.fail(
            "operators",
            "no operator is defined",
            "add an [operators.<key>] table with name and country",
        )
    for key, op in raw_ops.items():
        where = f"operators.{key}"
        if not isinstance(op, dict):
            raise check.fail(where, "must be a table", f"write [{where}] with name and country")
        extra = set(op) - OPERATOR_KEYS
        if extra:
            raise check.fail(
                f"{where}.{sorted(extra)[0]}", "unknown key", "use only name and country"
            )
        name = op.get("name")
        if not isinstance(name, str) or not name.strip():
            raise check.fail(f"{where}.name", "missing", "give the operator's legal name")
        operators[key] = Operator(
            key=key, name=name, country=check.country(f"{where}.country", op.get("country"))
        )
    return operators


def _read_regions(
    raw: dict[str, Any], operators: dict[str, Operator], data_dir: Path | None, check: _Checker
) -> dict[str, Region]:
    """The regions, each run by a defined operator; `{data_dir}` in their URLs replaced."""
    regions: dict[str, Region] = {}
    raw_regions = raw.get("regions", {})
    if not isinstance(raw_regions, dict) or not raw_regions:
        raise check.fail("regions", "no region is defined", "add a [regions.<name>] table")
    dd = str(data_dir.resolve()) if data_dir is not None else "{data_dir}"
    for name, reg in raw_regions.items():
        where = f"regions.{name}"
        if not REGION_NAME.match(name):
            raise check.fail(
                where,
                "a region name is lower-case letters, digits and dashes",
                'rename it, e.g. "us" or "eu-west"',
            )
        if not isinstance(reg, dict):
            raise check.fail(
                where,
                "must be a table",
                f"write [{where}] with location, operator, database_url, blob_store",
            )
        extra = set(reg) - REGION_KEYS
        if extra:
            raise check.fail(
                f"{where}.{sorted(extra)[0]}",
                "unknown key",
                f"use only {', '.join(sorted(REGION_KEYS))}",
            )
        location = check.country(f"{where}.location", reg.get("location"))
        op = reg.get("operator")
        if not op:
            raise check.fail(
                f"{where}.operator",
                "the region has no operator",
                f"add operator = one of {sorted(operators)}",
            )
        if op not in operators:
            raise check.fail(
                f"{where}.operator",
                f"operator {op!r} is not defined",
                f"define [operators.{op}] or use one of {sorted(operators)}",
            )
        for k in ("database_url", "blob_store"):
            if not isinstance(reg.get(k), str) or not reg[k]:
                raise check.fail(
                    f"{where}.{k}", "missing", f'add {k} = "..." (see docs/residency-policy.md)'
                )
        redis_url = reg.get("redis_url")
        if redis_url is not None and (
            not isinstance(redis_url, str) or not redis_url.startswith(("redis://", "rediss://"))
        ):
            raise check.fail(
                f"{where}.redis_url",
                "not a Redis URL",
                'write redis_url = "redis://host:6379/0" (or rediss:// for TLS), or leave it out',
            )
        regions[name] = Region(
            name=name,
            location=location,
            operator=op,
            database_url=reg["database_url"].replace("{data_dir}", dd),
            blob_store=reg["blob_store"].replace("{data_dir}", dd),
            redis_url=redis_url,
        )
    return regions


def _read_assignment(
    raw: dict[str, Any], regions: dict[str, Region], check: _Checker
) -> tuple[str, dict[str, str]]:
    """The default region and the jurisdiction → region map (each jurisdiction once)."""
    raw_assign = raw.get("assignment")
    if not isinstance(raw_assign, dict):
        raise check.fail(
            "assignment",
            "missing",
            'add [assignment] with default_region = "<region>" and [assignment.regions]',
        )
    extra = set(raw_assign) - {"default_region", "regions"}
    if extra:
        raise check.fail(
            f"assignment.{sorted(extra)[0]}",
            "unknown key",
            "use default_region and [assignment.regions]",
        )
    default_region = raw_assign.get("default_region")
    if default_region not in regions:
        raise check.fail(
            "assignment.default_region",
            f"region {default_region!r} does not exist",
            f"use one of the defined regions {sorted(regions)}",
        )
    assignment: dict[str, str] = {}
    per_region = raw_assign.get("regions", {})
    if not isinstance(per_region, dict):
        raise check.fail(
            "assignment.regions", "must be a table of region = [codes]", 'write us = ["US", "CA"]'
        )
    for region, codes in per_region.items():
        where = f"assignment.regions.{region}"
        if region not in regions:
            raise check.fail(
                where,
                f"region {region!r} does not exist",
                f"define [regions.{region}] or use one of {sorted(regions)}",
            )
        if not isinstance(codes, list):
            raise check.fail(
                where, "must be a list of jurisdiction codes", f'write {region} = ["US"]'
            )
        for i, code in enumerate(codes):
            code = check.country(f"{where}[{i}]", code)
            if code in assignment:
                raise check.fail(
                    f"{where}[{i}]",
                    f"jurisdiction {code} ({country_name(code)}) is assigned twice "
                    f"(already to region {assignment[code]!r})",
                    "assign each jurisdiction to exactly one region",
                )
            assignment[code] = region
    return default_region, assignment


def _check_never_store_in(
    assignment: dict[str, str],
    default_region: str,
    regions: dict[str, Region],
    never_store_in: frozenset[str],
    check: _Checker,
) -> None:
    """DESIGN rule 4: no jurisdiction's home (nor the default) is located in a never_store_in
    country."""
    for code, region in [*assignment.items(), ("(default)", default_region)]:
        loc = regions[region].location
        if loc in never_store_in:
            key = (
                "assignment.default_region"
                if code == "(default)"
                else f"assignment.regions.{region}"
            )
            who = (
                "everyone not assigned elsewhere" if code == "(default)" else f"jurisdiction {code}"
            )
            raise check.fail(
                key,
                f"{who} would be stored in region {region!r}, located in {loc} "
                f"({country_name(loc)}), which is in never_store_in",
                "assign these jurisdictions to a region located elsewhere",
            )


def _read_staff_access(raw: dict[str, Any], source: Path, check: _Checker) -> Path | None:
    """The Cedar file of staff-access rules, relative to the policy file (validated by
    `load_policy`)."""
    staff = raw.get("staff_access")
    if staff is None:
        return None
    if not isinstance(staff, dict) or not isinstance(staff.get("policies"), str):
        raise check.fail(
            "staff_access",
            'must be a table with policies = "<file>.cedar"',
            'write [staff_access] policies = "staff-access.cedar"',
        )
    policies: str = staff["policies"]
    return (source.parent / policies).resolve()


BUILTIN_POLICIES = Path(__file__).parent / "policies"


def builtin_policy_text(name: str) -> str:
    """Text of a policy shipped with reelm (`demo`, `before-2020`)."""
    path = BUILTIN_POLICIES / f"{name}.toml"
    if not path.is_file():
        names = sorted(p.stem for p in BUILTIN_POLICIES.glob("*.toml"))
        raise PolicyError(
            f"No built-in policy named {name!r}; choose one of {names} or give a file path."
        )
    return path.read_text(encoding="utf-8")


def policy_source(value: str) -> Path:
    """The file of a policy given as a path, or by a built-in name (`demo`, `before-2020`)."""
    path = Path(value)
    if path.is_file():
        return path
    if path.suffix or len(path.parts) > 1:
        raise PolicyError(f"{value}: no such policy file.")
    builtin_policy_text(value)  # a clear error for an unknown name
    return BUILTIN_POLICIES / f"{value}.toml"


__all__ = [
    "Operator",
    "PolicyError",
    "Region",
    "ResidencyPolicy",
    "all_jurisdictions",
    "builtin_policy_text",
    "load_policy",
    "parse_policy",
    "policy_source",
]
