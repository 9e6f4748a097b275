"""Everything known about the requesting user, computed once per request and read by every layer below the
recommender: the trained history, the live events, the seen labels, the two-tower query and the timeline
(history as arrays) that the ranking stage and the candidate sources read.
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

import numpy as np

from foryou.models.sequences import SECONDS_PER_DAY
from foryou.rerank.candidates import recency_weights, recent_items
from foryou.serving.state import Event, ServingState, as_utc, model_events

EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
MICROSECOND = timedelta(microseconds=1)
NS_LIMIT = np.iinfo(np.int64).max  # nanoseconds since 1970 end in 2262: later (and pre-1678) events are clamped


@dataclass(frozen=True)
class Timeline:
    """The user's events on live catalog items, oldest first: labels (n,) int64, ns (n,) int64 nanoseconds since
    the epoch, event types (n,) as given."""

    labels: np.ndarray
    ns: np.ndarray
    types: list[str]

    @functools.cached_property
    def distinct(self) -> np.ndarray:
        """Every distinct label, latest first (an item counts at its latest event): read by each source and reason
        that looks at the user's last items, computed once."""
        return recent_items(self.labels, len(self.labels))[0]

    def recent(self, last_n: int) -> np.ndarray:
        """The `last_n` most recent distinct labels, latest first."""
        return self.distinct[:last_n]

    def recent_below(self, n_items: int, last_n: int, decay: float) -> tuple[np.ndarray, np.ndarray]:
        """`recent_items` of the history's labels below `n_items` (those a source fitted on n_items knows)."""
        known = self.distinct[self.distinct < n_items][:last_n]
        return known, recency_weights(len(known), decay)

    def recent_where(self, keep: Callable[[int], bool], count: int) -> list[int]:
        """The `count` most recent distinct labels that pass `keep` (e.g. still in an index), latest first; the
        history is read no further than needed."""
        return list(itertools.islice((label for label in self.distinct.tolist() if keep(label)), count))

    def latest_types(self) -> dict[int, str]:
        """label -> the type of the user's latest event on it."""
        return dict(zip(self.labels.tolist(), self.types))


@dataclass
class UserContext:
    """Everything known about the requesting user: trained index, full history, seen labels."""

    state: ServingState
    user: int | None  # the model's user index, when trained on
    live: list[Event]  # stored live events, then the request's own (items the catalog knows)
    seen: np.ndarray  # labels, sorted unique
    rows: dict[str, Any] = field(default_factory=dict, repr=False)  # what a source computed once for this request

    @property
    def trained(self) -> list[Event]:
        """The events the model was trained on (read only by explanations and `content`: built on demand)."""
        return self.state.trained_history(self.user) if self.user is not None else []

    @property
    def history(self) -> list[Event]:
        return sorted([*self.trained, *self.live], key=lambda event: event.timestamp)

    def seen_by(self, event_types: Sequence[str] | None) -> np.ndarray:
        """Labels of items the user had with one of `event_types` (None: any), sorted unique."""
        if event_types is None:
            return self.seen
        wanted = {kind.lower() for kind in event_types}
        catalog = self.state.catalog
        labels = [catalog.label(event.item_id) for event in [*self.trained, *self.live]
                  if event.event_type.lower() in wanted]
        return np.unique(np.array([label for label in labels if label is not None], dtype=np.int64))

    @functools.cached_property
    def vector(self) -> np.ndarray | None:
        """(d + 1,) two-tower query, or None without any trained or live event on a model item. A trained user
        without live events has a fixed vector for this bundle, cached by the state."""
        model = self.state.model
        events = [event for event in self.live if event.item_id in model._item_index]
        if self.user is None and not events:
            return None
        if self.user is not None and not events:
            return self.state.trained_user_vector(self.user)
        user_id = None if self.user is None else str(model.user_ids[self.user])  # type: ignore[index]
        return model.user_vector(model_events(events), user_id)

    @functools.cached_property
    def timeline(self) -> Timeline:
        """The trained and live events on live catalog items as arrays, oldest first (ties: trained first).
        The trained part is read from the model's history arrays, not from one Event per event."""
        catalog = self.state.catalog
        labels, ns, types = [np.zeros(0, np.int64)], [np.zeros(0, np.int64)], []
        if self.user is not None:
            trained = trained_arrays(self.state, self.user)
            labels.append(trained.labels)
            ns.append(trained.ns)
            types += trained.types
        live = [(label, event) for event in self.live if (label := catalog.label(event.item_id)) is not None]
        labels.append(np.array([label for label, _ in live], dtype=np.int64))
        ns.append(nanoseconds([event.timestamp for _, event in live]))
        types += [event.event_type for _, event in live]
        all_labels, all_ns = np.concatenate(labels), np.concatenate(ns)
        order = np.argsort(all_ns, kind="stable")
        deleted = catalog.hidden(False)
        order = order[~np.isin(all_labels[order], deleted)] if len(deleted) else order
        return Timeline(all_labels[order], all_ns[order], [types[i] for i in order.tolist()])


def trained_arrays(state: ServingState, user: int) -> Timeline:
    """A trained user's events as the model stores them (catalog labels, time order); the timestamps are the
    microsecond-rounded ones `ServingState.trained_history` gives, so both views of a history agree."""
    model = state.model
    assert model.histories is not None
    history = model.histories.user(user)
    seconds = np.asarray(history.days, np.float64) * SECONDS_PER_DAY
    whole = np.trunc(seconds)
    micros = whole.astype(np.int64) * 1_000_000 + np.round((seconds - whole) * 1e6).astype(np.int64)
    names = model.type_names()
    types = [names[code - 1] if 1 <= code <= len(names) else "other" for code in history.event_types.tolist()]
    return Timeline(np.asarray(history.items, np.int64), micros * 1000, types)


def nanoseconds(moments: Sequence[datetime]) -> np.ndarray:
    """Aware (naive = UTC) datetimes as int64 nanoseconds since the epoch; years 1..9999 fit (clamped)."""
    micros = np.array([(as_utc(moment) - EPOCH) // MICROSECOND for moment in moments], dtype=object)
    return np.clip(micros, -NS_LIMIT // 1000, NS_LIMIT // 1000).astype(np.int64) * 1000
