"""The `foryou` command line: thin typer commands over library code.

Every command turns a `ForyouError` into one clean line per problem on stderr and exit code 2 (no traceback):
the message already says what to fix.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, TypeVar

import typer
from rich.console import Console

from foryou.errors import ForyouError

if TYPE_CHECKING:
    from foryou.config import RunConfig

app = typer.Typer(help="foryou: prepare data, train two-tower retrieval and baselines, evaluate, recommend.",
                  no_args_is_help=True)

T = TypeVar("T")
EXIT_USER_ERROR = 2

ConfigArg = Annotated[Path, typer.Argument(help="YAML run config (every option: configs/reference.yaml)")]
SetOption = Annotated[list[str] | None, typer.Option(
    "--set", help="override one option, e.g. --set filters.min_user_interactions=5 (repeatable)")]
QuietOption = Annotated[bool, typer.Option("--quiet", "-q", help="no progress bars")]
BudgetOption = Annotated[str | None, typer.Option(
    "--budget", help="search settings on validation for this long first, e.g. 10m (sets tune.budget)")]


def _with_budget(overrides: list[str] | None, budget: str | None) -> list[str]:
    return [*(overrides or []), *([f"tune.budget={budget}"] if budget is not None else [])]


def run_guarded(action: Callable[[], T]) -> T:
    """Run `action`; a ForyouError becomes 'error: ...' lines on stderr and exit code 2."""
    try:
        return action()
    except ForyouError as exc:
        err = Console(stderr=True, highlight=False, soft_wrap=True)
        for line in str(exc).strip().splitlines():
            err.print(f"error: {line.strip()}", markup=False)
        raise typer.Exit(EXIT_USER_ERROR) from None


def _setup_logging() -> None:
    from foryou.stages import LOG_FORMAT

    logging.basicConfig(level=logging.WARNING, format=LOG_FORMAT)
    logging.getLogger("foryou.stages").setLevel(logging.INFO)  # one line per pipeline stage with its seconds


def _load_capped(config: Path, overrides: list[str] | None) -> RunConfig:
    """CONFIG with its overrides, after capping this process's threads at `train.num_threads` (None: the cores
    it may use). Called before torch, LightGBM or faiss are imported: OpenMP reads its settings when it starts."""
    from foryou.config import load_config
    from foryou.resources import limit_threads, prepare_thread_environment, usable_cores

    run_config = run_guarded(lambda: load_config(config, overrides))
    threads = run_config.train.num_threads or usable_cores()
    prepare_thread_environment(threads)
    limit_threads(threads)
    return run_config


@app.command()
def validate(config: ConfigArg, overrides: SetOption = None, quiet: QuietOption = False) -> None:
    """Read and check the data of CONFIG and print the data report, without writing anything."""
    from foryou.config import load_config
    from foryou.data.prepare import inspect_dataset
    from foryou.data.report import render_report

    _setup_logging()
    result = run_guarded(lambda: inspect_dataset(load_config(config, overrides), progress=not quiet))
    Console().print(render_report(result.report))


@app.command()
def prepare(config: ConfigArg,
            out: Annotated[Path | None, typer.Option(help="output folder (default: <output_dir>/prepared)")] = None,
            engine: Annotated[str | None, typer.Option(
                help="pandas (this process) or spark (spark.master, local[*] by default); sets data.engine")] = None,
            overrides: SetOption = None, quiet: QuietOption = False) -> None:
    """Prepare the data of CONFIG: write the dataset (Parquet), quarantine.csv and report.json; print the report."""
    from foryou.config import load_config
    from foryou.data.prepare import prepare_dataset, write_prepared
    from foryou.data.report import render_report

    _setup_logging()

    def action() -> Path:
        run_config = load_config(config, [*(overrides or []), *([f"data.engine={engine}"] if engine else [])])
        result = prepare_dataset(run_config, progress=not quiet)
        written = write_prepared(result, out or run_config.prepared_dir)
        Console().print(render_report(result.report))
        return written

    written = run_guarded(action)
    Console().print(f"prepared dataset written to {written}")


@app.command()
def train(config: ConfigArg, overrides: SetOption = None, quiet: QuietOption = False) -> None:
    """Train the two-tower model: early stopping on validation NDCG@10, then fine-tunes on train, train + valid."""
    _setup_logging()
    run_config = _load_capped(config, overrides)
    from foryou import workflow

    trained, path = run_guarded(lambda: workflow.run_training(run_config, progress=not quiet))
    Console().print(trained.summary())
    Console().print(f"two-tower model saved to {path}")


@app.command()
def evaluate(config: ConfigArg, overrides: SetOption = None, quiet: QuietOption = False) -> None:
    """Evaluate the trained two-tower model and the baselines on the test split; write report.md / report.html."""
    _setup_logging()
    run_config = _load_capped(config, overrides)
    from foryou import workflow

    run = run_guarded(lambda: workflow.run_evaluation(run_config, progress=not quiet))
    _print_summary(run.reports)
    Console().print(f"report written to {run.report_path}")


@app.command()
def tune(config: ConfigArg, budget: BudgetOption = None, overrides: SetOption = None,
         quiet: QuietOption = False) -> None:
    """Search the two-tower's and the baselines' settings on validation within a time budget; write the chosen
    settings as a complete YAML (tuned.yaml in output_dir) that `foryou pipeline` runs as it is."""
    _setup_logging()
    run_config = _load_capped(config, _with_budget(overrides, budget))
    from foryou import workflow

    result, path = run_guarded(lambda: workflow.run_tuning(run_config, progress=not quiet))
    typer.echo(result.table().to_string(index=False))
    Console().print(f"{len(result.trials)} trials in {result.seconds:.0f} s; chosen settings written to {path}")


@app.command()
def pipeline(config: ConfigArg, overrides: SetOption = None, quiet: QuietOption = False,
             budget: BudgetOption = None) -> None:
    """prepare -> (search, with --budget) -> train -> evaluate -> report -> bundle, in one go."""
    _setup_logging()
    run_config = _load_capped(config, _with_budget(overrides, budget))
    from foryou import workflow
    from foryou.data.report import render_report

    result = run_guarded(lambda: workflow.run_pipeline(run_config, progress=not quiet))
    Console().print(render_report(result.prepared.report))
    _print_summary(result.evaluation.reports)
    path = result.evaluation.report_path
    Console().print(f"report written to {path} and {path.with_suffix('.html')}")
    scores = ", ".join(f"{name} {value:.4f}" for name, value in result.validation_ndcg.items())
    Console().print(f"validation NDCG@10 per strategy: {scores}")
    Console().print(f"model bundle written to {result.bundle_path} (served by default: {result.default_strategy})")


@app.command()
def recommend(
    bundle: Annotated[Path, typer.Argument(help="a bundle folder written by `foryou pipeline`")],
    user: Annotated[list[str], typer.Option("--user", "-u", help="user id (repeatable)")],
    k: Annotated[int, typer.Option("-k", min=1, help="how many items per user")] = 10,
    include_seen: Annotated[bool, typer.Option(help="also recommend items the user already has")] = False,
) -> None:
    """Print the top-k recommendations of a saved bundle for one or more users."""
    from rich.table import Table

    from foryou.serving.bundle import load_bundle

    _setup_logging()
    loaded = run_guarded(lambda: load_bundle(bundle))
    item_ids, scores = run_guarded(lambda: loaded.model.recommend(user, k=k, exclude_seen=not include_seen))
    for user_id, items, values in zip(user, item_ids, scores):
        table = Table(title=f"user {user_id}: top {len(items)} ({loaded.model.name})")
        for column in ("rank", "item_id", "item", "score"):
            table.add_column(column)
        for rank, (item, label, score) in enumerate(zip(items, loaded.describe_items(list(items)), values), 1):
            table.add_row(str(rank), str(item), label, f"{score:.4f}")
        Console().print(table)


@app.command()
def serve(
    bundle: Annotated[Path, typer.Argument(help="a bundle folder written by `foryou pipeline`")],
    host: Annotated[str, typer.Option(help="address to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="port to listen on")] = 8080,
    workers: Annotated[int, typer.Option(min=1, help="worker processes (each loads the bundle)")] = 1,
    overrides: SetOption = None,
    access_log: Annotated[bool, typer.Option(help="log every request")] = False,
) -> None:
    """Serve the bundle over HTTP: recommendations, events, items, /docs, /metrics and a playground at /."""
    from foryou.resources import prepare_thread_environment

    prepare_thread_environment(1)  # before numpy, LightGBM and faiss load, here and in every worker it starts
    from foryou.serving.app import LOG_FORMAT
    from foryou.serving.server import serve as run_server
    from foryou.serving.server import serving_config

    logging.basicConfig(level=logging.INFO, format=LOG_FORMAT)
    run_guarded(lambda: serving_config(bundle, overrides))  # a bad bundle or option fails here, in one line
    run_guarded(lambda: run_server(bundle, host, port, workers, overrides, access_log))


def _print_summary(reports: list) -> None:
    from rich.table import Table

    table = Table(title="test split, full catalog, known items excluded")
    columns = ("NDCG@10", "HR@10", "MRR@10", "coverage@10")
    for column in ("model", *columns, "fit s"):
        table.add_column(column)
    for report in reports:
        summary = report.result.summary
        table.add_row(report.name, *(f"{summary.get(c, float('nan')):.4f}" for c in columns),
                      f"{report.fit_seconds:.1f}")
    Console().print(table)
