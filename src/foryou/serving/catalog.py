"""The served catalog: the bundle's items plus those upserted live, under integer labels shared with the indexes.

Labels 0..n-1 are the bundle's catalog rows (the model's item indices); items added live get the next labels.
It owns what the service shows (title, category, price) and filters on (category, price, availability).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from foryou.data import schema as S

PRICE_NAMES = ("price", "unit_price", "unitprice")
TITLE_NAMES = ("title", "name", "description")
CATEGORY_NAMES = ("category", "genres", "genre", "department")


@dataclass(frozen=True)
class FieldRoles:
    """Which item columns the service shows as title / category / price, and which it accepts on upsert."""

    title: str | None
    category: str | None
    price: str | None
    text: list[str]
    categorical: list[str]
    numeric: list[str]

    @classmethod
    def from_item_fields(cls, item_fields: dict[str, list[str]]) -> FieldRoles:
        """Title: a text field named like a title (else the first); category: the first categorical field named
        like one (else the first); price: a numeric field named like a price."""
        text, categorical, numeric = (list(item_fields.get(role, [])) for role in ("text", "categorical", "numeric"))
        return cls(title=_pick(text, TITLE_NAMES, fallback=True), category=_pick(categorical, CATEGORY_NAMES, True),
                   price=_pick(numeric, PRICE_NAMES, fallback=False), text=text, categorical=categorical,
                   numeric=numeric)

    def accepted(self) -> list[str]:
        return [*self.text, *self.categorical, *self.numeric]


@dataclass
class Filters:
    """A request's business rules over items (None / empty = no rule)."""

    categories: Sequence[str] = ()
    exclude_categories: Sequence[str] = ()
    min_price: float | None = None
    max_price: float | None = None
    available_only: bool = True
    max_per_category: int | None = None
    diversity: float = 0.0

    def reorders(self) -> bool:
        """True when rules act on the ranked candidates (category cap, MMR): more candidates are fetched."""
        return self.max_per_category is not None or self.diversity > 0

    def restricts(self) -> bool:
        """True when some rule keeps only part of the catalog (availability is handled as a deny list)."""
        return bool(self.categories or self.exclude_categories) or self.min_price is not None \
            or self.max_price is not None


def rule_mask(n_items: int, allowed: np.ndarray | None, denied: np.ndarray) -> np.ndarray:
    """(n_items,) bool: the labels a request may receive (in `allowed`, or all when None, and not `denied`);
    labels past n_items (items added after the scoring model) are ignored."""
    mask = np.ones(n_items, dtype=bool) if allowed is None else np.zeros(n_items, dtype=bool)
    if allowed is not None:
        mask[allowed[allowed < n_items]] = True
    mask[denied[denied < n_items]] = False
    return mask


class Catalog:
    """Item ids <-> labels and the per-label arrays that filters read; grows as items are upserted."""

    def __init__(self, items: pd.DataFrame, roles: FieldRoles) -> None:
        self.roles = roles
        self.ids: list[str] = [str(item) for item in items[S.ITEM_ID]]
        self.labels: dict[str, int] = {item: label for label, item in enumerate(self.ids)}
        self.n_bundle = len(self.ids)
        self.titles = _column(items, roles.title).map(_text).to_numpy(dtype=object)
        self.categories: list[tuple[str, ...]] = [_as_categories(value) for value in _column(items, roles.category)]
        prices = pd.to_numeric(_column(items, roles.price), errors="coerce")
        self.prices = prices.to_numpy(dtype=np.float64, copy=True)  # writable: upserts assign into it
        self.available = np.ones(len(self.ids), dtype=bool)
        self._items = items  # the bundle's rows: their full fields, read by partial updates
        self._live_fields: dict[int, dict[str, Any]] = {}  # fields of items upserted since the bundle
        self._unavailable: set[int] = set()
        self._deleted: set[int] = set()

    def __len__(self) -> int:
        return len(self.ids)

    def label(self, item_id: str) -> int | None:
        """The label of a live item (deleted items have none)."""
        label = self.labels.get(item_id)
        return None if label is None or label in self._deleted else label

    def set_item(self, item_id: str, fields: dict[str, Any], available: bool) -> int:
        """Add or replace an item's fields and availability; returns its label."""
        label = self.labels.get(item_id)
        if label is None:  # the per-label arrays grow first, the id last: a concurrent reader sizing its work
            label = len(self.ids)  # by len(ids) never reads past an array's end
            self.categories.append(self._categories(fields))
            self.titles = np.append(self.titles, np.array([self._title(fields)], dtype=object))
            self.prices = np.append(self.prices, self._price(fields))
            self.available = np.append(self.available, available)
            self.ids.append(item_id)
            self.labels[item_id] = label
        else:
            self.categories[label] = self._categories(fields)
            self.titles[label] = self._title(fields)
            self.prices[label] = self._price(fields)
            self.available[label] = available
        self._live_fields[label] = dict(fields)
        self._deleted.discard(label)
        if available:
            self._unavailable.discard(label)
        else:
            self._unavailable.add(label)
        return label

    def fields_of(self, label: int) -> dict[str, Any]:
        """Every accepted field of an item (None where it has no value): what a partial update starts from."""
        if label in self._live_fields:
            return {name: self._live_fields[label].get(name) for name in self.roles.accepted()}
        row = self._items.iloc[label]
        return {name: _plain(row[name]) if name in row.index else None for name in self.roles.accepted()}

    def is_available(self, label: int) -> bool:
        return label not in self._unavailable

    def withdraw(self, item_id: str) -> int | None:
        """Take an item out of every result (DELETE); returns its label, None when unknown."""
        label = self.label(item_id)
        if label is not None:
            self._deleted.add(label)
        return label

    def hidden(self, available_only: bool) -> np.ndarray:
        """Labels not to return: deleted items, and with `available_only` those marked unavailable (int64)."""
        hidden = self._deleted | self._unavailable if available_only else self._deleted
        return np.array(sorted(hidden), dtype=np.int64)

    def allowed(self, filters: Filters) -> np.ndarray | None:
        """Boolean mask over every label of items passing the category and price rules, or None when no such
        rule is set."""
        if not filters.restricts():
            return None
        count = len(self.ids)
        mask = np.ones(count, dtype=bool)
        if filters.categories or filters.exclude_categories:
            wanted, unwanted = set(filters.categories), set(filters.exclude_categories)
            cats = self.categories[:count]
            if wanted:
                mask &= np.fromiter((not wanted.isdisjoint(c) for c in cats), bool, count)
            if unwanted:
                mask &= np.fromiter((unwanted.isdisjoint(c) for c in cats), bool, count)
        prices = self.prices[:count]
        if filters.min_price is not None:
            mask &= prices >= filters.min_price
        if filters.max_price is not None:
            mask &= prices <= filters.max_price
        return mask

    def describe(self, label: int) -> dict[str, Any]:
        """What a result shows of an item: id, title, category, price."""
        price = self.prices[label]
        categories = self.categories[label]
        return {"item_id": self.ids[label], "title": self.titles[label],
                "category": categories[0] if categories else None,
                "price": None if math.isnan(price) else float(price)}

    def _title(self, fields: dict[str, Any]) -> str | None:
        return _text(fields.get(self.roles.title)) if self.roles.title else None

    def _categories(self, fields: dict[str, Any]) -> tuple[str, ...]:
        return _as_categories(fields.get(self.roles.category)) if self.roles.category else ()

    def _price(self, fields: dict[str, Any]) -> float:
        value = fields.get(self.roles.price) if self.roles.price else None
        try:
            return float(value) if value is not None else math.nan
        except (TypeError, ValueError):
            return math.nan


def _column(items: pd.DataFrame, name: str | None) -> pd.Series:
    """A column of the items table, or all None when the role has no column."""
    if name is None or name not in items:
        return pd.Series([None] * len(items), dtype=object)
    return items[name]


def _text(value: Any) -> str | None:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return str(value)


def _plain(value: Any) -> Any:
    """A cell of the items table as a JSON value: numpy scalars and arrays as Python ones, missing as None."""
    if isinstance(value, np.ndarray):
        return [str(part) for part in value.tolist() if part is not None]
    if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)):
        return None
    return value.item() if isinstance(value, np.generic) else value


def _as_categories(value: Any) -> tuple[str, ...]:
    """A categorical cell (one value, a list, or missing) as a tuple of strings."""
    if isinstance(value, (list, tuple, np.ndarray)):
        return tuple(str(part) for part in value if part is not None)
    if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA:
        return ()
    return (str(value),)


def _pick(names: list[str], preferred: tuple[str, ...], fallback: bool) -> str | None:
    for name in names:
        if name.lower() in preferred:
            return name
    return names[0] if names and fallback else None
