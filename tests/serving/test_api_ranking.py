"""The ranking stage through the HTTP API over the generated shop: every reranked and hybrid strategy answers
from the merged candidates, honours the rules, and explains each item with its own contributions, which name
items of the user's history and add up to the item's score."""

from __future__ import annotations

import gc
import json
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient
from tests.serving.api_client import CATEGORY, STAGE, TITLE, history_items, ids, recommend, serving

from foryou.data.dataset import Dataset
from foryou.evaluation.served_choice import TIERS
from foryou.rerank.protocol import ranking_frame
from foryou.rerank.stage import RankingStage, SourceModels
from foryou.serving.catalog import Filters
from foryou.serving.context import nanoseconds
from foryou.serving.recommender import Query, Recommender
from foryou.serving.reranking import Explanations
from foryou.serving.state import Event, ServingState
from foryou.serving.store import StoredItem

EXPLAINED = ["reranked_lgbm", "hybrid", "hybrid_rrf"]  # additive scores: contributions sum to the score
JEWELLERY_VIEWS = [{"item_id": f"jew{i}", "timestamp": f"2024-01-0{i}T12:00:00Z"} for i in (1, 2, 3, 4)]


@pytest.fixture(scope="module")
def client(shop_bundle: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    with serving(shop_bundle, tmp_path_factory.mktemp("ranking") / "store.db") as reader:
        yield reader


def test_the_manifest_records_each_stage_strategys_validation_score_and_the_served_choice(shop_bundle: Path) -> None:
    meta = json.loads((shop_bundle / "bundle.json").read_text())
    scores = meta["validation_ndcg"]
    assert set(STAGE) <= set(scores) and all(0.0 <= scores[name] <= 1.0 for name in STAGE)
    choice = meta["served_choice"]
    assert choice["best_on_validation"] == max(scores, key=scores.get) and meta["default_strategy"] == choice["chosen"]
    # the best is served unless a simpler strategy is within noise of it; either way the paired test is recorded
    assert choice["chosen"] == choice["best_on_validation"] or (
        TIERS[choice["chosen"]] < TIERS[choice["best_on_validation"]] and choice["beyond_noise"] is False)
    low, high = choice["interval"]
    assert choice["users"] > 0 and low <= choice["difference"] <= high and 0.0 < choice["p_value"] <= 1.0
    assert set(STAGE) <= set(meta["test_metrics"])  # the report's test rows, side by side with the models


@pytest.mark.parametrize("strategy", EXPLAINED)
def test_explanations_come_from_the_items_own_contributions(client: TestClient, strategy: str) -> None:
    seen = history_items(client, "u0")
    answer = recommend(client, user_id="u0", k=8, strategy=strategy, explain=True)
    assert len(answer["items"]) == 8
    for item in answer["items"]:
        total = sum(part["value"] for part in item["contributions"])
        assert total == pytest.approx(item["score"], rel=1e-4, abs=1e-5)
        values = [part["value"] for part in item["contributions"] if part["feature"] != "bias"]
        assert values == sorted(values, reverse=True)
        assert 1 <= len(item["reasons"]) <= 3
        for reason in item["reasons"]:
            assert reason["feature"] in {part["feature"] for part in item["contributions"]}
            if reason["item_id"] is not None:  # a reason that names an item names one the user had
                assert reason["item_id"] in seen and TITLE[reason["item_id"]] in reason["text"]


def test_the_lgbm_ranker_names_the_users_own_items(client: TestClient) -> None:
    seen = history_items(client, "u0")
    answer = recommend(client, user_id="u0", k=8, strategy="reranked_lgbm", explain=True)
    named = [reason["item_id"] for item in answer["items"] for reason in item["reasons"] if reason["item_id"]]
    assert named and set(named) <= seen


def test_the_mlp_ranker_is_explained_by_the_users_history(client: TestClient) -> None:
    seen = history_items(client, "u0")
    answer = recommend(client, user_id="u0", k=5, strategy="reranked_mlp", explain=True)
    for item in answer["items"]:
        assert item["contributions"] is None
        assert any(reason["item_id"] in seen for reason in item["reasons"])


@pytest.mark.parametrize("strategy", STAGE)
def test_a_raw_history_is_ranked_like_it(client: TestClient, strategy: str) -> None:
    answer = recommend(client, interactions=JEWELLERY_VIEWS, k=5, strategy=strategy)
    assert answer["fallback"] is None and len(answer["items"]) == 5
    assert not set(ids(answer)) & {view["item_id"] for view in JEWELLERY_VIEWS}
    assert sum(CATEGORY[item] == "Jewellery" for item in ids(answer)) >= 3


@pytest.mark.parametrize("strategy", STAGE)
def test_a_user_no_source_can_place_falls_back_to_popular(client: TestClient, strategy: str) -> None:
    answer = recommend(client, user_id="stranger", k=5, strategy=strategy)
    assert answer["fallback"] == "popular" and len(answer["items"]) == 5


@pytest.mark.parametrize("strategy", STAGE)
def test_category_cap_and_diversity_still_fill_k(client: TestClient, strategy: str) -> None:
    answer = recommend(client, user_id="u0", k=9, strategy=strategy,
                       filters={"max_per_category": 3, "diversity": 0.5})
    categories = [CATEGORY[item] for item in ids(answer)]
    assert len(categories) == 9 and max(categories.count(c) for c in set(categories)) == 3


def test_k_larger_than_the_candidate_pool_is_still_honoured(client: TestClient) -> None:
    seen = history_items(client, "u0")
    answer = recommend(client, user_id="u0", k=60 - len(seen), strategy="reranked_lgbm")
    assert len(answer["items"]) == 60 - len(seen) and not set(ids(answer)) & seen


def test_the_stage_round_trips_through_its_folder(shop_bundle: Path, tmp_path: Path) -> None:
    stage = RankingStage.load(shop_bundle / "ranking")
    for complete in (True, False):  # either choice of the rankers' inputs is kept
        stage.complete_scores = complete
        stage.save(tmp_path / str(complete))
        assert RankingStage.load(tmp_path / str(complete)).complete_scores is complete
    stage.save(tmp_path / "ranking")
    again = RankingStage.load(tmp_path / "ranking")
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"user_idx": np.repeat([0, 1], 20), "item_idx": np.tile(np.arange(20), 2),
                          **{name: rng.random(40) for name in stage.feature_names}})
    vectors = (rng.random((40, stage.mlp.vector_dim)), rng.random((40, stage.mlp.vector_dim))) if stage.mlp else None
    for strategy in stage.strategies:
        np.testing.assert_array_equal(again.scores(strategy, frame, vectors), stage.scores(strategy, frame, vectors))
    assert again.validation_ndcg == stage.validation_ndcg and again.source_names == stage.source_names


@pytest.mark.parametrize("complete_scores", [True, False])
def test_the_service_builds_a_users_candidates_and_features_as_the_offline_protocol_does(
        shop_bundle: Path, complete_scores: bool) -> None:
    # Training / serving skew guard: a trained user without live events gets, per request, exactly the merged
    # candidates and features that the offline frame of the same sources (the bundle's) gives at the same cut,
    # with every source's score completed or only where it proposed the row, as the stage reads them.
    state = ServingState.load(shop_bundle)
    recommender = Recommender(state)
    ranker = recommender.stage
    assert ranker is not None
    stage, bundle = ranker.stage, state.bundle
    stage.complete_scores = complete_scores
    data = Dataset.load(shop_bundle.parent / "prepared").restricted_to("train", "valid")
    sources = SourceModels.fit(data, bundle.model, {"ease": bundle.served["ease"], "item_knn": bundle.served["item_knn"],
                                                   "als": bundle.served["collab"]}, bundle.fallback,
                               stage.settings.last_n)
    user = state.user_index("u0")
    assert user is not None
    offline = stage.as_read(ranking_frame(sources.sources(), data, np.array([user]), None,
                                          stage.settings.per_source_k,
                                          history_end=pd.Timestamp(stage.catalog.reference_ns, tz="UTC"),
                                          total=stage.settings.candidates))
    context = recommender.context("u0", [], [])
    rules = recommender._rules(Filters(), context.seen)
    assert list(ranker._sources(context, stage.settings.per_source_k, rules)) == stage.source_names
    online = ranker.candidates(context, stage.settings.per_source_k, rules)  # what rank() scores
    assert online is not None
    assert online["item_idx"].tolist() == offline["item_idx"].tolist()
    for name in stage.feature_names:
        np.testing.assert_allclose(online[name], offline[name].to_numpy(np.float64), rtol=1e-5, atol=1e-6,
                                   err_msg=name)
    filled = sum(int(np.isfinite(online[f"{name}_score"][online[f"{name}_rank"] > stage.settings.per_source_k]).sum())
                 for name in stage.source_names)
    assert (filled > 0) == complete_scores  # scores past a source's own list: there only when completed


def test_the_timeline_is_the_event_history_as_arrays(shop_bundle: Path) -> None:
    # The stage reads a trained history from the model's arrays, not from Events: both views must agree, live
    # events included (merged in time order, a deleted item's events left out).
    state = ServingState.load(shop_bundle)
    recommender = Recommender(state)
    first_trained = state.trained_history(state.user_index("u0"))[0]
    live = [Event("jew1", "click", datetime(2030, 1, 1, tzinfo=timezone.utc)),
            Event(first_trained.item_id, "purchase", first_trained.timestamp + timedelta(microseconds=1))]
    for user_id, events in (("u0", []), ("u0", live), ("u1", live[:1]), (None, live)):
        context = recommender.context(user_id, events, [])
        history = [event for event in context.history if state.catalog.label(event.item_id) is not None]
        assert len(history) > 0
        timeline = context.timeline
        assert timeline.labels.tolist() == [state.catalog.label(event.item_id) for event in history]
        assert timeline.ns.tolist() == nanoseconds([event.timestamp for event in history]).tolist()
        assert timeline.types == [event.event_type for event in history]


def test_lgbm_contributions_are_remembered_per_feature_row(shop_bundle: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The memo must give what LightGBM gives, and compute a row's TreeSHAP once: a repeat request reads it back.
    recommender = Recommender(ServingState.load(shop_bundle))
    ranker = recommender.stage
    assert ranker is not None
    lgbm = ranker.stage.lgbm
    rng = np.random.default_rng(0)
    arrays = {name: rng.random(12) for name in lgbm.feature_names}
    rows = np.array([3, 0, 7, 3])
    expected = lgbm.explain({name: values[rows] for name, values in arrays.items()})
    computed: list[int] = []
    table = lgbm.contribution_table
    monkeypatch.setattr(lgbm, "contribution_table", lambda features: computed.append(len(next(iter(
        features.values())))) or table(features))
    first = ranker.memo.contributions({name: values[rows] for name, values in arrays.items()})
    again = ranker.memo.contributions({name: values[rows[::-1]] for name, values in arrays.items()})
    assert first == expected
    assert again == first[::-1] and computed == [4]  # the first call computes its rows, the repeat none


@pytest.mark.parametrize("strategy", ["hybrid", "reranked_lgbm", "reranked_mlp"])
def test_a_trained_users_answer_is_kept_until_their_events_the_rules_or_the_catalog_change(
        shop_bundle: Path, monkeypatch: pytest.MonkeyPatch, strategy: str) -> None:
    # A kept answer must be the one computed anew, and anything that can change the answer must miss it.
    state = ServingState.load(shop_bundle)
    recommender = Recommender(state)
    ranker = recommender.stage
    assert ranker is not None
    computed: list[str] = []
    candidates = ranker.candidates
    monkeypatch.setattr(ranker, "candidates", lambda *args, **options: computed.append("run") or candidates(*args, **options))
    live = [Event("jew1", "click", datetime(2030, 1, 1, tzinfo=timezone.utc))]

    def ask(seen_types: list[str] | None = None, events: list[Event] | None = None,
            on: Recommender = recommender) -> list[dict[str, object]]:
        query = Query("u0", events or [], 5, strategy, Filters(), explain=True, seen_event_types=seen_types)
        return on.recommend(query, on.context("u0", events or [], [])).items

    first = ask()
    assert ask() == first and len(computed) == 1
    for _ in range(6):  # kept reasons are plain tuples, which the collector stops walking (one level per pass)
        gc.collect()
    kept = ranker.answers.get(next(iter(ranker.answers._entries)))
    assert kept is not None and isinstance(kept.explain, Explanations) and kept.explain.done
    assert not any(gc.is_tracked(reasons) for reasons in kept.explain.done.values())
    assert ask(on=Recommender(ServingState.load(shop_bundle))) == first  # kept == computed anew, reasons included
    ask(["purchase"])
    assert len(computed) == 2  # other rules (fewer seen items left out): computed
    ask(events=live)
    ask(events=live)
    assert len(computed) == 4  # live events: never kept
    moved = first[0]
    state.apply_items([StoredItem(str(moved["item_id"]), {"title": "renamed"}, available=False)], sequence=1)
    after = ask()
    assert len(computed) == 5 and moved["item_id"] not in [item["item_id"] for item in after]
