"""The `foryou` command line: thin typer commands over library code.

Every command turns a `ForyouError` into one clean line per problem on stderr and exit code 2 (no traceback):
the message already says what to fix.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, TypeVar

import typer
from rich.console import Console

from foryou.errors import ForyouError

app = typer.Typer(help="foryou: prepare data, train two-tower retrieval and baselines, evaluate, recommend.",
                  no_args_is_help=True)

T = TypeVar("T")
EXIT_USER_ERROR = 2

ConfigArg = Annotated[Path, typer.Argument(help="YAML run config (every option: configs/reference.yaml)")]
SetOption = Annotated[list[str] | None, typer.Option(
    "--set", help="override one option, e.g. --set filters.min_user_interactions=5 (repeatable)")]
QuietOption = Annotated[bool, typer.Option("--quiet", "-q", help="no progress bars")]


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
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")


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
            overrides: SetOption = None, quiet: QuietOption = False) -> None:
    """Prepare the data of CONFIG: write the dataset (Parquet), quarantine.csv and report.json; print the report."""
    from foryou.config import load_config
    from foryou.data.prepare import prepare_dataset, write_prepared
    from foryou.data.report import render_report

    _setup_logging()

    def action() -> Path:
        run_config = load_config(config, overrides)
        result = prepare_dataset(run_config, progress=not quiet)
        written = write_prepared(result, out or run_config.prepared_dir)
        Console().print(render_report(result.report))
        return written

    written = run_guarded(action)
    Console().print(f"prepared dataset written to {written}")
