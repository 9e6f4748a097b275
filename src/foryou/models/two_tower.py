"""`TwoTower`: the item tower (content + id) and a user tower over the history, trained with the retrieval task.

fit(train dataset, validate=None): SASRec-style next-event training on every user's chronological training
events; with a `validate(model) -> score` callable (e.g. validation NDCG@10) it early-stops and keeps the best
weights, otherwise it trains exactly `train.epochs` epochs. Items without training events use the unknown id,
so they are scored from content alone.

The serving surface (`retrieval_vectors`, `encode_items`, `user_vector`), shared by the service and the ranking
stage, is its base class `TwoTowerServing` (models/two_tower_serving.py).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from foryou.config import FeaturesConfig, LossConfig, ModelConfig, RunConfig, TrackingConfig, TrainConfig
from foryou.data import schema as S
from foryou.data.dataset import Dataset
from foryou.errors import NotFittedError
from foryou.features import ItemFeatureEncoder, UserFeatureEncoder
from foryou.models.item_features import build_item_inputs
from foryou.models.item_tower import ItemInputs
from foryou.models.sequences import Histories, TrainingBatch, training_batches
from foryou.models.towers import EncodedItems, ItemLookup, TwoTowerModule
from foryou.models.two_tower_serving import TwoTowerServing
from foryou.models.user_tower import UserFeatureTower
from foryou.tasks.dat import dat_loss
from foryou.tasks.retrieval import RetrievalTask
from foryou.training import distributed
from foryou.training.callbacks import Callback, EpochRecord, MLflowCallback
from foryou.training.trainer import Trainer, resolve_device, seed_everything

logger = logging.getLogger(__name__)
SCORE_BATCH = 256
UNKNOWN_VALUE = 1  # categorical codes: 0 = padding, 1 = unknown value, 2.. = known values


class TwoTower(TwoTowerServing):
    """Two-tower retrieval with a content-aware item tower and a sequential user tower."""

    name = "two_tower"

    def __init__(self, model: dict[str, Any] | ModelConfig | None = None, loss: dict[str, Any] | LossConfig | None = None,
                 train: dict[str, Any] | TrainConfig | None = None,
                 features: dict[str, Any] | FeaturesConfig | None = None,
                 tracking: TrackingConfig | None = None, progress: bool = False) -> None:
        super().__init__()
        self.model_config = ModelConfig.model_validate(_as_dict(model))
        self.loss_config = LossConfig.model_validate(_as_dict(loss))
        self.train_config = TrainConfig.model_validate(_as_dict(train))
        self.features_config = FeaturesConfig.model_validate(_as_dict(features))
        self.tracking = tracking if tracking is not None else TrackingConfig(mlflow=False)
        self.progress = progress
        self.history: list[EpochRecord] = []
        self.tracker: MLflowCallback | None = None
        self.module = None
        self.inputs: ItemInputs | None = None
        self.histories = None
        self.type_index = {}
        self.type_weights = {}
        self.known = np.zeros(0, dtype=bool)
        self.item_encoder = None
        self._text_encoder = None
        self.categories: np.ndarray | None = None
        self.user_arrays: dict[str, np.ndarray] = {}
        self._catalog: np.ndarray | None = None
        self._validate: Callable[[TwoTower], float] | None = None
        self._warm_start: TwoTower | None = None

    @classmethod
    def from_config(cls, config: RunConfig, epochs: int | None = None, progress: bool = False,
                    mlflow: bool = True) -> TwoTower:
        """The one way a run builds its two-tower, unfitted: the config's model, loss, train, features and
        tracking sections; `epochs` replaces train.epochs (a refit for the chosen epoch count) and `mlflow=False`
        keeps a fit out of MLflow (search trials, the ranking stage's window fits) whatever tracking says."""
        train = config.train if epochs is None else config.train.model_copy(update={"epochs": epochs})
        tracking = config.tracking if mlflow else config.tracking.model_copy(update={"mlflow": False})
        return cls(config.model, config.loss, train, config.features, tracking, progress)

    def params(self) -> dict[str, Any]:
        return {"model": self.model_config.model_dump(mode="json"), "loss": self.loss_config.model_dump(mode="json"),
                "train": self.train_config.model_dump(mode="json"),
                "features": self.features_config.model_dump(mode="json")}

    # ---- fitting ------------------------------------------------------------------------------------------
    def fit(self, dataset: Dataset,  # type: ignore[override]
            validate: Callable[[TwoTower], float] | None = None, warm_start: TwoTower | None = None) -> TwoTower:
        """Train on all interactions of `dataset`; early-stop on `validate(model)` (higher is better) when given.
        `warm_start`: a two-tower fitted on part of the same run's data (same catalog and users) whose weights
        this fit starts from instead of random ones, so that a few epochs carry it over to more events; it keeps
        that model's event-type codes (a type it never saw gets the unknown code). The optimiser starts afresh."""
        self._validate, self._warm_start = validate, warm_start
        try:
            super().fit(dataset)
        finally:
            self._validate, self._warm_start = None, None
        return self

    def _fit(self, dataset: Dataset) -> None:
        seed_everything(self.train_config.seed)
        events = dataset.interactions
        start = self._warm_start
        if start is not None:
            self.type_index = dict(start.type_index)
        else:
            types = sorted(events[S.EVENT_TYPE].astype(str).unique())
            self.type_index = {name: index + 1 for index, name in enumerate(types)}
        self.type_weights = events.groupby(events[S.EVENT_TYPE].astype(str))[S.WEIGHT].mean().astype(float).to_dict()
        self.histories = Histories.from_events(events, dataset.n_users, self.type_index)
        self.known = np.bincount(self.histories.items, minlength=dataset.n_items) > 0
        self.item_encoder, self.inputs = build_item_inputs(dataset, self.model_config, self.features_config)
        self.user_arrays = self._user_arrays(dataset)
        self.module = self._new_module(dataset.n_users)
        if start is not None:
            self._copy_weights(start, dataset)
        self._train(np.bincount(self.histories.items, minlength=dataset.n_items))

    def _copy_weights(self, start: TwoTower, dataset: Dataset) -> None:
        """Load `start`'s weights: every table is indexed by catalog item or user, so both must be the same ones.
        Which items are known stays this fit's own (a non-persistent buffer): an item first seen in these events
        leaves the unknown id for its own row."""
        if start.module is None or start.item_ids is None or start.user_ids is None:
            raise NotFittedError("warm_start: the two-tower to start from is not fitted")
        if not (np.array_equal(start.item_ids, dataset.item_ids) and np.array_equal(start.user_ids, dataset.user_ids)):
            raise ValueError("warm_start: the two-tower to start from was fitted on another catalog or user set; "
                             "start only from a fit of the same prepared dataset")
        assert self.module is not None
        self.module.load_state_dict(start.module.state_dict())

    def _user_arrays(self, dataset: Dataset) -> dict[str, np.ndarray]:
        """Encoded user feature fields ("cardinalities", "numeric", "cat_<i>"); empty when not used or none."""
        roles = dataset.user_fields
        if not self.model_config.use_user_features or not (roles.categorical or roles.numeric):
            return {}
        encoded = UserFeatureEncoder.fit(dataset.users, roles, self.features_config).transform(dataset.users)
        arrays = {f"cat_{i}": values for i, values in enumerate(encoded.categorical.values())}
        arrays["cardinalities"] = np.array(list(encoded.cardinalities.values()), dtype=np.int64)
        arrays["numeric"] = encoded.numeric
        return arrays

    def _new_module(self, n_users: int) -> TwoTowerModule:
        assert self.inputs is not None
        user_features = None
        if self.user_arrays:
            cardinalities = [int(size) for size in self.user_arrays["cardinalities"]]
            user_features = UserFeatureTower([self.user_arrays[f"cat_{i}"] for i in range(len(cardinalities))],
                                             cardinalities, self.user_arrays["numeric"], self.model_config.embedding_dim)
        module = TwoTowerModule(self.inputs, self.known, n_users, len(self.type_index) + 1, self.model_config,
                                user_features, sparse_ids=self._sparse_ids())
        self.categories = _major_categories(self.inputs) if self.model_config.dat.enabled else None
        return module

    def _sparse_ids(self) -> bool:
        """A sampled-softmax step reads a few thousand of the catalog's id rows: its table takes row gradients
        and only those rows are updated. Kept dense under DDP on CUDA: NCCL's sparse all-reduce is not relied on."""
        nccl = distributed.current_world().size > 1 and resolve_device(self.train_config).type == "cuda"
        return self.loss_config.kind == "sampled_softmax" and not nccl

    def _train(self, item_counts: np.ndarray) -> None:
        """Under torchrun every rank draws the same shuffled batches of batch_size / N windows (same seed) and the
        Trainer trains each on every N-th; sampled softmax gathers all ranks' positives as negatives, full softmax
        scores each rank's own queries against the whole catalog (replicated; DDP averages the gradients)."""
        assert self.module is not None and self.histories is not None
        trainer = Trainer(self.train_config, self._callbacks(), progress=self.progress)
        device, world = trainer.device, trainer.world
        self.module.to(device)
        gather = distributed.gather_batch if world.size > 1 else None
        task = RetrievalTask(self.loss_config, item_counts, seed=self.train_config.seed, gather=gather)
        rng = np.random.default_rng(self.train_config.seed)
        histories = self.histories
        batch_size = distributed.per_rank_batch_size(self.train_config.batch_size, world.size)

        def batches(epoch: int) -> Any:
            return training_batches(histories, self.model_config.max_history, batch_size, rng,
                                    self.train_config.whole_history)

        def step(batch: TrainingBatch) -> Tensor:
            return self._batch_loss(batch, task, device)

        validate = self._validation_score if self._validate is not None else None
        self.history = trainer.fit(self.module, batches, step, validate)
        self.module.eval()
        self._catalog = None

    def _batch_loss(self, batch: TrainingBatch, task: RetrievalTask, device: torch.device) -> Tensor:
        assert self.module is not None
        module, history = self.module, batch.history.to(device)
        all_targets = batch.targets.to(device)
        valid = all_targets >= 0
        items: ItemLookup
        if self.loss_config.kind == "full_softmax":
            items, negatives = module.catalog(), None
        else:
            # sampled softmax reads only the histories', targets' and negatives' vectors: encode those, not the catalog
            negatives = task.sample_negatives(self.loss_config.num_negatives).to(device)
            items = EncodedItems(module, torch.cat([history.items.flatten(), all_targets[valid], negatives]))
        users = batch.users.to(device)
        per_position = module.users(items, history, users)
        queries, targets = per_position[valid], all_targets[valid]
        weights = batch.target_weights.to(device)[valid] if self.loss_config.weight_by_event else None
        if isinstance(items, Tensor):
            # items never seen in training are not negatives either: their vectors come from content alone
            loss = task.full_softmax(queries, targets, items, weights, bias=module.bias(), allowed=module.known)
        else:
            loss = task.sampled_softmax(queries, targets, items.__getitem__, weights, negatives)
        if module.augmented is not None:
            rows = users.unsqueeze(1).expand_as(valid)[valid]
            categories = None if self.categories is None else torch.as_tensor(self.categories, device=device)[targets]
            loss = loss + dat_loss(self.model_config.dat, module.user_augmented(rows, len(rows)),  # type: ignore[arg-type]
                                   module.augmented.items(targets), queries, items[targets], categories,
                                   0, weights)
        return loss

    def _validation_score(self) -> float:
        assert self._validate is not None
        self._catalog = None  # the weights changed since the last scoring
        score = self._validate(self)
        self._catalog = None
        return score

    def _callbacks(self) -> list[Callback]:
        """With tracking on, an MLflow run kept in `self.tracker` so the caller can log final metrics and close it."""
        if not self.tracking.mlflow:
            return []
        params = {f"{section}.{key}": value for section, values in self.params().items() for key, value in values.items()}
        self.tracker = MLflowCallback(self.tracking, params, run_name=self.name)
        return [self.tracker]

    # ---- scoring ------------------------------------------------------------------------------------------
    def item_embeddings(self) -> np.ndarray:
        """(n_items, d) item tower output for every catalog item (eval mode; cached until the next fit/load)."""
        if self.module is None:
            raise NotFittedError("TwoTower is not fitted: call fit() or load() first")
        if self._catalog is None:
            self.module.eval()
            with torch.no_grad():
                self._catalog = self.module.catalog().float().cpu().numpy()
        return self._catalog

    def score_users(self, user_idx: np.ndarray) -> np.ndarray:
        """(b, n_items) scores of known users from their fitted history."""
        return self.user_vectors(user_idx) @ self.retrieval_vectors().T

    def user_vectors(self, user_idx: np.ndarray) -> np.ndarray:
        """(b, d + 1) queries of known users from their fitted history: `user_vector` of each, in batches."""
        assert self.histories is not None
        user_idx = np.asarray(user_idx, dtype=np.int64)
        parts = [self._vectors(self.histories, user_idx[start:start + SCORE_BATCH],
                               torch.as_tensor(user_idx[start:start + SCORE_BATCH]))
                 for start in range(0, len(user_idx), SCORE_BATCH)]
        queries = np.concatenate(parts) if parts else np.zeros((0, self.model_config.embedding_dim), np.float32)
        return np.concatenate([queries, np.ones((len(queries), 1), np.float32)], axis=1)

    def score_histories(self, histories: Sequence[Sequence[tuple[str, str, Any]]]) -> np.ndarray:
        """(len(histories), n_items) scores for users unseen at training, each given as (item_id, event_type,
        timestamp) events (bias included, as in `score_users`); unknown item ids raise UnknownIdError naming them."""
        self._check_fitted()
        if not histories:
            return np.zeros((0, self.n_items), dtype=np.float32)
        return np.stack([self.user_vector(events) for events in histories]) @ self.retrieval_vectors().T

    def has_content(self) -> bool:
        """True when items carry features (text, categoricals, numbers) the item tower reads, besides ids."""
        inputs = self.inputs
        return inputs is not None and (inputs.text is not None or bool(inputs.categorical) or inputs.numeric is not None)

    def type_names(self) -> list[str]:
        """Event type names by their history code (code 1 is the first name; unknown types get the last code)."""
        return [name for name, _ in sorted(self.type_index.items(), key=lambda pair: pair[1])]

    # ---- persistence --------------------------------------------------------------------------------------
    def _save_state(self, directory: Path) -> None:
        assert self.module is not None and self.inputs is not None and self.histories is not None
        torch.save(self.module.state_dict(), directory / "two_tower.pt")
        arrays = {f"history_{name}": value for name, value in self.histories.arrays().items()}
        arrays.update(_input_arrays(self.inputs), known=self.known)
        arrays.update({f"user_{name}": values for name, values in self.user_arrays.items()})
        np.savez(directory / "two_tower_state.npz", **arrays)  # type: ignore[arg-type]
        state = {"type_index": self.type_index, "type_weights": self.type_weights,
                 "history": [vars(record) for record in self.history], "n_users": len(self.user_ids),  # type: ignore[arg-type]
                 "cardinalities": self.inputs.cardinalities, "n_bands": self.inputs.n_bands}
        (directory / "two_tower.json").write_text(json.dumps(state, indent=2))
        assert self.item_encoder is not None
        self.item_encoder.save(directory)

    def _load_state(self, directory: Path) -> None:
        state = json.loads((directory / "two_tower.json").read_text())
        arrays = np.load(directory / "two_tower_state.npz")
        self.type_index, self.type_weights = state["type_index"], state["type_weights"]
        self.history = [EpochRecord(**record) for record in state["history"]]
        self.histories = Histories(**{name: arrays[f"history_{name}"] for name in
                                      ("indptr", "items", "event_types", "weights", "days")})
        self.known = arrays["known"]
        self.user_arrays = {name[len("user_"):]: arrays[name] for name in arrays.files if name.startswith("user_")}
        self.inputs = _inputs_from_arrays(arrays, len(self.known), state["cardinalities"], state["n_bands"])
        self.item_encoder = ItemFeatureEncoder.load(directory)
        self.module = self._new_module(state["n_users"])
        self.module.load_state_dict(torch.load(directory / "two_tower.pt", map_location="cpu", weights_only=True))
        self.module.to(resolve_device(self.train_config)).eval()
        self._catalog = None


def _as_dict(value: Any) -> dict[str, Any]:
    if value is None:
        return {}
    return value.model_dump() if hasattr(value, "model_dump") else dict(value)


def _major_categories(inputs: ItemInputs) -> np.ndarray | None:
    """Per item its first value of the first categorical field, the most common one re-indexed to 0 (-1 = none)."""
    if not inputs.categorical:
        return None
    first = inputs.categorical[0][:, 0].astype(np.int64)
    first = np.where(first <= UNKNOWN_VALUE, 0, first)
    present = first[first > 0]
    if len(present) == 0:
        return None
    major = int(np.bincount(present).argmax())
    return np.where(first == 0, -1, np.where(first == major, 0, first))


def _input_arrays(inputs: ItemInputs) -> dict[str, np.ndarray]:
    arrays = {f"categorical_{i}": values for i, values in enumerate(inputs.categorical)}
    for name in ("text", "numeric", "bands"):
        if getattr(inputs, name) is not None:
            arrays[name] = getattr(inputs, name)
    return arrays


def _inputs_from_arrays(arrays: Any, n_items: int, cardinalities: list[int], n_bands: int) -> ItemInputs:
    def optional(name: str) -> np.ndarray | None:
        return arrays[name] if name in arrays.files else None

    return ItemInputs(n_items, optional("text"), [arrays[f"categorical_{i}"] for i in range(len(cardinalities))],
                      list(cardinalities), optional("numeric"), optional("bands"), n_bands)
