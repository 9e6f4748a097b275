"""The pipeline's two-tower fits: from scratch only on train minus the labels (once per user tower tried), and the
one kept is the ranking stage's source for the labels the rankers learn from, fitted without them
(two_tower_run.py)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from tests.serving.shop import write_shop

from foryou import workflow
from foryou.config import load_config
from foryou.data import schema as S
from foryou.data.dataset import Dataset
from foryou.models.base import Recommender
from foryou.models.two_tower import TwoTower
from foryou.rerank.protocol import holdout_last_train_event
from foryou.rerank.stage import SourceModels
from foryou.tuning.shape import USER_TOWERS


def _events(data: Dataset) -> set[tuple[int, int, pd.Timestamp]]:
    return set(data.interactions[[S.USER_IDX, S.ITEM_IDX, S.TIMESTAMP]].itertuples(index=False, name=None))


def test_one_fit_from_scratch_is_the_stage_source_of_the_labels_it_never_saw(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fits: list[tuple[TwoTower, TwoTower | None]] = []
    windows: list[tuple[Dataset, TwoTower]] = []
    fit, sources = TwoTower.fit, SourceModels.fit.__func__  # type: ignore[attr-defined]

    def spy_fit(self: TwoTower, data: Dataset, validate: Callable[[TwoTower], float] | None = None,
                warm_start: TwoTower | None = None) -> TwoTower:
        fits.append((self, warm_start))
        return fit(self, data, validate, warm_start)

    def spy_sources(cls: type[SourceModels], data: Dataset, two_tower: TwoTower,
                    baselines: Mapping[str, Recommender], *rest: Any) -> SourceModels:
        windows.append((data, two_tower))
        return sources(cls, data, two_tower, baselines, *rest)  # type: ignore[no-any-return]

    monkeypatch.setattr(TwoTower, "fit", spy_fit)
    monkeypatch.setattr(SourceModels, "fit", classmethod(spy_sources))
    result = workflow.run_pipeline(load_config(write_shop(tmp_path)), progress=False)

    dataset = result.prepared.dataset
    labels = set(holdout_last_train_event(dataset)[1][[S.USER_IDX, S.ITEM_IDX, S.TIMESTAMP]]
                 .itertuples(index=False, name=None))
    without_labels = _events(dataset.restricted_to("train")) - labels
    scratch = [model for model, start in fits if start is None]  # one per user tower tried (none named)
    assert [model.model_config.user_tower for model in scratch] == list(USER_TOWERS) and len(fits) == 4
    chosen = result.evaluation.trained.window
    assert chosen is not None and any(chosen is model for model in scratch)
    assert [tower for data, tower in windows if _events(data) == without_labels] == [chosen]
    assert [start for _, start in fits if start is not None] == [chosen, result.evaluation.trained.tuned]
