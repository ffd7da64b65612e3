"""Every policy error names the file, the key and the fix; the demo policy models the 2020 deal."""

from __future__ import annotations

from pathlib import Path

import pytest

from reelm.residency.policy import (
    BUILTIN_POLICIES,
    PolicyError,
    builtin_policy_text,
    load_policy,
    parse_policy,
)

DEMO = builtin_policy_text("demo")


def load(text: str, tmp_path: Path) -> object:
    (tmp_path / "staff-access.cedar").write_text(
        (BUILTIN_POLICIES / "staff-access.cedar").read_text()
    )
    path = tmp_path / "policy.toml"
    path.write_text(text)
    return load_policy(path)


def test_demo_policy_assigns_the_2020_deal_countries_to_us(tmp_path: Path) -> None:
    pol = parse_policy(DEMO, source=Path("demo.toml"))
    assert {j: pol.region_for(j) for j in ("US", "CA", "AU", "NZ")} == dict.fromkeys(
        ("US", "CA", "AU", "NZ"), "us"
    )
    assert pol.region_for("DE") == "sg"
    assert pol.region_for("CN") == "sg"
    assert pol.operator_of("us").country == "US"
    assert pol.regions["sg"].location == "SG"
    assert pol.never_store_in == {"CN"}


def test_content_hash_changes_with_content() -> None:
    a = parse_policy(DEMO, source=Path("a.toml"))
    b = parse_policy(DEMO + "\n# comment\n", source=Path("a.toml"))
    assert a.content_hash != b.content_hash
    assert len(a.content_hash) == 64


@pytest.mark.parametrize(
    ("old", "new", "key", "words"),
    [
        ('location = "US"', 'location = "XX"', "regions.us.location", "not an ISO 3166-1"),
        (
            'country = "SG"',
            'country = "Singapore"',
            "operators.global.country",
            "not an ISO 3166-1",
        ),
        (
            'us = ["US", "CA", "AU", "NZ"]',
            'us = ["US", "QQ"]',
            "assignment.regions.us[1]",
            "ISO 3166-1",
        ),
        ('us = ["US", "CA", "AU", "NZ"]', 'eu = ["DE"]', "assignment.regions.eu", "does not exist"),
        (
            'default_region = "sg"',
            'default_region = "mars"',
            "assignment.default_region",
            "does not exist",
        ),
        (
            'us = ["US", "CA", "AU", "NZ"]',
            'us = ["US", "CA"]\nsg = ["CA"]',
            "assignment.regions.sg[0]",
            "assigned twice",
        ),
        (
            'us = ["US", "CA", "AU", "NZ"]',
            'us = ["US", "US"]',
            "assignment.regions.us[1]",
            "assigned twice",
        ),
        ('operator = "usds"', 'operator = ""', "regions.us.operator", "has no operator"),
        ('operator = "usds"', 'operator = "nobody"', "regions.us.operator", "not defined"),
        (
            'never_store_in = ["CN"]',
            'never_store_in = ["CN", "SG"]',
            "assignment.default_region",
            "never_store_in",
        ),
        (
            'location = "US"',
            'location = "US"\nredis_url = "localhost:6379"',
            "regions.us.redis_url",
            "not a Redis URL",
        ),
    ],
)
def test_bad_policy_is_rejected_with_file_key_and_fix(
    tmp_path: Path, old: str, new: str, key: str, words: str | None
) -> None:
    assert old in DEMO
    with pytest.raises(PolicyError) as e:
        load(DEMO.replace(old, new, 1), tmp_path)
    msg = e.value.message
    assert str(tmp_path / "policy.toml") in msg
    assert key in msg
    assert "Fix:" in msg
    if words:
        assert words in msg


def test_region_located_in_never_store_in_country_cannot_hold_anyone(tmp_path: Path) -> None:
    text = DEMO.replace('[regions.sg]\nlocation = "SG"', '[regions.sg]\nlocation = "CN"')
    with pytest.raises(PolicyError) as e:
        load(text, tmp_path)
    assert "assignment.default_region" in e.value.message
    assert "never_store_in" in e.value.message
    assert "CN" in e.value.message


def test_assigning_jurisdiction_to_region_in_never_store_in_country_is_refused(
    tmp_path: Path,
) -> None:
    text = DEMO.replace('never_store_in = ["CN"]', 'never_store_in = ["US"]')
    with pytest.raises(PolicyError) as e:
        load(text, tmp_path)
    assert "assignment.regions.us" in e.value.message
    assert "jurisdiction AU" in e.value.message or "jurisdiction US" in e.value.message


def test_region_without_operator_key_is_refused(tmp_path: Path) -> None:
    text = DEMO.replace('operator = "usds"\n', "", 1)
    with pytest.raises(PolicyError, match=r"regions\.us\.operator.*has no operator"):
        load(text, tmp_path)


def test_duplicate_toml_key_is_reported_as_syntax_with_fix(tmp_path: Path) -> None:
    text = DEMO.replace('us = ["US", "CA", "AU", "NZ"]', 'us = ["US"]\nus = ["CA"]')
    with pytest.raises(PolicyError, match="remove the repeated key"):
        load(text, tmp_path)


def test_unknown_key_is_refused(tmp_path: Path) -> None:
    with pytest.raises(PolicyError, match="regions.us.colour: unknown key"):
        load(DEMO.replace('location = "US"', 'location = "US"\ncolour = "red"'), tmp_path)


def test_a_region_with_redis_url_keeps_its_queue_there_and_settings_override_it(
    tmp_path: Path,
) -> None:
    from reelm.residency.store import Platform

    text = DEMO.replace('location = "US"', 'location = "US"\nredis_url = "redis://q-us:6379/0"')
    load(text, tmp_path)  # writes the Cedar file beside it
    policy = load_policy(tmp_path / "policy.toml", data_dir=tmp_path / "data")
    assert policy.regions["us"].redis_url == "redis://q-us:6379/0"
    assert policy.regions["sg"].redis_url is None
    db = f"sqlite:///{tmp_path}/x.db"
    platform = Platform(
        policy=policy,
        global_url=db,
        keys_dir=tmp_path / "keys",
        region_urls={"us": db, "sg": db},
        redis_urls={"sg": "redis://q-sg:6379/1"},
    )
    assert platform.regions["us"].redis_url == "redis://q-us:6379/0"
    assert platform.regions["sg"].redis_url == "redis://q-sg:6379/1"
    platform.close()


def test_missing_file_says_how_to_create_one(tmp_path: Path) -> None:
    with pytest.raises(PolicyError, match="reelm init"):
        load_policy(tmp_path / "nope.toml")


def test_unknown_jurisdiction_at_lookup_is_a_clear_error() -> None:
    pol = parse_policy(DEMO, source=Path("demo.toml"))
    with pytest.raises(PolicyError, match="Unknown jurisdiction 'ZZ'"):
        pol.region_for("ZZ")
