"""User-typed text: NUL and other control characters never reach a database (PostgreSQL refuses
NUL; terminals and logs misread the rest). Newlines and tabs stay."""

from __future__ import annotations

import re
import unicodedata
from typing import Annotated

from pydantic import AfterValidator

CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def clean_text(value: str) -> str:
    return unicodedata.normalize("NFC", CONTROL.sub("", value))


UserText = Annotated[str, AfterValidator(clean_text)]


HASHTAG = re.compile(r"(?<![\w#])#(\w{1,100})", re.UNICODE)
MENTION = re.compile(r"(?<![\w@])@([A-Za-z0-9_.]{3,24})")


def parse_caption(caption: str) -> tuple[list[str], list[str]]:
    """Hashtags (lower-cased) and mentions (handles) in a caption or a comment, in order,
    without repeats."""
    tags = list(dict.fromkeys(t.lower() for t in HASHTAG.findall(caption)))
    mentions = list(dict.fromkeys(m.lower().strip(".") for m in MENTION.findall(caption)))
    return tags, mentions
