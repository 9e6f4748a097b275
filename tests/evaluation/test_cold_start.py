import numpy as np
import pandas as pd
import pytest
from tests.models.conftest import build_dataset

from foryou.data import schema as S
from foryou.evaluation.cold_start import hold_out_items


def _dataset():
    # 4 users x 5 items; each user: two train events, one valid, one test
    splits = ("train", "train", "valid", "test")
    events = [(user, (user + position) % 5, float(position)) for user in range(4) for position in range(4)]
    dataset = build_dataset(events, n_users=4, n_items=5, categories=["a", "a", "b", "b", "b"])
    dataset.interactions[S.SPLIT] = [splits[position] for _ in range(4) for position in range(4)]
    return dataset


def test_held_out_items_lose_train_and_valid_events_but_keep_test_events():
    dataset = _dataset()
    held, cold = hold_out_items(dataset, fraction=0.4, seed=3)
    assert len(cold) == 2  # round(0.4 * 5)
    events = held.interactions
    assert not events[events[S.ITEM_IDX].isin(cold)][S.SPLIT].isin(["train", "valid"]).any()
    original_test = dataset.events("test")
    pd.testing.assert_frame_equal(held.events("test").reset_index(drop=True), original_test.reset_index(drop=True))
    # nothing else removed: every non-cold event survives
    assert len(events) == len(dataset.interactions) - int(
        (dataset.interactions[S.ITEM_IDX].isin(cold) & (dataset.interactions[S.SPLIT] != "test")).sum())
    assert held.n_items == dataset.n_items  # still in the catalog


def test_same_seed_same_items_and_fraction_checked():
    dataset = _dataset()
    assert np.array_equal(hold_out_items(dataset, 0.4, seed=1)[1], hold_out_items(dataset, 0.4, seed=1)[1])
    with pytest.raises(ValueError, match="fraction"):
        hold_out_items(dataset, 1.5)
