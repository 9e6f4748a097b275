"""TwoTower serving surface: `retrieval_vectors`, `encode_items` and `user_vector` agree with the catalog and
with `score_users` / `score_histories`, for items with text, categorical, numeric and vector fields, and survive
save -> load unchanged."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch
from tests.models.test_two_tower import _model, tiny_dataset

from foryou.data import schema as S
from foryou.data.dataset import Dataset
from foryou.errors import UnknownIdError
from foryou.features import text as text_module
from foryou.models.base import Recommender
from foryou.models.two_tower import TwoTower

# every part of the item tower's content path, on top of the DAT / item bias / user feature extras
SETTINGS: dict[str, dict[str, Any]] = {
    "plain": {},
    "bias_dat_user_features": {"item_bias": True, "dat": {"enabled": True}, "use_user_features": True},
}
DAY = pd.Timestamp("2024-03-01", tz="UTC")
Fitted = tuple[TwoTower, Dataset]


def letter_counts(texts: list[str], kind: str) -> np.ndarray:
    """Fake text model (no download): a text's vector is its letter counts."""
    out = np.zeros((len(texts), 26), dtype=np.float32)
    for row, text in enumerate(texts):
        for char in text.lower():
            if "a" <= char <= "z":
                out[row, ord(char) - ord("a")] += 1
    return out


def content_dataset() -> Dataset:
    """tiny_dataset plus a text field (title) and a vector field (embedding) on every item."""
    dataset = tiny_dataset()
    genre_a = dataset.items[S.ITEM_ID].str.startswith("a")
    items = dataset.items.assign(
        title=np.where(genre_a, "space opera ", "garden romance ") + dataset.items[S.ITEM_ID],
        embedding=[[1.0, 0.0, 0.1 * index] if is_a else [0.0, 1.0, 0.1 * index]
                   for index, is_a in enumerate(genre_a)])
    fields = {"text": ["title"], "categorical": ["genres"], "numeric": ["year"], "vector": ["embedding"]}
    return Dataset(dataset.interactions, items, dataset.users, replace(dataset.manifest, item_fields=fields))


@pytest.fixture(scope="module")
def fit(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[[str], Fitted]]:
    """name in SETTINGS -> (model fitted on the train split, dataset); each fitted once per module. The fake text
    model stays in place for the whole module, as encode_items embeds texts it has not cached yet."""
    torch.set_num_threads(1)
    cache: dict[str, Fitted] = {}
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(text_module, "load_backend", lambda model, path, device: letter_counts)
        features = {"cache_dir": tmp_path_factory.mktemp("text-cache")}

        def fitted(name: str) -> Fitted:
            if name not in cache:
                dataset = content_dataset()
                model = _model(model={"use_text": True, **SETTINGS[name]}, train={"epochs": 4})
                model = TwoTower(model.model_config, model.loss_config, model.train_config, features)
                cache[name] = (model.fit(dataset.restricted_to("train")), dataset)
            return cache[name]

        yield fitted


@pytest.fixture(scope="module", params=list(SETTINGS))
def fitted(request: pytest.FixtureRequest, fit: Callable[[str], Fitted]) -> Fitted:
    return fit(request.param)


def test_the_content_path_is_used(fitted: Fitted) -> None:
    model, dataset = fitted
    assert model.inputs is not None and model.inputs.text is not None  # 26 letter counts + 3 vector values
    assert model.inputs.text.shape == (dataset.n_items, 29)
    assert model.inputs.categorical and model.inputs.numeric is not None
    assert model.known.sum() == 12 and not model.known[[12, 13]].any()  # a_new, b_new: no training events


def test_catalog_fields_under_their_own_id_give_the_stored_vector(fitted: Fitted) -> None:
    model, dataset = fitted
    stored = model.retrieval_vectors()
    assert stored.shape == (dataset.n_items, model.model_config.embedding_dim + 1)
    trained = np.flatnonzero(model.known)
    np.testing.assert_allclose(model.encode_items(dataset.items.iloc[trained]), stored[trained], atol=1e-5)


def test_catalog_items_without_events_give_the_stored_vector(fitted: Fitted) -> None:
    # a_new / b_new are in the catalog but were never trained on: both sides encode them from content alone
    model, dataset = fitted
    untrained = np.flatnonzero(~model.known)
    np.testing.assert_allclose(model.encode_items(dataset.items.iloc[untrained]),
                               model.retrieval_vectors()[untrained], atol=1e-5)


def test_new_id_with_catalog_fields_is_encoded_from_content_alone(fitted: Fitted) -> None:
    model, dataset = fitted
    rows = dataset.items.iloc[[0, 7]]  # a0, b1: trained items
    first = model.encode_items(rows.assign(**{S.ITEM_ID: ["new-1", "new-2"]}))
    second = model.encode_items(rows.assign(**{S.ITEM_ID: ["new-3", "new-4"]}))
    np.testing.assert_allclose(first, second, atol=1e-6)
    np.testing.assert_allclose(model.encode_items(rows, content_only=True), first, atol=1e-6)
    assert (first[:, -1] == 0).all()
    stored = model.retrieval_vectors()[[0, 7]]
    assert not np.allclose(first[:, :-1], stored[:, :-1], atol=1e-3)  # the trained id embedding is gone
    if model.model_config.item_bias:
        assert (stored[:, -1] != 0).all()


def test_stored_user_vector_reproduces_score_users(fitted: Fitted) -> None:
    model, _ = fitted
    catalog = model.retrieval_vectors()
    for user in ("u0", "u3", "u10"):
        index = int(model.user_indices([user])[0])
        vector = model.user_vector([], user_id=user)
        assert vector.shape == (model.model_config.embedding_dim + 1,) and vector[-1] == 1.0
        np.testing.assert_allclose(vector @ catalog.T, model.score_users(np.array([index]))[0], rtol=1e-5, atol=1e-5)


def test_raw_history_vector_reproduces_score_histories(fitted: Fitted) -> None:
    model, _ = fitted
    events = [("a1", "view", DAY), ("a4", "purchase", DAY + pd.Timedelta(days=1)), ("a_new", "view", DAY)]
    expected = model.score_histories([events])[0]
    np.testing.assert_allclose(model.user_vector(events) @ model.retrieval_vectors().T, expected, rtol=1e-5, atol=1e-5)


def test_a_known_users_history_given_raw_gives_its_stored_vector(fit: Callable[[str], Fitted]) -> None:
    # without user extras (DAT, user features) the user vector depends on the history alone
    model, dataset = fit("plain")
    train = dataset.events("train")
    own = train[train[S.USER_IDX] == 2]
    events = list(zip(dataset.items[S.ITEM_ID].to_numpy()[own[S.ITEM_IDX]], own[S.EVENT_TYPE], own[S.TIMESTAMP]))
    np.testing.assert_allclose(model.user_vector(events), model.user_vector([], user_id="u2"), atol=1e-5)


@pytest.mark.parametrize("user_id", [None, "u0"])
def test_unknown_item_in_a_history_names_the_id(fitted: Fitted, user_id: str | None) -> None:
    model, _ = fitted
    with pytest.raises(UnknownIdError, match="unknown item id.*'zz'"):
        model.user_vector([("a1", "view", DAY), ("zz", "view", DAY)], user_id=user_id)


def test_save_load_keeps_the_serving_surface(fitted: Fitted, tmp_path: Path) -> None:
    model, dataset = fitted
    model.save(tmp_path)
    loaded = Recommender.load(tmp_path)
    assert isinstance(loaded, TwoTower)
    items = pd.concat([dataset.items, dataset.items.iloc[[1]].assign(**{S.ITEM_ID: "new", "title": "moon base"})])
    np.testing.assert_array_equal(loaded.encode_items(items), model.encode_items(items))
    np.testing.assert_array_equal(loaded.retrieval_vectors(), model.retrieval_vectors())
    events = [("b2", "view", DAY), ("b5", "purchase", DAY + pd.Timedelta(hours=1))]
    np.testing.assert_array_equal(loaded.user_vector(events), model.user_vector(events))
    np.testing.assert_array_equal(loaded.user_vector(events, user_id="u1"), model.user_vector(events, user_id="u1"))
