"""Every setting is documented: a new field without a line in docs/settings.md fails here."""

from __future__ import annotations

from pathlib import Path

from reelm.config import Settings

DOCS = Path(__file__).resolve().parents[1] / "docs" / "settings.md"


def test_every_setting_is_documented_with_its_variable_name() -> None:
    text = DOCS.read_text()
    missing = [
        f"REELM_{name.upper()}"
        for name in Settings.model_fields
        if f"`REELM_{name.upper()}`" not in text
    ]
    assert not missing, f"document these settings in docs/settings.md: {missing}"


def test_every_setting_has_a_description() -> None:
    assert all(f.description for f in Settings.model_fields.values())
