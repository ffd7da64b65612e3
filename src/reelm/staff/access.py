"""Cedar staff-access policies: the schema they are validated against, loading, and decisions.

Policies live beside the residency policy (`[staff_access] policies = "…cedar"`) and are validated
at load against `SCHEMA`; default deny. A decision carries the `@id` of each policy that decided it.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import cached_property, lru_cache
from pathlib import Path
from typing import Any

import cedarpy

from reelm.errors import PolicyError

SCHEMA = """
entity Staff { operator: String, mfa: Bool };
entity UserData { region: String, region_operator: String, region_location: String, category: String };
action read appliesTo {
  principal: Staff,
  resource: UserData,
  context: {
    purpose: String,
    ticket_id: String,
    ticket_open: Bool,
    ticket_operator: String,
    ticket_region: String,
  }
};
"""
DATA_CATEGORIES = ("account", "sessions")
POLICY_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:/+#-]{0,127}$")


@dataclass(frozen=True)
class StaffPolicies:
    source: Path | None
    text: str
    ids: dict[str, str]  # cedar's positional id (policy0…) → the policy's @id

    @classmethod
    def deny_all(cls) -> StaffPolicies:
        return cls(source=None, text="", ids={})

    @cached_property
    def policy_set(self) -> cedarpy.PolicySet:
        """`text` parsed once: parsing the policies and the schema at every decision was most
        of its cost (about 8 times cedarpy's evaluation of it). The handle is immutable, so
        concurrent requests share it."""
        return cedarpy.PolicySet.from_str(self.text)


@lru_cache(maxsize=1)
def _schema() -> cedarpy.Schema:
    """`SCHEMA` parsed once (see `StaffPolicies.policy_set`)."""
    return cedarpy.Schema.from_str(SCHEMA)


@dataclass(frozen=True)
class Decision:
    allowed: bool
    policy_ids: list[str]


def load_staff_policies(path: Path | None) -> StaffPolicies:
    """Read and validate a Cedar file; a mistake is a PolicyError naming the file and the fix."""
    if path is None:
        return StaffPolicies.deny_all()
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise PolicyError(
            f"{path}: staff_access.policies: the Cedar file does not exist. Fix: create it beside "
            "the residency policy or remove [staff_access]."
        ) from None
    return parse_staff_policies(text, source=path)


def parse_staff_policies(text: str, *, source: Path) -> StaffPolicies:
    def fail(problem: str, fix: str) -> PolicyError:
        return PolicyError(f"{source}: staff_access.policies: {problem}. Fix: {fix}.")

    try:
        as_json = json.loads(cedarpy.policies_to_json_str(text))
    except Exception as e:  # cedarpy raises plain exceptions with the parser's message
        raise fail(f"not valid Cedar ({e})", "correct the policy syntax") from None
    statics: dict[str, Any] = as_json.get("staticPolicies", {})
    if as_json.get("templates"):
        raise fail("templates are not supported", "write static policies only")
    result = cedarpy.validate_policies(text, SCHEMA)
    if not result.validation_passed:
        errors = "; ".join(e.error for e in result.errors)
        raise fail(f"does not match the staff-access schema ({errors})", "see docs/staff-access.md")
    ids: dict[str, str] = {}
    for position, policy in statics.items():
        pid = policy.get("annotations", {}).get("id")
        if not isinstance(pid, str) or not POLICY_ID.match(pid):
            raise fail(
                f"policy {position} has no valid @id annotation",
                'give every policy an @id("short-name") so the audit log can name it',
            )
        if pid in ids.values():
            raise fail(f"two policies share the @id {pid!r}", "give each policy its own @id")
        ids[position] = pid
    return StaffPolicies(source=source, text=text, ids=ids)


def decide(
    policies: StaffPolicies,
    *,
    staff: dict[str, Any],
    resource: dict[str, Any],
    context: dict[str, Any],
) -> Decision:
    """Evaluate one read. `staff` and `resource` carry `id` plus the schema's attributes."""
    if not policies.text:
        return Decision(False, [])
    entities = [
        {
            "uid": {"type": "Staff", "id": staff["id"]},
            "attrs": {k: v for k, v in staff.items() if k != "id"},
            "parents": [],
        },
        {
            "uid": {"type": "UserData", "id": resource["id"]},
            "attrs": {k: v for k, v in resource.items() if k != "id"},
            "parents": [],
        },
    ]
    request = {
        "principal": {"type": "Staff", "id": staff["id"]},
        "action": {"type": "Action", "id": "read"},
        "resource": {"type": "UserData", "id": resource["id"]},
        "context": context,
    }
    result = cedarpy.is_authorized(request, policies.policy_set, entities, schema=_schema())
    if result.diagnostics.errors:
        return Decision(False, [])
    reasons = [policies.ids.get(r, r) for r in result.diagnostics.reasons]
    return Decision(bool(result.allowed), sorted(reasons))
