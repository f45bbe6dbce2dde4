"""The JSON Schemas croctl ships for its plan and its JSON report."""

from __future__ import annotations

import json
from importlib.resources import files
from typing import Any


def load_schema(kind: str) -> dict[str, Any]:
    """The JSON Schema named `kind` ("plan" or "report")."""
    text = files(__package__).joinpath(f"{kind}.json").read_text(encoding="utf-8")
    result: dict[str, Any] = json.loads(text)
    return result
