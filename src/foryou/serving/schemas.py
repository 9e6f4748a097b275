"""Request and response bodies of the HTTP API (pydantic): limits, examples, and field-naming errors.

Every string has a length cap, every number must be finite, and unknown keys are refused, so bad input is a
422 that names the field rather than a 5xx or a silently ignored typo.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    model_validator,
)

MAX_ID_LENGTH = 256
MAX_TEXT_LENGTH = 10_000
MAX_LIST = 1000

ID_PATTERN = r"^[^\x00-\x1f\x7f]+$"  # no control characters: ids are stored, logged and shown
Id = Annotated[str, StringConstraints(min_length=1, max_length=MAX_ID_LENGTH, pattern=ID_PATTERN)]
EventType = Annotated[str, StringConstraints(min_length=1, max_length=64)]


def _in_utc_range(moment: datetime) -> datetime:
    """A timestamp that has a UTC equivalent (9999-12-31T23:00-14:00 has none: a 422, not a 500 later)."""
    if moment.tzinfo is not None:
        try:
            moment.astimezone(timezone.utc)
        except OverflowError:
            raise ValueError("outside the years 1-9999 once converted to UTC") from None
    return moment


def _iso_text(value: Any) -> Any:
    """Only ISO 8601 text (the schema says `date-time`): a bare number is refused, not read as epoch seconds."""
    if not isinstance(value, (str, datetime)):  # pydantic makes a ValueError (not a TypeError) a 422
        raise ValueError("must be an ISO 8601 date-time string, e.g. 2024-05-01T12:00:00Z")  # noqa: TRY004
    return value


Timestamp = Annotated[datetime, BeforeValidator(_iso_text), AfterValidator(_in_utc_range)]


def _whole(value: Any) -> Any:
    """A JSON integer, which JSON Schema lets be written 3 or 3.0; never a boolean, a string or 2.5."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError("must be a whole number")  # noqa: TRY004 - pydantic makes a ValueError a 422
    return value


PositiveWhole = Annotated[int, Field(ge=1), BeforeValidator(_whole)]  # the bound first: the schema says it
FieldValue = (Annotated[str, StringConstraints(max_length=MAX_TEXT_LENGTH)] | float | bool | None
              | Annotated[list[Annotated[str, StringConstraints(max_length=MAX_ID_LENGTH)]], Field(max_length=100)])


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


class Interaction(Strict):
    item_id: Id
    event_type: EventType = "view"
    timestamp: Timestamp | None = Field(None, description="ISO 8601; absent: now")


class RecommendationFilters(Strict):
    categories: list[Id] = Field(default_factory=list, max_length=MAX_LIST,
                                 description="keep only items in one of these categories")
    exclude_categories: list[Id] = Field(default_factory=list, max_length=MAX_LIST,
                                         description="leave out items in any of these categories")
    min_price: float | None = Field(None, ge=0, strict=True)
    max_price: float | None = Field(None, ge=0, strict=True)
    available_only: bool = Field(True, strict=True, description="leave out items marked unavailable")
    exclude_seen: bool = Field(True, strict=True, description="leave out items the user already interacted with")
    seen_event_types: list[EventType] | None = Field(
        None, max_length=100, description="the event types that make an item seen for exclude_seen (absent: all); "
        "e.g. [\"view\", \"add_to_cart\"] lets bought items come back, for re-buying")
    max_per_category: PositiveWhole | None = Field(None, description="at most this many items per category")
    diversity: float = Field(0.0, ge=0.0, le=1.0, strict=True, description="MMR trade-off between score (0, the default: off) "
                             "and unlikeness to the items above (1); items then come in MMR order, each with "
                             "its strategy score")


class RecommendationRequest(Strict):
    user_id: Id | None = Field(None, description="a user id: their stored history is used")
    interactions: list[Interaction] = Field(default_factory=list, description="events to add to the history")
    k: PositiveWhole = Field(10, description="how many items (at most the server's max_k)")
    strategy: str | None = Field(None, min_length=1, max_length=64,
                                 description="absent: the bundle's default strategy")
    filters: RecommendationFilters = Field(default_factory=RecommendationFilters)
    explain: bool = Field(False, strict=True, description="add reasons in words to each item")

    model_config = ConfigDict(json_schema_extra={"examples": [
        {"user_id": "12347", "k": 5, "explain": True},
        {"interactions": [{"item_id": "85123A", "event_type": "purchase"}], "k": 5,
         "filters": {"max_price": 10.0}, "explain": True},
    ]})


class Reason(BaseModel):
    kind: Literal["history", "content", "category", "brand", "popular", "price", "new"]
    text: str
    item_id: str | None = Field(None, description="the history item the reason names, if any")
    feature: str | None = Field(None, description="ranking-stage strategies: the ranker feature behind the reason")


class Contribution(BaseModel):
    feature: str
    value: float = Field(description="the feature's share of the item's score (with `bias`, they add up to it)")


class RecommendedItem(BaseModel):
    item_id: str
    rank: int
    score: float
    title: str | None = None
    category: str | None = None
    price: float | None = None
    reasons: list[Reason] | None = None
    contributions: list[Contribution] | None = Field(
        None, description="explain with reranked_lgbm, hybrid or hybrid_rrf: every (feature, contribution) of the "
        "item's score, largest first")


class RecommendationResponse(BaseModel):
    user_id: str | None
    strategy: str
    items: list[RecommendedItem]
    model_version: str
    fallback: str | None = Field(None, description="the strategy used instead when the asked one could not "
                                 "place the user (no usable history)")
    warnings: list[str] = Field(default_factory=list)


class HistoryEvent(BaseModel):
    item_id: str
    event_type: str
    timestamp: datetime
    source: Literal["training", "live"]


class HistoryResponse(BaseModel):
    user_id: str
    known_to_model: bool
    events: list[HistoryEvent]


class SimilarResponse(BaseModel):
    item_id: str
    items: list[RecommendedItem]
    model_version: str


class EventIn(Strict):
    user_id: Id
    item_id: Id
    event_type: EventType = "view"
    timestamp: Timestamp | None = Field(None, description="ISO 8601; absent: the time the server receives it")
    event_id: Id | None = Field(None, description="idempotency key: an event id already stored is skipped")


class EventsRequest(Strict):
    events: list[EventIn] = Field(min_length=1, max_length=MAX_LIST)

    model_config = ConfigDict(json_schema_extra={"examples": [
        {"events": [{"user_id": "12347", "item_id": "85123A", "event_type": "view", "event_id": "e-1"}]}]})


class EventsResponse(BaseModel):
    stored: int = Field(description="events newly stored")
    duplicates: int = Field(description="events skipped because their event_id was already stored")
    warnings: list[str] = Field(default_factory=list)


class ItemIn(Strict):
    fields: dict[Annotated[str, StringConstraints(min_length=1, max_length=64)], FieldValue] = Field(
        default_factory=dict, max_length=100,
        description="the catalog's item fields: text (e.g. title, description), categoricals, numbers (price)")
    available: bool = Field(True, strict=True)

    model_config = ConfigDict(json_schema_extra={"examples": [
        {"fields": {"description": "GOLD HOOP EARRINGS", "price": 4.95}, "available": True}]})


class ItemPatch(Strict):
    fields: dict[Annotated[str, StringConstraints(min_length=1, max_length=64)], FieldValue] = Field(
        default_factory=dict, max_length=100, description="only the fields to change; null clears one")
    available: bool | None = Field(None, strict=True, description="absent: unchanged")

    model_config = ConfigDict(json_schema_extra={"examples": [{"available": False}, {"fields": {"price": 3.5}}]})


class ItemResponse(BaseModel):
    item_id: str
    status: Literal["created", "updated", "deleted"]
    item: dict[str, Any] | None = None


class EncodeRequest(Strict):
    user_id: Id | None = None
    interactions: list[Interaction] = Field(default_factory=list)

    model_config = ConfigDict(json_schema_extra={"anyOf": [
        {"required": ["user_id"], "properties": {"user_id": {"type": "string"}}},
        {"required": ["interactions"], "properties": {"interactions": {"minItems": 1}}}]})

    @model_validator(mode="after")
    def _someone_to_encode(self) -> EncodeRequest:
        if self.user_id is None and not self.interactions:
            raise ValueError("give a user_id or at least one interaction")
        return self


class EncodeResponse(BaseModel):
    vector: list[float]
    model_version: str
    warnings: list[str] = Field(default_factory=list)


class RetrieveRequest(Strict):
    vector: list[Annotated[float, Field(strict=True)]] = Field(min_length=1, max_length=4096,
                                                               description="as returned by /v1/users/encode")
    k: PositiveWhole = 10
    filters: RecommendationFilters = Field(default_factory=RecommendationFilters)
    exclude_items: list[Id] = Field(default_factory=list, max_length=MAX_LIST)


class RetrieveResponse(BaseModel):
    items: list[RecommendedItem]
    model_version: str


class ReloadRequest(Strict):
    bundle: str | None = Field(None, min_length=1, max_length=4096, description="bundle folder, relative to the "
                               "server's bundle root (serving.bundle_root) or inside it; absent: the current one "
                               "again")


class ReloadResponse(BaseModel):
    model_version: str
    previous_model_version: str


class CatalogResponse(BaseModel):
    """What a client needs to build requests: the item fields PUT /v1/items accepts and the strategies."""

    title: str | None = Field(description="the text field shown as an item's title")
    category: str | None = Field(description="the categorical field shown as an item's category")
    price: str | None = Field(description="the numeric field shown as an item's price")
    text: list[str]
    categorical: list[str]
    numeric: list[str]
    strategies: list[str]
    default_strategy: str
    max_k: int
    model_version: str


class FieldError(BaseModel):
    field: str = Field(description="where, e.g. body.events.0.timestamp or query.k")
    message: str


class ErrorResponse(BaseModel):
    detail: str | list[FieldError] = Field(description="what to fix: one message, or one per invalid field (422)")


class Readiness(BaseModel):
    status: Literal["ready", "loading", "failed"]
    model_version: str | None = None
    detail: str | None = Field(None, description="why the bundle failed to load")
