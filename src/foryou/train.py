"""`foryou train` on several processes: `torchrun --nproc_per_node=N -m foryou.train CONFIG [--set key=value]`.

Does what `foryou train CONFIG` does (prepare or reuse the data, early-stop on validation NDCG@10, refit on
train + valid, save the model) with every process training on its own shard of each step's batch (see
`foryou.training.distributed`). Only rank 0 writes: the prepared data, the text-embedding cache, MLflow runs and
the model; the other ranks wait for it at a barrier, then only read. Run plainly (`python -m foryou.train`),
it is one process, like `foryou train`.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from rich.console import Console

from foryou import workflow
from foryou.config import RunConfig, load_config
from foryou.data.dataset import Dataset
from foryou.errors import ForyouError
from foryou.models.item_features import build_item_inputs
from foryou.resources import limit_threads, usable_cores
from foryou.training import distributed
from foryou.training.distributed import World
from foryou.training.trainer import resolve_device
from foryou.tuning.shape import DataShape, with_shaped_defaults
from foryou.two_tower_run import save_trained, train_two_tower

logger = logging.getLogger(__name__)
EXIT_USER_ERROR = 2


def main(argv: list[str] | None = None) -> int:
    """Parse the arguments, join torchrun's process group, train; 0 on success, 2 on a ForyouError."""
    parser = argparse.ArgumentParser(prog="torchrun --nproc_per_node=N -m foryou.train", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("config", type=Path, help="YAML run config (every option: configs/reference.yaml)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override one option, e.g. --set train.epochs=5 (repeatable)")
    parser.add_argument("--quiet", "-q", action="store_true", help="no progress bars")
    args = parser.parse_args(argv)
    try:
        config = load_config(args.config, args.overrides)
        world = distributed.init_process_group(resolve_device(config.train).type)
    except ForyouError as exc:
        return _report_error(exc)
    logging.basicConfig(level=logging.WARNING, format=f"%(levelname)s rank {world.rank} %(name)s: %(message)s")
    limit_threads(config.train.num_threads or max(1, usable_cores() // world.size))  # the ranks share the cores
    try:
        train(config, world, progress=not args.quiet)
    except ForyouError as exc:
        return _report_error(exc)
    finally:
        distributed.destroy_process_group()
    return 0


def train(config: RunConfig, world: World, progress: bool = True) -> None:
    """Every rank trains (the same steps on its own shard); rank 0 saves the model and prints where."""
    distributed.per_rank_batch_size(config.train.batch_size, world.size)  # fail before preparing anything
    if not world.is_main:
        config = config.model_copy(update={"tracking": config.tracking.model_copy(update={"mlflow": False})})
    dataset, shaped = prepared_dataset(config, world, progress and world.is_main)
    trained = train_two_tower(shaped, dataset, progress=progress)
    if world.is_main:
        path = save_trained(trained, config.output_dir)
        console = Console()
        console.print(f"{trained.summary()} on {world.size} process(es)")
        console.print(f"two-tower model saved to {path}")


def prepared_dataset(config: RunConfig, world: World, progress: bool) -> tuple[Dataset, RunConfig]:
    """The dataset and `config` with its data-shaped defaults (derived once per process). Rank 0 prepares (or
    reuses) the dataset and fills the text-embedding cache for its catalog; the other ranks wait, then read both,
    so that they never write (a fully cached catalog is not re-encoded)."""
    if world.is_main:
        dataset = workflow.load_or_prepare(config, progress=progress)
        shaped = with_shaped_defaults(config, DataShape.of(dataset))
        if world.size > 1:
            build_item_inputs(dataset, shaped.model, shaped.features)
    distributed.barrier()
    if world.is_main:
        return dataset, shaped
    dataset = Dataset.load(config.prepared_dir)
    return dataset, with_shaped_defaults(config, DataShape.of(dataset))


def _report_error(exc: ForyouError) -> int:
    for line in str(exc).strip().splitlines():
        Console(stderr=True, highlight=False, soft_wrap=True).print(f"error: {line.strip()}", markup=False)
    return EXIT_USER_ERROR


if __name__ == "__main__":
    sys.exit(main())
