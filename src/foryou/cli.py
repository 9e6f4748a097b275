"""The `foryou` command line: thin typer commands over library code."""

from __future__ import annotations

import typer

app = typer.Typer(help="foryou: prepare data, train two-tower retrieval and baselines, evaluate, recommend.",
                  no_args_is_help=True)
