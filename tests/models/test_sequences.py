"""Training windows over users' histories: which events are targets, hand-checked."""

import numpy as np

from foryou.models.sequences import Histories, training_batches, training_windows


def _histories(lengths: list[int]) -> Histories:
    indptr = np.concatenate([[0], np.cumsum(lengths)])
    total = int(indptr[-1])
    return Histories(indptr, np.arange(total, dtype=np.int64), np.ones(total, dtype=np.int64),
                     np.ones(total, dtype=np.float32), np.arange(total, dtype=np.float64))


def test_last_window_only_takes_each_users_latest_events() -> None:
    users, starts, ends = training_windows(_histories([10, 1, 3]), max_history=4, whole_history=False)
    assert users.tolist() == [0, 2]  # the one-event user has nothing to predict
    assert starts.tolist() == [5, 11] and ends.tolist() == [10, 14]


def test_whole_history_windows_step_back_sharing_one_event() -> None:
    # user 0: events 0..9, windows of at most 5 events stepping back 4: [5, 10), [1, 6), [0, 2)
    users, starts, ends = training_windows(_histories([10, 1, 3]), max_history=4, whole_history=True)
    assert users.tolist() == [0, 0, 0, 2]
    assert starts.tolist() == [5, 1, 0, 11] and ends.tolist() == [10, 6, 2, 14]


def test_whole_history_makes_every_event_but_the_first_a_target_once() -> None:
    lengths = [1, 2, 7, 8, 9, 23]
    histories = _histories(lengths)
    for max_history in (1, 3, 8, 50):
        batches = list(training_batches(histories, max_history, 2, np.random.default_rng(0), whole_history=True))
        targets = np.concatenate([batch.targets[batch.targets >= 0].numpy() for batch in batches])
        firsts = histories.indptr[:-1]
        expected = np.setdiff1d(np.arange(histories.indptr[-1]), firsts)
        assert sorted(targets.tolist()) == expected.tolist()
        assert all(batch.history.items.shape[1] <= max_history for batch in batches)


def test_batch_targets_are_the_next_event_of_the_same_user() -> None:
    histories = _histories([6, 4])
    for batch in training_batches(histories, 3, 8, np.random.default_rng(1), whole_history=True):
        inputs, targets, mask = batch.history.items.numpy(), batch.targets.numpy(), batch.history.mask.numpy()
        assert (targets[mask] == inputs[mask] + 1).all()  # item ids equal event positions here
        owners = np.searchsorted(histories.indptr, inputs[:, 0], side="right") - 1
        assert (owners == batch.users.numpy()).all()
