"""Run-level orchestration behind the CLI: prepare -> train -> evaluate -> report -> bundle. The CLI only prints
what these functions return.

Evaluation follows one protocol everywhere: settings are chosen on the validation split (models fitted on
train), the chosen model is refitted on train + validation, and the test split is evaluated once.
"""

from __future__ import annotations

import json
import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from foryou.baseline_fits import BaselineFits, PendingBaselineFits, fit_baselines_on_windows
from foryou.config import RunConfig
from foryou.data.dataset import Dataset
from foryou.data.prepare import PrepareResult, prepare_dataset, write_prepared
from foryou.evaluation.comparisons import paired_test, per_user
from foryou.evaluation.diversity_space import DiversitySpace, diversity_space
from foryou.evaluation.protocol import EvaluationResult, evaluate, evaluated_users_note, item_user_counts
from foryou.evaluation.report import ModelReport, write_report
from foryou.models.base import Recommender
from foryou.models.two_tower import TwoTower
from foryou.progress import announce
from foryou.rerank.online import CatalogFeatures
from foryou.rerank.stage import (
    RankingStage,
    SourceModels,
    evaluate_stage,
    fit_ranking_stage,
    recent_popularity,
)
from foryou.serving.bundle import best_on_validation, read_manifest, save_bundle
from foryou.stages import timed_stage
from foryou.training.callbacks import use_tracking
from foryou.tuning.plan import describe_plan
from foryou.tuning.search import TuneResult, run_search, write_tuned_config
from foryou.tuning.shape import DataShape, with_shaped_defaults
from foryou.two_tower_run import TrainedTwoTower, load_trained, save_trained, train_two_tower, with_user_tower

logger = logging.getLogger(__name__)

DATA_SECTIONS = ("data", "events", "filters", "split", "features")
BUNDLE_DIR = "bundle"
FEATURES_SHOWN = 15
SERVED_BASELINES = {"als": "collab", "ease": "ease", "item_knn": "item_knn"}  # baseline -> strategy name


def load_or_prepare(config: RunConfig, progress: bool = True) -> Dataset:
    """The prepared dataset of this config: reused when its manifest was made from the same data settings."""
    directory = config.prepared_dir
    if (directory / "manifest.json").exists():
        dataset = Dataset.load(directory)
        wanted = json.loads(config.model_dump_json(include=set(DATA_SECTIONS)))
        if {key: dataset.manifest.config.get(key) for key in DATA_SECTIONS} == wanted:
            logger.info("reusing prepared dataset in %s", directory)
            return dataset
    result = prepare_dataset(config, progress=progress)
    write_prepared(result, directory)
    return result.dataset


def popularity_fallback(dataset: Dataset) -> Recommender:
    """What the service answers with when the model cannot place a user (and its `popular` strategy): recent
    popularity on train + valid, so a cold visitor sees what sells now rather than what sold once."""
    return recent_popularity(dataset.restricted_to("train", "valid"))


def fit_ranking(config: RunConfig, dataset: Dataset, trained: TrainedTwoTower, fits: BaselineFits,
                progress: bool = True, space: DiversitySpace | None = None) -> FittedRanking:
    """The ranking stage fitted on validation (`fit_ranking_stage`), then every strategy of it over the sources
    refitted on train + valid (the bundle's models) evaluated once on test (diversity in `space`). The two-tower
    of each window is `trained`'s fit of it (two_tower_run.py), else a fresh fit of its best epoch count; the
    item-item sources of each window are `fits`'."""
    start = time.perf_counter()

    def window(data: Dataset, tower: TwoTower | None, baselines: dict[str, Recommender]) -> SourceModels:
        tower = tower or TwoTower.from_config(config, trained.best_epoch, progress, mlflow=False).fit(data)
        return SourceModels.fit(data, tower, baselines, recent_popularity(data), config.ranking.last_n)

    train_sources = window(dataset.restricted_to("train"), trained.tuned, fits.train)
    stage = fit_ranking_stage(dataset, config.ranking, train_sources,
                              lambda data: window(data, trained.window, fits.window), seed=config.train.seed)
    train_valid = dataset.restricted_to("train", "valid")
    served = SourceModels.fit(train_valid, trained.model, {name: model for name, (model, _) in fits.train_valid.items()},
                              popularity_fallback(dataset), config.ranking.last_n)
    stage.catalog = CatalogFeatures.from_dataset(train_valid)  # served over train + valid: item features to match
    options = config.evaluation
    results = evaluate_stage(stage, served, dataset, "test", ks=options.ks, batch_size=options.batch_size,
                             activity_buckets=options.activity_buckets,
                             item_embeddings=space.vectors if space is not None else None)
    return FittedRanking(stage, results, time.perf_counter() - start, train_sources)


@dataclass
class FittedRanking:
    """The ranking stage, its strategies' test results and the seconds it took (both windows, all rankers)."""

    stage: RankingStage
    test_results: dict[str, EvaluationResult]
    seconds: float
    train_sources: SourceModels  # the sources fitted on train: the strategies as they were chosen on validation

    def sections(self) -> dict[str, pd.DataFrame]:
        """Report tables: validation score per strategy and the LightGBM ranker's feature importance."""
        stage = self.stage
        scores = pd.DataFrame({"strategy": list(stage.validation_ndcg),
                               "valid NDCG@10": [f"{value:.4f}" for value in stage.validation_ndcg.values()]})
        gain = stage.lgbm.feature_importance("gain").head(FEATURES_SHOWN)
        importance = pd.DataFrame({"feature": gain.index, "gain": [f"{value:,.1f}" for value in gain.to_numpy()],
                                   "share": [f"{value:.1%}" for value in gain.to_numpy() / max(gain.sum(), 1e-12)]})
        recall = ", ".join(f"{split} {value:.3f}" for split, value in stage.label_recall.items())
        return {f"Ranking stage (labels among the candidates: {recall})": scores,
                "Ranker feature importance (LightGBM gain, top features)": importance}


def evaluate_and_report(
    config: RunConfig, dataset: Dataset, trained: TrainedTwoTower, baselines: dict[str, tuple[Recommender, float]],
    ranking: FittedRanking | None = None, searched: TuneResult | None = None,
    validation: dict[str, float] | None = None, validation_users: dict[str, pd.Series] | None = None,
    space: DiversitySpace | None = None,
) -> tuple[list[ModelReport], Path]:
    """Test-split evaluation of every model (and the ranking stage's strategies) side by side, written as
    report.md / report.html in output_dir; with `validation` (NDCG@10 per strategy), the served choice too,
    tested against the runner-up on `validation_users`. Every model's diversity is measured in `space`."""
    def test_metrics(model: Recommender) -> EvaluationResult:
        options = config.evaluation
        return evaluate(model, dataset, "test", ks=options.ks, batch_size=options.batch_size,
                        activity_buckets=options.activity_buckets,
                        item_embeddings=space.vectors if space is not None else None)

    tower_params: dict[str, Any] = {
        "user_tower": trained.model.model_config.user_tower, "best_epoch": trained.best_epoch,
        "served_fit_epochs": trained.model.train_config.epochs, "dat": config.model.dat.enabled,
        "loss": config.loss.kind}
    if trained.tower_scores:  # the user tower was chosen on validation among these
        tower_params["user_tower_valid_ndcg"] = " / ".join(f"{tower} {score:.4f}"
                                                           for tower, score in trained.tower_scores.items())
    reports = [ModelReport(TwoTower.name, test_metrics(trained.model),
                           trained.fit_seconds, tower_params)]
    for name, (model, seconds) in baselines.items():
        reports.append(ModelReport(name, test_metrics(model), seconds, model.params()))
    if ranking is not None:
        reports += [ModelReport(name, result, ranking.seconds, {"candidates": config.ranking.candidates})
                    for name, result in ranking.test_results.items()]
    curves = {f"{TwoTower.name} on train minus each user's last event": trained.window_history,
              TwoTower.name: trained.tuning_history}
    markdown_path, _ = write_report(
        config.output_dir, reports, title=f"foryou report: {config.name}",
        dataset_summary={"users": dataset.n_users, "items": dataset.n_items, **dataset.manifest.counts,
                         "scored on": evaluated_users_note(dataset)},
        training_history={name: [{"epoch": r.epoch, "loss": r.loss, "valid_NDCG@10": r.valid_ndcg} for r in records]
                          for name, records in curves.items()},
        embeddings={TwoTower.name: trained.model.item_embeddings()},
        item_popularity=item_user_counts(dataset.events("train", "valid"), dataset.n_items),
        sections={**(ranking.sections() if ranking is not None else {}),
                  **(served_section(config, validation, reports, validation_users or {}) if validation else {}),
                  **(searched.sections() if searched is not None else {})},
        images=searched.images(config.output_dir) if searched is not None else {},
        baselines=list(baselines),
        served=_model_name(served_strategy(config, validation, validation_users)) if validation else None,
        diversity_space=space.description if space is not None else None,
    )
    log_test_metrics(config, reports, markdown_path)
    return reports, markdown_path


def served_strategy(config: RunConfig, validation: dict[str, float],
                    users: dict[str, pd.Series] | None = None) -> str:
    """The strategy a bundle serves by default: `serving.default_strategy`, else the best on validation unless a
    simpler strategy is within noise of it on the per-user scores `users` (evaluation/served_choice.py)."""
    return config.serving.default_strategy or best_on_validation(list(validation), validation, users)


def _model_name(strategy: str) -> str:
    """The report's model name of a served strategy (a baseline is served under another name)."""
    model_of = {strategy: name for name, strategy in SERVED_BASELINES.items()} | {"popular": "recent_pop"}
    return model_of.get(strategy, strategy)


def served_section(config: RunConfig, validation: dict[str, float], reports: list[ModelReport],
                   users: dict[str, pd.Series]) -> dict[str, pd.DataFrame]:
    """Report table: every strategy a bundle may default to, its validation and test NDCG@10, its paired test
    against the served one on validation users, and the one served (`served_strategy`); the heading says how the
    served one compares with the best other strategy on validation, beyond noise or within it."""
    served = served_strategy(config, validation, users)
    tested = {report.name: report.result.summary.get("NDCG@10") for report in reports}
    ranked = sorted(validation.items(), key=lambda pair: -pair[1])

    def versus_served(name: str) -> str:
        return "—" if name == served or name not in users or served not in users else \
            str(paired_test(users[name], users[served]))

    rows = [{"strategy": name, "valid NDCG@10": f"{value:.4f}", "test NDCG@10": _metric(tested.get(_model_name(name))),
             "served by default": "yes" if name == served else "",
             "valid, minus the served (95% CI, p)": versus_served(name)} for name, value in ranked]
    other = next((name for name, _ in ranked if name != served), None)
    verdict = ""
    if other is not None and served in users and other in users:
        test = paired_test(users[served], users[other])
        verdict = (f": {served} minus the best other, {other}, is {test} on validation, "
                   f"{'beyond' if test.beyond_noise else 'within'} noise")
    return {f"Served strategy (chosen on validation NDCG@10, each fitted on train){verdict}": pd.DataFrame(rows)}


def _metric(value: float | None) -> str:
    return "—" if value is None else f"{value:.4f}"


def log_test_metrics(config: RunConfig, reports: list[ModelReport], report_path: Path) -> None:
    """One MLflow run per evaluation with every model's test metrics and the report as artifacts."""
    if not config.tracking.mlflow:
        return
    import mlflow

    use_tracking(config.tracking)
    with mlflow.start_run(run_name=f"{config.name}-evaluate"):
        for report in reports:
            metrics: dict[str, Any] = {f"{report.name}.{key.replace('@', '_at_')}": value
                                       for key, value in report.result.summary.items() if _is_number(value)}
            mlflow.log_metrics(metrics)
        for path in report_path.parent.glob("report.*"):
            mlflow.log_artifact(str(path))


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not math.isnan(value)  # NaN is not a metric value


@dataclass
class EvaluationRun:
    """Test metrics of every model and where the report was written."""

    trained: TrainedTwoTower
    baselines: dict[str, tuple[Recommender, float]]
    reports: list[ModelReport]
    report_path: Path
    validation_ndcg: dict[str, float]  # per strategy a bundle may default to, each fitted on train
    ranking: FittedRanking | None = None
    searched: TuneResult | None = None
    validation_users: dict[str, pd.Series] | None = None  # per-user validation NDCG@10, for the served choice


@dataclass
class PipelineResult:
    """What `foryou pipeline` produced: the data report, the evaluation, and the bundle the service loads."""

    prepared: PrepareResult
    evaluation: EvaluationRun
    bundle_path: Path
    validation_ndcg: dict[str, float]  # per strategy the bundle may default to
    default_strategy: str  # what the bundle serves when a request names none


def shaped_run(config: RunConfig, progress: bool = True) -> tuple[Dataset, RunConfig]:
    """The (prepared or reused) dataset and `config` with its data-shaped defaults: derived once per command."""
    dataset = scored_on_sample(load_or_prepare(config, progress=progress), config)
    return dataset, with_shaped_defaults(config, DataShape.of(dataset))


def scored_on_sample(dataset: Dataset, config: RunConfig) -> Dataset:
    """`dataset` whose valid and test are scored on the users `evaluation.max_users` allows (logged)."""
    sampled = dataset.with_evaluation_sample(config.evaluation.max_users)
    logger.info("valid and test are scored on %s", evaluated_users_note(sampled))
    return sampled


def run_training(config: RunConfig, progress: bool = True) -> tuple[TrainedTwoTower, Path]:
    """`foryou train`: the (prepared or reused) dataset, the tuned and refitted two-tower, saved."""
    dataset, shaped = shaped_run(config, progress)
    trained = train_two_tower(shaped, dataset, progress=progress)
    return trained, save_trained(trained, config.output_dir)


def run_tuning(config: RunConfig, progress: bool = True) -> tuple[TuneResult, Path]:
    """`foryou tune`: `search_settings` from the data-shaped defaults of the (prepared or reused) dataset."""
    dataset, shaped = shaped_run(config, progress)
    return search_settings(shaped, dataset)


def search_settings(config: RunConfig, dataset: Dataset) -> tuple[TuneResult, Path]:
    """The search within `tune.budget` from `config` (with its data-shaped defaults, `shaped_run`); writes the
    chosen settings as a complete YAML (and the search's table and plot) into output_dir."""
    result = run_search(config, dataset, progress=False)
    path = write_tuned_config(result, config.output_dir)
    logger.info("chosen settings written to %s", path)
    return result, path


def run_evaluation(config: RunConfig, progress: bool = True) -> EvaluationRun:
    """`foryou evaluate`: the saved two-tower (trained now when absent) and every baseline on the test split."""
    dataset, shaped = shaped_run(config, progress)
    trained = load_trained(shaped.output_dir)
    if trained is None:
        trained = train_two_tower(shaped, dataset, progress=progress)
        save_trained(trained, shaped.output_dir)
    return evaluate_models(shaped, dataset, trained, progress)


def evaluate_models(config: RunConfig, dataset: Dataset, trained: TrainedTwoTower, progress: bool = True,
                    searched: TuneResult | None = None, fits: BaselineFits | None = None) -> EvaluationRun:
    """`trained`, every baseline and the ranking stage's strategies on the test split, the servable strategies
    on validation, and the report; `config` is the run's, with its data-shaped defaults (`shaped_run`). The
    baselines are `fits` (`PendingBaselineFits`), else fitted here."""
    if fits is None:
        fits = fit_baselines_on_windows(config, dataset)
    baselines = fits.train_valid
    space = diversity_space(dataset, config.features, trained.model.item_embeddings)
    with timed_stage("ranking stage (sources on two windows, rankers, test)"):
        ranking = fit_ranking(config, dataset, trained, fits, progress, space) if config.ranking.enabled else None
    with timed_stage("validation of the servable strategies"):
        users = served_validation_users(dataset, trained, fits, ranking)
        validation = served_validation_ndcg(users, trained, ranking)
    with timed_stage("evaluation and report"):
        reports, path = evaluate_and_report(config, dataset, trained, baselines, ranking, searched, validation,
                                            users, space)
    return EvaluationRun(trained, baselines, reports, path, validation, ranking, searched, users)


def run_pipeline(config: RunConfig, progress: bool = True) -> PipelineResult:
    """`foryou pipeline`: prepare -> train -> evaluate -> report -> bundle (model, index, baselines, ranking
    stage, fallback)."""
    with timed_stage("prepare"):
        prepared = prepare_dataset(config, progress=progress)
        write_prepared(prepared, config.prepared_dir)
    dataset = scored_on_sample(prepared.dataset, config)
    shape = DataShape.of(dataset)
    shaped = with_shaped_defaults(config, shape)
    announce("\n".join(describe_plan(config, shaped, shape)), progress)
    config = shaped
    searched = search_settings(config, dataset)[0] if config.tune.budget is not None else None
    config = searched.config if searched is not None else config
    with PendingBaselineFits(config, dataset) as pending:  # in a second process while the two-tower trains
        trained = train_two_tower(config, dataset, progress=progress, searched=searched)
        save_trained(trained, config.output_dir)
        fits = pending.result()
    config = with_user_tower(config, trained.model.model_config.user_tower)  # the bundle records the one chosen
    evaluation = evaluate_models(config, dataset, trained, progress=progress, searched=searched, fits=fits)
    served = {SERVED_BASELINES[name]: model for name, (model, _) in evaluation.baselines.items()
              if name in SERVED_BASELINES}
    metrics = {report.name: {key: value for key, value in report.result.summary.items() if _is_number(value)}
               for report in evaluation.reports}
    validation = evaluation.validation_ndcg
    stage = evaluation.ranking.stage if evaluation.ranking is not None else None
    with timed_stage("bundle"):
        bundle = save_bundle(config.output_dir / BUNDLE_DIR, trained.model, popularity_fallback(dataset), served,
                             dataset, config, metrics, validation, stage, evaluation.validation_users)
    logger.info("bundle written to %s", bundle)
    return PipelineResult(prepared, evaluation, bundle, validation, read_manifest(bundle)["default_strategy"])


def served_validation_users(dataset: Dataset, trained: TrainedTwoTower, fits: BaselineFits,
                            ranking: FittedRanking | None = None) -> dict[str, pd.Series]:
    """Per-user validation NDCG@10 (index: user_idx) of every strategy a bundle can default to, each fitted on
    train as when the default is chosen, for the paired test of the served choice against the runner-up. The
    baselines are `fits`' on train; the two-tower is its best epoch while tuning, left out when only the
    refitted model is at hand (loaded from disk)."""
    def score(model: Recommender) -> pd.Series:
        return per_user(evaluate(model, dataset, "valid", ks=(10,), beyond_accuracy=False), "NDCG@10")

    users = {TwoTower.name: score(trained.tuned)} if trained.tuned is not None else {}
    for name, model in fits.train.items():
        if name in SERVED_BASELINES:
            users[SERVED_BASELINES[name]] = score(model)
    users["popular"] = score(ranking.train_sources.recent_pop if ranking is not None
                             else recent_popularity(dataset.restricted_to("train")))
    if ranking is not None:  # scored while the stage was fitted, on the same candidates
        users.update(ranking.stage.validation_users)
    return users


def served_validation_ndcg(users: dict[str, pd.Series], trained: TrainedTwoTower,
                           ranking: FittedRanking | None = None) -> dict[str, float]:
    """Validation NDCG@10 per strategy, what the served default is chosen on (test stays untouched): the means
    of `served_validation_users`, except the two-tower's best epoch while tuning and the ranking stage's scores
    from its own fit, both measured when they were chosen."""
    scores = {TwoTower.name: max(record.valid_ndcg or 0.0 for record in trained.tuning_history)}
    scores.update({name: float(values.mean()) for name, values in users.items() if name != TwoTower.name})
    if ranking is not None:
        scores.update(ranking.stage.validation_ndcg)
    logger.info("validation NDCG@10 per strategy: %s", scores)
    return scores
