"""The synthetic shapes of benchmarks/synthetic_logs.py: a config a new user would write, that foryou prepares into
the shape the defaults benchmark relies on (short histories, ratings, repeats). Small scales keep it to seconds."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from benchmarks.synthetic_logs import SHAPES, dense_tastes, write_shape

from foryou.config import load_config
from foryou.data import schema as S
from foryou.data.dataset import Dataset
from foryou.data.prepare import prepare_dataset

SCALE = 0.1


def prepared(shape: str, folder: Path) -> Dataset:
    return prepare_dataset(load_config(write_shape(shape, folder, seed=1, scale=SCALE)), progress=False).dataset


def events_per_user(dataset: Dataset) -> np.ndarray:
    return dataset.interactions.groupby(S.USER_IDX).size().to_numpy()


@pytest.mark.parametrize("shape", sorted(SHAPES))
def test_config_holds_only_the_data_mapping(shape: str, tmp_path: Path) -> None:
    raw = yaml.safe_load(write_shape(shape, tmp_path, scale=SCALE).read_text())
    assert set(raw) == {"name", "output_dir", "data"}  # no model / train settings: every default is exercised
    assert raw["data"]["source"] == "generic"
    config = load_config(tmp_path / "config.yaml")
    assert config.data.items is not None and config.data.items.text == ["title"]


def test_same_seed_same_files(tmp_path: Path) -> None:
    write_shape("tiny", tmp_path / "a", seed=3, scale=SCALE)
    write_shape("tiny", tmp_path / "b", seed=3, scale=SCALE)
    for name in ("interactions.csv", "items.csv"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()


def test_tiny_has_short_histories(tmp_path: Path) -> None:
    dataset = prepared("tiny", tmp_path)
    per_user = events_per_user(dataset)
    assert dataset.n_users == 150 and dataset.n_items == 60  # at least 60 items: no cluster runs out
    assert per_user.min() >= 3 and per_user.max() <= 10
    assert not dataset.interactions.duplicated([S.USER_IDX, S.ITEM_IDX]).any()  # purchases without repeats
    assert set(dataset.interactions[S.EVENT_TYPE]) == {S.PURCHASE}


def test_dense_holds_ratings(tmp_path: Path) -> None:
    dataset = prepared("dense", tmp_path)
    values = dataset.interactions[S.VALUE]
    assert dataset.n_users == 60 and dataset.n_items == 170
    assert len(dataset.interactions) > 3_000  # about 85 of the 170 items rated per user at this scale
    assert set(dataset.interactions[S.EVENT_TYPE]) == {S.RATING}
    assert set(values.unique()) <= {1.0, 2.0, 3.0, 4.0, 5.0} and values.nunique() >= 4
    assert len(dataset.items) == dataset.n_items and dataset.items["category"].nunique() > 1


def test_sessions_are_long_with_repeats(tmp_path: Path) -> None:
    dataset = prepared("sessions", tmp_path)
    per_user = events_per_user(dataset)
    assert dataset.n_users == 100
    assert per_user.min() >= 50 and per_user.max() <= 300
    assert dataset.interactions.duplicated([S.USER_IDX, S.ITEM_IDX]).mean() > 0.3  # re-views and re-buys
    assert set(dataset.interactions[S.EVENT_TYPE]) == {S.VIEW, S.PURCHASE}


def test_unknown_shape_is_named(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="tiny"):
        write_shape("huge", tmp_path)


def test_tiny_ratings_are_short_rating_histories(tmp_path: Path) -> None:
    dataset = prepared("tiny_ratings", tmp_path)
    per_user = events_per_user(dataset)
    assert dataset.n_users == 40 and dataset.n_items <= 60  # 400 and 150 scaled by 0.1, at least 60 items
    assert per_user.min() >= 5 and per_user.max() <= 10
    assert not dataset.interactions.duplicated([S.USER_IDX, S.ITEM_IDX]).any()
    assert set(dataset.interactions[S.EVENT_TYPE]) == {S.RATING}
    assert set(dataset.interactions[S.VALUE].unique()) <= {1.0, 2.0, 3.0, 4.0, 5.0}


def test_tiny_repeats_re_buys_about_six_percent_of_the_targets(tmp_path: Path) -> None:
    dataset = prepare_dataset(load_config(write_shape("tiny_repeats", tmp_path, seed=1)), progress=False).dataset
    events = dataset.interactions.sort_values([S.USER_IDX, S.TIMESTAMP], kind="stable")
    assert dataset.n_users == 350 and dataset.n_items == 160
    assert events_per_user(dataset).min() >= 3 and events_per_user(dataset).max() <= 10
    repeats = events.duplicated([S.USER_IDX, S.ITEM_IDX])  # a re-buy of an earlier purchase
    last = events.groupby(S.USER_IDX).tail(1).index
    # a purchase after the first repeats with probability 0.07: about 6% of last events (350 users: +-2.6%)
    assert 0.02 < repeats.loc[last].mean() < 0.11
    assert set(dataset.interactions[S.EVENT_TYPE]) == {S.PURCHASE}


def test_dense_tastes_replay_the_truth_the_log_was_drawn_from(tmp_path: Path) -> None:
    """The ceiling benchmark ranks by `dense_tastes`: each user's chosen items must sit high in its logits and the
    ratings follow its affinity; a replay that drew in another order would give unrelated tables."""
    write_shape("dense", tmp_path, seed=4, scale=SCALE)
    events = pd.read_csv(tmp_path / "interactions.csv")
    tastes = dense_tastes(np.random.default_rng(4), SCALE)
    users = events["user"].str[1:].astype(int).to_numpy()
    items = events["item"].str[1:].astype(int).to_numpy()
    chosen = tastes.logits[users, items]
    ranks = (tastes.logits[users] > chosen[:, None]).sum(axis=1)  # 0 = the user's highest logit
    assert np.median(ranks) < 0.3 * tastes.logits.shape[1]  # at random: half the catalog (170 items at this scale)
    assert np.corrcoef(tastes.affinity[users, items], events["rating"])[0, 1] > 0.5
    other = dense_tastes(np.random.default_rng(5), SCALE)
    assert np.median((other.logits[users] > other.logits[users, items][:, None]).sum(axis=1)) > np.median(ranks) * 1.5
