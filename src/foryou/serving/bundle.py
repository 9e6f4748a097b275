"""The saved bundle: everything `foryou serve` and `foryou recommend` load once and answer from.

Layout (every file but bundle.json is listed in the manifest with its SHA-256, so a damaged file is named):
  bundle.json      format version, foryou version, model version, strategies and the default one (chosen
                   on validation; served_choice: the paired test behind that choice), the served baselines'
                   parameters (EASE: the engine it was fitted with), data hashes, validation and test metrics,
                   config, file checksums
  model/           the two-tower model (Recommender.save, with its fitted item feature encoder)
  index/           the ANN index over the model's retrieval vectors; labels are catalog rows
  content.npy      (n_items, d) unit content-only item vectors, for the `content` strategy (when items have content)
  collab/, ease/, item_knn/
                   ALS, EASE and ItemKNN (those enabled among the baselines), for the strategies of those names
  fallback/        recent popularity, for users the model cannot place and the `popular` strategy
  ranking/         the ranking stage (rerank.stage: rankers, blend weights, frozen item features),
                   cooccurrence.npz, the binary user-item matrix of train + valid its co-occurrence source reads,
                   and transitions.npz, the successor matrix of train + valid its transition source reads
  items.parquet    the catalog: item_id + the fields needed to show, filter and encode items
"""

from __future__ import annotations

import hashlib
import json
import pickle
import shutil
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

import foryou
from foryou.config import RunConfig
from foryou.data import schema as S
from foryou.data.dataset import Dataset
from foryou.errors import DataFileError
from foryou.evaluation.served_choice import ServedChoice, choose_served
from foryou.index import VectorIndex, build_index
from foryou.models.base import Recommender
from foryou.models.ranking import unit_rows
from foryou.models.two_tower import TwoTower
from foryou.rerank.candidates import CooccurrenceSource
from foryou.rerank.stage import RankingStage
from foryou.rerank.transitions import TRANSITIONS, TransitionSource, successor_matrix

BUNDLE_VERSION = 2
MANIFEST = "bundle.json"
MODEL_DIR, INDEX_DIR, FALLBACK_DIR, RANKING_DIR = "model", "index", "fallback", "ranking"
COOCCURRENCE_FILE, TRANSITIONS_FILE = "cooccurrence.npz", "transitions.npz"
CONTENT_FILE, ITEMS_FILE = "content.npy", "items.parquet"
DEFAULT_STRATEGY = "two_tower"
MATRIX_STRATEGIES = ("collab", "ease", "item_knn")  # baselines served from their own folder of that name


@dataclass
class Bundle:
    """A loaded bundle; `index` and `content` cover the catalog rows (labels 0..n_items-1)."""

    directory: Path
    model: TwoTower
    index: VectorIndex
    content: np.ndarray | None
    served: dict[str, Recommender]  # strategy name -> a baseline that scores histories (MATRIX_STRATEGIES)
    fallback: Recommender
    items: pd.DataFrame
    meta: dict[str, Any]
    ranking: RankingStage | None = None
    cooccurrence: CooccurrenceSource | None = None  # the ranking stage's co-occurrence source
    transitions: TransitionSource | None = None  # its transition source (None: a stage trained without one)

    @property
    def model_version(self) -> str:
        return str(self.meta["model_version"])

    @property
    def strategies(self) -> list[str]:
        return list(self.meta["strategies"])

    @property
    def default_strategy(self) -> str:
        return str(self.meta["default_strategy"])

    def describe_items(self, item_ids: list[str]) -> list[str]:
        """A short human label per item: its first text field, else its id."""
        text_fields = self.meta.get("item_fields", {}).get("text", [])
        if not text_fields or text_fields[0] not in self.items:
            return list(item_ids)
        labels = self.items.set_index(S.ITEM_ID)[text_fields[0]]
        return [str(labels.get(item, item)) for item in item_ids]


def save_bundle(directory: Path, model: TwoTower, fallback: Recommender, served: dict[str, Recommender],
                dataset: Dataset, config: RunConfig, test_metrics: dict[str, dict[str, float]],
                validation_ndcg: dict[str, float] | None = None, ranking: RankingStage | None = None,
                validation_users: dict[str, pd.Series] | None = None) -> Path:
    """Write the bundle into `directory` (replaced whole: built beside it, then renamed into place). The default
    strategy is `serving.default_strategy` when set, else `served_choice` on `validation_ndcg` (NDCG@10 on the
    validation split, models fitted on train) and its per-user values `validation_users`, else two_tower."""
    building = directory.with_name(directory.name + ".building")
    shutil.rmtree(building, ignore_errors=True)
    building.mkdir(parents=True)
    model.save(building / MODEL_DIR)
    build_index(model.retrieval_vectors(), np.arange(model.n_items), config.index).save(building / INDEX_DIR)
    strategies = [DEFAULT_STRATEGY]
    if model.has_content():
        np.save(building / CONTENT_FILE, unit_rows(model.encode_items(dataset.items, content_only=True)[:, :-1]))
        strategies.append("content")
    unknown = set(served) - set(MATRIX_STRATEGIES)
    if unknown:
        raise ValueError(f"cannot serve {sorted(unknown)}; served baselines: {', '.join(MATRIX_STRATEGIES)}")
    for name in (name for name in MATRIX_STRATEGIES if name in served):
        served[name].save(building / name)
        strategies.append(name)
    fallback.save(building / FALLBACK_DIR)
    strategies.append("popular")
    if ranking is not None:
        ranking.save(building / RANKING_DIR)
        sp.save_npz(building / RANKING_DIR / COOCCURRENCE_FILE, dataset.user_item_matrix("train", "valid"))
        if TRANSITIONS in ranking.source_names:
            sp.save_npz(building / RANKING_DIR / TRANSITIONS_FILE,
                        successor_matrix(dataset.events("train", "valid"), dataset.n_items))
        strategies += ranking.strategies
    dataset.items.to_parquet(building / ITEMS_FILE, index=False)
    files = {path.relative_to(building).as_posix(): sha256(path)
             for path in sorted(building.rglob("*")) if path.is_file()}
    created = datetime.now(timezone.utc)
    digest = hashlib.sha256(json.dumps(files, sort_keys=True).encode()).hexdigest()[:8]
    choice = served_choice(strategies, validation_ndcg or {}, validation_users)
    meta = {
        "bundle_version": BUNDLE_VERSION,
        "foryou_version": foryou.__version__,
        "created_at": created.isoformat(),
        "model_version": f"{config.name}-{created:%Y%m%dT%H%M%S}-{digest}",
        "model": model.name,
        "default_strategy": config.serving.default_strategy or (choice.chosen if choice else DEFAULT_STRATEGY),
        "served_choice": choice.as_meta() if choice else None,
        "strategies": strategies,
        "served_params": {name: served[name].params() for name in MATRIX_STRATEGIES if name in served},
        "validation_ndcg": validation_ndcg or {},
        "item_fields": dataset.manifest.item_fields,
        "data": {"source": dataset.manifest.source, "counts": dataset.manifest.counts,
                 "input_hashes": dataset.manifest.input_hashes},
        "test_metrics": test_metrics,
        "config": json.loads(config.model_dump_json()),
        "files": files,
    }
    if meta["default_strategy"] not in strategies:
        raise DataFileError(f"serving.default_strategy {meta['default_strategy']!r} is not in this bundle; "
                            f"available: {', '.join(strategies)}")
    (building / MANIFEST).write_text(json.dumps(meta, indent=2))
    shutil.rmtree(directory, ignore_errors=True)
    building.rename(directory)
    return directory


def load_bundle(directory: Path | str, verify: bool = True) -> Bundle:
    """Load a bundle; a missing, damaged or incompatible one raises DataFileError naming the file and why."""
    directory = Path(directory)
    meta = read_manifest(directory)
    if verify:
        verify_files(directory, meta["files"])
    try:
        model = Recommender.load(directory / MODEL_DIR)
        if not isinstance(model, TwoTower):
            raise DataFileError(f"{directory / MODEL_DIR} holds a {model.name} model, not a two-tower model")
        content = np.load(directory / CONTENT_FILE) if "content" in meta["strategies"] else None
        served = {name: Recommender.load(directory / name) for name in meta["strategies"] if name in MATRIX_STRATEGIES}
        fallback = Recommender.load(directory / FALLBACK_DIR)
        items = pd.read_parquet(directory / ITEMS_FILE)
        ranking, cooccurrence, transitions = None, None, None
        if (directory / RANKING_DIR).exists():
            ranking = RankingStage.load(directory / RANKING_DIR)
            cooccurrence = CooccurrenceSource.from_seen(sp.load_npz(directory / RANKING_DIR / COOCCURRENCE_FILE),
                                                        last_n=ranking.settings.last_n)
            if (directory / RANKING_DIR / TRANSITIONS_FILE).exists():
                transitions = TransitionSource.from_matrix(sp.load_npz(directory / RANKING_DIR / TRANSITIONS_FILE),
                                                           last_n=ranking.settings.last_n)
    except (OSError, ValueError, KeyError, RuntimeError, pickle.UnpicklingError) as error:
        raise DataFileError(f"bundle {directory} cannot be loaded: {error}") from error
    index = VectorIndex.load(directory / INDEX_DIR)
    return Bundle(directory, model, index, content, served, fallback, items, meta, ranking, cooccurrence,
                  transitions)


def best_on_validation(strategies: list[str], validation_ndcg: dict[str, float],
                       users: dict[str, pd.Series] | None = None) -> str:
    """The strategy with the highest validation NDCG@10 among those measured (the earlier one on a tie: two_tower
    first) unless a simpler one is within noise of it on `users` (`served_choice`), or two_tower when none was
    measured."""
    choice = served_choice(strategies, validation_ndcg, users)
    return choice.chosen if choice else DEFAULT_STRATEGY


def served_choice(strategies: list[str], validation_ndcg: dict[str, float],
                  users: dict[str, pd.Series] | None = None) -> ServedChoice | None:
    """`choose_served` among the measured `strategies`; None when none of them was measured."""
    if not any(name in validation_ndcg for name in strategies):
        return None
    return choose_served(strategies, validation_ndcg, users)


def read_manifest(directory: Path) -> dict[str, Any]:
    """bundle.json, checked for this foryou's format version."""
    path = directory / MANIFEST
    if not path.exists():
        raise DataFileError(f"{directory} is not a foryou bundle (no {MANIFEST}); run `foryou pipeline` first")
    try:
        meta = json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise DataFileError(f"{path} is damaged: not readable JSON ({error})") from error
    if not isinstance(meta, dict) or meta.get("bundle_version") != BUNDLE_VERSION:
        found = meta.get("bundle_version") if isinstance(meta, dict) else None
        written_by = meta.get("foryou_version", "an unknown version") if isinstance(meta, dict) else "?"
        raise DataFileError(f"{path}: bundle format {found!r} (written by foryou {written_by}); this foryou "
                            f"{foryou.__version__} reads format {BUNDLE_VERSION}: rebuild it with `foryou pipeline`")
    missing = [key for key in ("files", "strategies", "default_strategy", "model_version") if key not in meta]
    if missing:
        raise DataFileError(f"{path} is damaged: missing {', '.join(missing)}")
    return meta


def verify_files(directory: Path, files: dict[str, str]) -> None:
    """Every file listed in the manifest exists and has its recorded SHA-256."""
    for name, expected in files.items():
        path = directory / name
        if not path.is_file():
            raise DataFileError(f"bundle {directory}: {name} is missing")
        if sha256(path) != expected:
            raise DataFileError(f"bundle {directory}: {name} is damaged (its SHA-256 differs from {MANIFEST})")


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
