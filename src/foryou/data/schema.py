"""The canonical tables every adapter produces and every later step reads.

interactions: user_id (str), item_id (str), timestamp (datetime64[ns, UTC]), event_type (str),
              value (float, optional: the rating or quantity the source gave), weight (float, set by weights.py)
items:        item_id (str) + text / categorical / numeric / vector fields named in `FieldRoles`
users:        user_id (str) + categorical / numeric feature fields named in `FieldRoles`
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

USER_ID = "user_id"
ITEM_ID = "item_id"
TIMESTAMP = "timestamp"
EVENT_TYPE = "event_type"
VALUE = "value"
WEIGHT = "weight"
SPLIT = "split"
USER_IDX = "user_idx"
ITEM_IDX = "item_idx"
COLD_USER = "cold_user"
COLD_ITEM = "cold_item"
# Position of the row in its source, so that ties on timestamp keep file order (stable, reproducible splits).
SOURCE_ORDER = "source_order"

INTERACTION_COLUMNS = (USER_ID, ITEM_ID, TIMESTAMP, EVENT_TYPE, VALUE)
SPLITS = ("train", "valid", "test")

# Canonical event types. Adapters map their source's names onto these; anything else is kept as given.
VIEW, CLICK, SAVE, ADD_TO_CART, PURCHASE, RATING = "view", "click", "save", "add_to_cart", "purchase", "rating"


@dataclass
class FieldRoles:
    """Which columns of an items (or users) table are text, categorical, numeric or precomputed vectors.

    Categorical values may be a string or a list of strings (multi-valued, e.g. genres).
    Vector columns hold one list/array of floats per row.
    """

    text: list[str] = field(default_factory=list)
    categorical: list[str] = field(default_factory=list)
    numeric: list[str] = field(default_factory=list)
    vector: list[str] = field(default_factory=list)

    def all(self) -> list[str]:
        return [*self.text, *self.categorical, *self.numeric, *self.vector]

    def to_dict(self) -> dict[str, list[str]]:
        return {"text": self.text, "categorical": self.categorical, "numeric": self.numeric, "vector": self.vector}

    @classmethod
    def from_dict(cls, raw: dict[str, list[str]] | None) -> FieldRoles:
        raw = raw or {}
        return cls(**{key: list(raw.get(key, [])) for key in ("text", "categorical", "numeric", "vector")})


@dataclass
class SourceTables:
    """What an adapter returns: canonical tables plus everything it set aside, so nothing is lost silently.

    `quarantine` holds malformed rows (columns: file, row, reason, raw) and `dropped` counts rows removed on
    purpose by a rule of the source (e.g. cancelled invoices), keyed by a sentence that names the rule.
    """

    interactions: pd.DataFrame
    items: pd.DataFrame | None = None
    users: pd.DataFrame | None = None
    item_fields: FieldRoles = field(default_factory=FieldRoles)
    user_fields: FieldRoles = field(default_factory=FieldRoles)
    quarantine: pd.DataFrame = field(default_factory=lambda: empty_quarantine())
    dropped: dict[str, int] = field(default_factory=dict)
    inputs: list[str] = field(default_factory=list)


QUARANTINE_COLUMNS = ("file", "row", "reason", "raw")


def empty_quarantine() -> pd.DataFrame:
    return pd.DataFrame({name: pd.Series(dtype="object") for name in QUARANTINE_COLUMNS})
