"""A request the service refuses (`BadRequestError`, a 422 naming the field), and what a write must hold before it
is stored, checked against the bundle's catalog: a client learns what to fix, and nothing of the write is kept."""

from __future__ import annotations

import math
from datetime import timezone
from typing import Any

from foryou.errors import ForyouError
from foryou.serving.catalog import FieldRoles
from foryou.serving.state import as_utc
from foryou.serving.store import StoredEvent


class BadRequestError(ForyouError):
    """A request is well-formed but asks for something this service cannot do; the message names the field."""


def check_item_fields(fields: dict[str, Any], roles: FieldRoles) -> None:
    """Field names the catalog knows, with values of their role's type (the price a finite number >= 0); else
    BadRequestError naming the field."""
    text, categorical, numeric = roles.text, roles.categorical, roles.numeric
    for name, value in fields.items():
        if name not in (*text, *categorical, *numeric):
            known = ", ".join([*text, *categorical, *numeric]) or "none"
            raise BadRequestError(f"fields.{name}: not a field of this catalog; accepted fields: {known}")
        if value is None:
            continue
        if name in text and not isinstance(value, str):
            raise BadRequestError(f"fields.{name}: a text field takes a string")
        if name in categorical and not isinstance(value, (str, list)):
            raise BadRequestError(f"fields.{name}: a categorical field takes a string or a list of strings")
        if name in numeric and (isinstance(value, bool) or not isinstance(value, (int, float))
                                or not math.isfinite(value)):
            raise BadRequestError(f"fields.{name}: a numeric field takes a finite number")
        if name == roles.price and value < 0:
            raise BadRequestError(f"fields.{name}: a price cannot be negative, got {value}")


def stored_event(user_id: str, item_id: str, event_type: str, timestamp: Any, event_id: str | None) -> StoredEvent:
    return StoredEvent(user_id, item_id, event_type, as_utc(timestamp).astimezone(timezone.utc), event_id)
