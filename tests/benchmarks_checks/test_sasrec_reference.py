"""benchmarks/sasrec_reference.py: the sequences it reads, that it learns a next-item rule, and its early stopping."""

from __future__ import annotations

import numpy as np
import torch
from benchmarks.sasrec_reference import SASRecReference, user_sequences
from tests.models.conftest import build_dataset

N_ITEMS = 12


def cycle_dataset() -> tuple[list[tuple[int, int, float]], int]:
    """User u buys s, s+1, ... (mod 12) from s = u mod 12, 3 to 6 items: the next item is always the last + 1."""
    events = [(user, (user + step) % N_ITEMS, float(step)) for user in range(48) for step in range(3 + user % 4)]
    return events, 48


def test_sequences_follow_time_then_file_order_and_keep_repeats() -> None:
    # user 0: item 3 (day 2), item 1 (day 1), item 2 (day 2), item 1 (day 3) -> 1, 3, 2, 1; user 1 has no event.
    dataset = build_dataset([(0, 3, 2.0), (0, 1, 1.0), (0, 2, 2.0), (0, 1, 3.0)], 2, 4, ["x"] * 4)
    sequences = user_sequences(dataset)
    assert [s.tolist() for s in sequences] == [[1, 3, 2, 1], []]


def test_it_learns_the_next_item_from_each_users_last_one() -> None:
    torch.set_num_threads(1)
    events, n_users = cycle_dataset()
    dataset = build_dataset(events, n_users, N_ITEMS, ["x"] * N_ITEMS)
    model = SASRecReference(epochs=60, max_len=8, hidden=32, layers=1, learning_rate=5e-3, batch_size=16).fit(dataset)
    top = model.score_users(np.arange(n_users)).argmax(axis=1)
    last = np.array([(user + 2 + user % 4) % N_ITEMS for user in range(n_users)])  # histories of 3 to 6 items
    assert np.mean(top == (last + 1) % N_ITEMS) >= 0.9


def test_early_stopping_keeps_the_best_epochs_weights() -> None:
    torch.set_num_threads(1)
    events, n_users = cycle_dataset()
    dataset = build_dataset(events, n_users, N_ITEMS, ["x"] * N_ITEMS)
    scripted, snapshots = iter([0.1, 0.3, 0.2, 0.25, 0.9]), []

    def validate(model: SASRecReference) -> float:
        snapshots.append(model.score_users(np.arange(4)))
        return next(scripted)

    model = SASRecReference(epochs=5, max_len=8, hidden=16, layers=1, batch_size=16)
    model.validate, model.patience = validate, 2
    model.fit(dataset)
    # best 0.3 at epoch 2, then two epochs without a better score: stopped after epoch 4, epoch 5 never ran
    assert model.history == [0.1, 0.3, 0.2, 0.25] and model.best_epoch == 2
    np.testing.assert_allclose(model.score_users(np.arange(4)), snapshots[1], rtol=1e-5)
    assert not np.allclose(snapshots[1], snapshots[3])
