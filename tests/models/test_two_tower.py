"""TwoTower: smoke training for every user tower, persistence, cold items from content, unseen users."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch
from tests.models.conftest import build_dataset

from foryou.config import RunConfig
from foryou.data import schema as S
from foryou.data.dataset import Dataset, Manifest
from foryou.errors import UnknownIdError
from foryou.evaluation.protocol import validation_ndcg
from foryou.models.base import Recommender
from foryou.models.two_tower import TwoTower

# Two genres; every user watches items of one genre only; "a_new" / "b_new" have content but no events.
GROUP_A = [f"a{i}" for i in range(6)]
GROUP_B = [f"b{i}" for i in range(6)]
ITEMS = [*GROUP_A, *GROUP_B, "a_new", "b_new"]
NO_TEXT = {"use_text": False}


def tiny_dataset(n_users: int = 16, length: int = 8, seed: int = 0) -> Dataset:
    """Users alternate genres; each has `length` events on its genre's items, in a random order."""
    rng = np.random.default_rng(seed)
    rows = []
    for user in range(n_users):
        group = GROUP_A if user % 2 == 0 else GROUP_B
        for position, item in enumerate(rng.choice(group, size=length)):
            split = "valid" if position == length - 1 else "train"
            rows.append((user, ITEMS.index(item), position, split))
    frame = pd.DataFrame(rows, columns=[S.USER_IDX, S.ITEM_IDX, "day", S.SPLIT])
    frame[S.TIMESTAMP] = pd.Timestamp("2024-01-01", tz="UTC") + pd.to_timedelta(frame.pop("day"), unit="D")
    frame[S.EVENT_TYPE] = np.where(frame.index % 3 == 0, "purchase", "view")
    frame[S.VALUE] = np.nan
    frame[S.WEIGHT] = np.where(frame[S.EVENT_TYPE] == "purchase", 10.0, 1.0)
    frame[S.COLD_USER] = frame[S.COLD_ITEM] = False
    frame[S.SOURCE_ORDER] = np.arange(len(frame))
    items = pd.DataFrame({S.ITEM_IDX: range(len(ITEMS)), S.ITEM_ID: ITEMS,
                          "genres": [[name[0]] for name in ITEMS],
                          "year": [2000.0 + (index % 5) for index in range(len(ITEMS))]})
    users = pd.DataFrame({S.USER_IDX: range(n_users), S.USER_ID: [f"u{i}" for i in range(n_users)],
                          "segment": ["even" if user % 2 == 0 else "odd" for user in range(n_users)],
                          "age": [20.0 + user for user in range(n_users)]})
    manifest = Manifest("tiny", {}, {"text": [], "categorical": ["genres"], "numeric": ["year"], "vector": []},
                        {"categorical": ["segment"], "numeric": ["age"]}, {}, {})
    return Dataset(frame, items, users, manifest)


def _model(user_tower: str = "transformer", **overrides: Any) -> TwoTower:
    model = {"embedding_dim": 16, "hidden_dim": 16, "max_history": 8, "user_tower": user_tower, "num_layers": 1,
             "dropout": 0.0, **NO_TEXT, **overrides.pop("model", {})}
    train = {"epochs": 8, "batch_size": 4, "learning_rate": 0.01, "device": "cpu", **overrides.pop("train", {})}
    return TwoTower(model=model, loss=overrides.pop("loss", {}), train=train, tracking=overrides.pop("tracking", None))


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    torch.set_num_threads(1)


def test_from_config_takes_every_section_and_overrides_only_epochs_and_mlflow() -> None:
    config = RunConfig.model_validate({"data": {"source": "movielens", "path": "x"},
                                       "model": {"embedding_dim": 24}, "loss": {"temperature": 0.2},
                                       "train": {"epochs": 7, "batch_size": 8}, "tracking": {"mlflow": True},
                                       "features": {"max_categories": 9}})
    as_configured = TwoTower.from_config(config)
    refit = TwoTower.from_config(config, epochs=3, mlflow=False)
    for model in (as_configured, refit):
        assert (model.model_config, model.loss_config, model.features_config) == \
            (config.model, config.loss, config.features)
    assert (as_configured.train_config, as_configured.tracking) == (config.train, config.tracking)
    assert refit.train_config == config.train.model_copy(update={"epochs": 3})
    assert refit.tracking == config.tracking.model_copy(update={"mlflow": False})


@pytest.mark.parametrize("user_tower", ["mean", "attention", "gru", "lstm", "transformer"])
def test_smoke_train_every_user_tower(user_tower: str) -> None:
    dataset = tiny_dataset()
    model = _model(user_tower).fit(dataset.restricted_to("train"))
    assert len(model.history) == 8 and model.history[-1].loss < model.history[0].loss
    scores = model.score_users(np.arange(dataset.n_users))
    assert scores.shape == (dataset.n_users, len(ITEMS)) and np.isfinite(scores).all()
    vectors = model.item_embeddings()
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, rtol=1e-5)


def test_users_prefer_their_genre() -> None:
    # user 0 watches genre a: its best-scored known item must be an a-item, user 1's a b-item
    model = _model("mean", train={"epochs": 15}).fit(tiny_dataset().restricted_to("train"))
    best = np.asarray(ITEMS)[model.score_users(np.array([0, 1]))[:, :12].argmax(1)]
    assert best[0].startswith("a") and best[1].startswith("b")


@pytest.mark.parametrize("loss", [{"kind": "sampled_softmax", "num_negatives": 4}, {"temperature": 0.2}])
def test_loss_variants_train(loss: dict[str, Any]) -> None:
    model = _model(loss=loss).fit(tiny_dataset().restricted_to("train"))
    assert model.history[-1].loss < model.history[0].loss


@pytest.mark.parametrize("extra", [{"dat": {"enabled": True}}, {"use_user_features": True}, {"item_bias": True}])
def test_dat_and_user_features_train_and_round_trip(tmp_path: Path, extra: dict[str, Any]) -> None:
    dataset = tiny_dataset()
    model = _model(model=extra).fit(dataset.restricted_to("train"))
    assert (model.module.user_features is not None) == ("use_user_features" in extra)  # type: ignore[union-attr]
    assert model.history[-1].loss < model.history[0].loss
    if "item_bias" in extra:  # learned for trained items, and only for them
        bias = model.module.bias().detach().numpy()  # type: ignore[union-attr]
        assert np.any(bias[model.known] != 0) and np.all(bias[~model.known] == 0)
    model.save(tmp_path)
    loaded = Recommender.load(tmp_path)
    np.testing.assert_allclose(loaded.score_users(np.arange(4)), model.score_users(np.arange(4)), rtol=1e-5)


def test_save_load_gives_same_scores(tmp_path: Path) -> None:
    dataset = tiny_dataset()
    model = _model(train={"epochs": 2}).fit(dataset.restricted_to("train"))
    model.save(tmp_path)
    loaded = Recommender.load(tmp_path)
    assert isinstance(loaded, TwoTower) and [r.loss for r in loaded.history] == [r.loss for r in model.history]
    np.testing.assert_allclose(loaded.score_users(np.arange(6)), model.score_users(np.arange(6)), rtol=1e-5)
    np.testing.assert_allclose(loaded.item_embeddings(), model.item_embeddings(), rtol=1e-5)
    assert loaded.recommend(["u0"], k=3)[0][0].tolist() == model.recommend(["u0"], k=3)[0][0].tolist()


def test_new_item_is_scored_from_content_near_its_twins() -> None:
    # "a_new" has no events: it gets the unknown id, so its vector comes from its genre (and year) alone; trained
    # with heavy id dropout, genre-a content must sit closer to the a-items than to the b-items.
    model = _model(model={"id_dropout": 0.5}, train={"epochs": 15}).fit(tiny_dataset().restricted_to("train"))
    vectors = model.item_embeddings()
    new_a = vectors[ITEMS.index("a_new")]
    similarity_a = vectors[:6] @ new_a
    similarity_b = vectors[6:12] @ new_a
    assert similarity_a.mean() > similarity_b.mean()
    neighbours = model.similar_items(["a_new"], k=3)[0][0]
    assert sum(item.startswith("a") for item in neighbours) >= 2


def test_score_histories_for_an_unseen_user() -> None:
    model = _model("mean", train={"epochs": 15}).fit(tiny_dataset().restricted_to("train"))
    day = pd.Timestamp("2024-02-01", tz="UTC")
    histories = [[("a1", "view", day), ("a2", "purchase", day + pd.Timedelta(days=1))],
                 [("b3", "view", day), ("b0", "click", day)],  # "click" is an event type never seen in training
                 []]
    scores = model.score_histories(histories)
    assert scores.shape == (3, len(ITEMS)) and np.isfinite(scores).all()
    assert ITEMS[int(scores[0, :12].argmax())].startswith("a") and ITEMS[int(scores[1, :12].argmax())].startswith("b")
    # the same events given out of order are sorted by time first
    reordered = model.score_histories([histories[0][::-1]])
    np.testing.assert_allclose(reordered[0], scores[0], rtol=1e-5, atol=1e-6)
    with pytest.raises(UnknownIdError, match="unknown item id.*'zz'"):
        model.score_histories([[("zz", "view", day)]])


def test_early_stopping_on_validation_keeps_the_best_epoch() -> None:
    # scripted scores 0.1, 0.5, 0.2, 0.3, ...: best at epoch 2; patience 2 stops after epoch 4 (4 - 2 >= 2)
    script = [0.1, 0.5, 0.2, 0.3, 0.1, 0.1, 0.1, 0.1]
    snapshots: list[dict[str, torch.Tensor]] = []

    def validate(model: TwoTower) -> float:
        assert model.module is not None
        snapshots.append({name: value.detach().clone() for name, value in model.module.state_dict().items()})
        return script[len(snapshots) - 1]

    model = _model(train={"epochs": 8, "patience": 2}).fit(tiny_dataset().restricted_to("train"), validate=validate)
    assert [record.valid_ndcg for record in model.history] == pytest.approx(script[:4])
    assert [record.epoch for record in model.history] == [1, 2, 3, 4] and len(snapshots) == 4
    assert model.module is not None
    final = model.module.state_dict()
    assert final.keys() == snapshots[1].keys()
    for name, value in final.items():
        torch.testing.assert_close(value, snapshots[1][name], rtol=0, atol=0, msg=f"{name} is not epoch 2's")
    assert any(not torch.equal(value, snapshots[3][name]) for name, value in final.items())


def test_validation_ndcg_scores_every_epoch() -> None:
    dataset = tiny_dataset()
    model = _model(train={"epochs": 3, "patience": 2}).fit(dataset.restricted_to("train"),
                                                           validate=validation_ndcg(dataset))
    scores = [record.valid_ndcg for record in model.history]
    assert len(scores) == 3 and all(score is not None and 0.0 <= score <= 1.0 for score in scores)


def test_mlflow_tracking_logs_every_epoch(tmp_path: Path) -> None:
    import mlflow

    from foryou.config import TrackingConfig

    tracking = TrackingConfig(tracking_uri=str(tmp_path / "mlruns"), experiment="two-tower-test")
    model = _model(train={"epochs": 2}, tracking=tracking).fit(tiny_dataset().restricted_to("train"))
    assert model.tracker is not None and model.tracker.run_id is not None
    model.tracker.close()
    run = mlflow.get_run(model.tracker.run_id)
    assert run.data.params["model.user_tower"] == "transformer" and "train_loss" in run.data.metrics


def test_a_sampled_softmax_step_encodes_only_its_items_and_gives_the_catalog_loss() -> None:
    """Sampled softmax encodes the step's distinct items (histories, targets, negatives), not the whole catalog;
    without dropout both give the same vectors and the same loss."""
    from foryou.models.sequences import training_batches
    from foryou.models.towers import EncodedItems
    from foryou.tasks.retrieval import RetrievalTask

    loss = {"kind": "sampled_softmax", "num_negatives": 5}
    model = _model(model={"id_dropout": 0.0, "dat": {"enabled": True}}, loss=loss, train={"epochs": 1})
    model.fit(tiny_dataset().restricted_to("train"))
    module = model.module
    assert module is not None and model.histories is not None
    module.eval()
    picked = torch.tensor([3, 0, 3, 12, 7])
    with torch.no_grad():
        encoded = EncodedItems(module, picked)
        assert len(encoded.vectors) == 4  # 3 appears twice: encoded once
        torch.testing.assert_close(encoded[torch.tensor([12, 3, 0])], module.catalog()[torch.tensor([12, 3, 0])])

    plain = _model(model={"id_dropout": 0.0}, loss=loss, train={"epochs": 1})
    plain.fit(tiny_dataset().restricted_to("train"))
    assert plain.module is not None and plain.histories is not None
    plain.module.eval()
    batch = next(training_batches(plain.histories, 8, 6, np.random.default_rng(0)))
    counts = np.bincount(plain.histories.items, minlength=len(ITEMS))
    with torch.no_grad():
        step_loss = plain._batch_loss(batch, RetrievalTask(plain.loss_config, counts, seed=3), torch.device("cpu"))
        catalog = plain.module.catalog()
        valid = batch.targets >= 0
        queries = plain.module.users(catalog, batch.history, batch.users)[valid]
        weights = batch.target_weights[valid] if plain.loss_config.weight_by_event else None
        reference = RetrievalTask(plain.loss_config, counts, seed=3).sampled_softmax(
            queries, batch.targets[valid], catalog.__getitem__, weights)
    torch.testing.assert_close(step_loss, reference)


def test_sampled_softmax_makes_the_id_table_sparse_and_full_softmax_keeps_it_dense() -> None:
    """A sampled-softmax step reads a few id rows: its table gets row gradients (SparseAdam updates only those);
    full softmax reads every row each step, so its table stays dense. Both train and rank."""
    for kind, sparse in (("sampled_softmax", True), ("full_softmax", False)):
        model = _model(loss={"kind": kind, "num_negatives": 5}, train={"epochs": 2})
        model.fit(tiny_dataset().restricted_to("train"))
        assert model.module is not None and model.module.item_tower.id_embedding is not None
        assert model.module.item_tower.id_embedding.sparse is sparse
        scores = model.score_users(np.array([0, 1]))
        assert scores.shape == (2, len(ITEMS)) and np.isfinite(scores).all()


def test_two_fits_of_one_seed_on_two_threads_are_bit_identical() -> None:
    # A catalog big enough for torch to split its backward passes across threads: without deterministic kernels
    # the two fits differed in the last bits, and everything trained on their scores with them.
    torch.set_num_threads(2)
    rng = np.random.default_rng(0)
    events = [(int(user), int(item), float(day)) for day, (user, item) in
              enumerate(zip(rng.integers(0, 400, 12_000), rng.zipf(1.3, 12_000) % 3_000))]
    data = build_dataset(events, 400, 3_000, ["x"] * 3_000)
    vectors = [TwoTower(model={"embedding_dim": 64, "hidden_dim": 64, "max_history": 20, "num_layers": 1,
                               "dropout": 0.0, **NO_TEXT},
                        train={"epochs": 1, "batch_size": 64, "device": "cpu"}).fit(data).retrieval_vectors()
               for _ in range(2)]
    assert np.array_equal(vectors[0], vectors[1])


def test_a_warm_start_begins_from_the_earlier_fits_weights_and_keeps_its_types_and_its_own_known_items(
        monkeypatch: pytest.MonkeyPatch) -> None:
    # The earlier fit never saw item a0 nor a purchase; the later one sees both (as a fit on more events does).
    train = tiny_dataset().restricted_to("train")
    events = train.interactions
    partial = events[(events[S.ITEM_IDX] != ITEMS.index("a0")) & (events[S.EVENT_TYPE] == "view")]
    earlier = _model(train={"epochs": 2}).fit(Dataset(partial.reset_index(drop=True), train.items, train.users,
                                                      train.manifest))
    starts: list[dict[str, torch.Tensor]] = []
    original = TwoTower._train

    def recording(self: TwoTower, item_counts: np.ndarray) -> None:
        assert self.module is not None
        starts.append({name: value.detach().clone() for name, value in self.module.state_dict().items()})
        original(self, item_counts)

    monkeypatch.setattr(TwoTower, "_train", recording)
    later = _model(train={"epochs": 1}).fit(train, warm_start=earlier)
    _model(train={"epochs": 1}).fit(train)
    assert earlier.module is not None and later.module is not None
    before = earlier.module.state_dict()
    assert starts[0].keys() == before.keys()
    for name, value in before.items():
        torch.testing.assert_close(starts[0][name], value, rtol=0, atol=0, msg=f"{name} did not start from earlier")
    assert any(not torch.equal(starts[1][name], value) for name, value in before.items())  # fresh: elsewhere
    assert any(not torch.equal(later.module.state_dict()[name], value) for name, value in before.items())  # trained
    assert later.type_index == earlier.type_index == {"view": 1}  # a purchase is read as the unknown type
    assert bool(later.module.known[ITEMS.index("a0")]) and not bool(earlier.module.known[ITEMS.index("a0")])


def test_a_warm_start_from_another_catalog_is_refused() -> None:
    other = build_dataset([(0, 0, 0.0), (0, 1, 1.0), (1, 1, 0.0), (1, 2, 1.0)], 2, 3, ["x"] * 3)
    earlier = _model(train={"epochs": 1}).fit(other)
    with pytest.raises(ValueError, match="another catalog"):
        _model(train={"epochs": 1}).fit(tiny_dataset().restricted_to("train"), warm_start=earlier)
