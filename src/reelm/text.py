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
