"""The run's baselines fitted on its three windows, in a second process while the two-tower trains on the runs where
that pays: large logs with a sampled-softmax two-tower.

Every baseline is fitted on train + valid (the report's models and the bundle's), and the ranking stage's item-item
sources (EASE, ItemKNN, ALS) on train and on train minus each user's last train event. None of them needs the
two-tower, and the two-tower's training leaves a second core half idle: on a 100,000-item shop these fits take
~390 s (three sparse EASE fits, three ALS fits), while its two-tower trains ~13% slower on one thread than on two
(two epochs on the 100k log of benchmarks/pipeline_scale.py: 74 s against 66 s); the whole pipeline there went
from 31.6 to 26.0 min (benchmarks/results/pipeline_scale_100k_bc7bc02.md). So, with two threads or more,
the fits run in a spawned process on the run's thread cap (the same EASE engine choice as in this process) and
this process keeps one thread less until their result is taken: a busy core beside torch's two threads makes its
epochs 2.5x slower, not one thread's 13%. The two-tower trains on that one count throughout, not on whichever
count the fits' timing left it (its sums then add up in one order: the same config gives the same model).

Only a sampled-softmax two-tower (what the data-shaped defaults pick for a large log) has them fitted there: its
steps are small products against a few hundred negatives, which a second thread barely speeds up. A full-softmax
step multiplies against the whole catalog, and one thread costs it more than the fits take on the logs that get
it (the demo: 4 epochs 16-19 s on one thread against 13-15 s on two, for ~7 s of fits). Those, and logs of fewer
than PARALLEL_MIN_EVENTS train events (the fits then take less than the ~5 s a second interpreter needs to
start), fit them here, after the two-tower, when asked for.
"""

from __future__ import annotations

import logging
import multiprocessing
from dataclasses import dataclass
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from typing import final

from foryou.config import RunConfig
from foryou.data.dataset import Dataset
from foryou.models.base import Recommender
from foryou.models.registry import build_baselines
from foryou.rerank.protocol import train_minus_last_event
from foryou.rerank.stage import ITEM_ITEM_SOURCES
from foryou.resources import limit_threads, usable_cores
from foryou.stages import LOG_FORMAT, timed_stage

logger = logging.getLogger(__name__)

PARALLEL_MIN_EVENTS = 50_000  # train events from which a sampled-softmax run's fits go to a second process
SECOND_PROCESS = " (second process)"


@dataclass
class BaselineFits:
    """The fitted baselines of each window."""

    train_valid: dict[str, tuple[Recommender, float]]  # every enabled baseline, with its fit seconds
    train: dict[str, Recommender]  # the item-item sources (ITEM_ITEM_SOURCES) fitted on train
    window: dict[str, Recommender]  # the same on train minus each user's last train event (the stage's labels)


def fit_baselines_on_windows(config: RunConfig, dataset: Dataset, where: str = "") -> BaselineFits:
    """The baselines of `config` on the three windows, one stage line per fit (`where` tells the process); the
    window fits only when the ranking stage is enabled."""
    train_valid, data = {}, dataset.restricted_to("train", "valid")
    for name, model in _built(config).items():
        with timed_stage(f"{name} fit on train + valid{where}") as elapsed:
            model.fit(data)
        train_valid[name] = (model, elapsed())
    train = _item_item_fits(config, dataset.restricted_to("train"), f"train{where}")
    window = (_item_item_fits(config, train_minus_last_event(dataset),
                              f"train minus each user's last train event{where}") if config.ranking.enabled else {})
    return BaselineFits(train_valid, train, window)


def _built(config: RunConfig) -> dict[str, Recommender]:
    return build_baselines(config.baselines, spark=config.spark)


def _item_item_fits(config: RunConfig, data: Dataset, window: str) -> dict[str, Recommender]:
    fitted = {}
    for name, model in _built(config).items():
        if name in ITEM_ITEM_SOURCES:
            with timed_stage(f"{name} fit on {window}"):
                fitted[name] = model.fit(data)
    return fitted


@final
class PendingBaselineFits:
    """`fit_baselines_on_windows` for a run on `threads` threads (None: `train.num_threads`, else the usable
    cores) and its two-tower's loss: started now in a second process when it pays (module docstring), else
    fitted here by `result()`.
    Used as a context manager: leaving it early (an error while the two-tower trains) stops the second process."""

    def __init__(self, config: RunConfig, dataset: Dataset, threads: int | None = None) -> None:
        self._config, self._dataset = config, dataset
        self._threads = threads or config.train.num_threads or usable_cores()
        self._process: BaseProcess | None = None
        self._answer: Connection | None = None
        if _pays(config, dataset, self._threads):
            context = multiprocessing.get_context("spawn")
            self._answer, send = context.Pipe(duplex=False)
            self._process = context.Process(target=_fit_and_send, daemon=True, name="foryou-baseline-fits",
                                            args=(send, config, dataset, self._threads, _levels()))
            self._process.start()
            send.close()  # the child's end only: its death then reads as EOF here
            limit_threads(self._threads - 1)  # this process's share until `result()`
            logger.info("baselines fitting in a second process while the two-tower trains")

    def __enter__(self) -> PendingBaselineFits:
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._process is None:
            return
        if self._process.is_alive():
            self._process.terminate()
            self._process.join()
        limit_threads(self._threads)

    @property
    def in_second_process(self) -> bool:
        return self._process is not None

    def result(self) -> BaselineFits:
        """The fits: waited for (the process's threads restored), or fitted now in this process."""
        if self._process is None or self._answer is None:
            return fit_baselines_on_windows(self._config, self._dataset)
        try:
            with timed_stage("waiting for the baselines' fits (second process)"):
                outcome = self._answer.recv()
        except EOFError:
            self._process.join()
            raise RuntimeError(f"the second process fitting the baselines died (exit code {self._process.exitcode}; "
                               "out of memory?); set train.num_threads: 1 to fit them in this process, after the "
                               "two-tower") from None
        finally:
            limit_threads(self._threads)
        self._process.join()
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome


def _pays(config: RunConfig, dataset: Dataset, threads: int) -> bool:
    """A second process for the fits: a thread to spare, a sampled-softmax two-tower, a log large enough, and no
    ALS on Spark (its session lives in this process)."""
    on_spark = config.baselines.als_engine == "spark" and "als" in config.baselines.enabled
    return (threads >= 2 and config.loss.kind == "sampled_softmax" and not on_spark
            and len(dataset.events("train")) >= PARALLEL_MIN_EVENTS)


def _levels() -> tuple[int, int, bool]:
    """This process's root and stage-logger levels, and whether its log has a handler (the CLI's)."""
    root = logging.getLogger()
    return root.level, logging.getLogger("foryou.stages").level, bool(root.handlers)


def _fit_and_send(send: Connection, config: RunConfig, dataset: Dataset, threads: int,
                  levels: tuple[int, int, bool]) -> None:
    """The second process: logs as the first one does, keeps to the run's thread cap, sends back the fits or
    the error that stopped them."""
    root_level, stages_level, handled = levels
    if handled:
        logging.basicConfig(level=root_level, format=LOG_FORMAT)
    logging.getLogger("foryou.stages").setLevel(stages_level)
    limit_threads(threads)
    try:
        outcome: BaselineFits | BaseException = fit_baselines_on_windows(config, dataset, SECOND_PROCESS)
    except Exception as exc:  # noqa: BLE001 - raised again in the first process, where the run stops
        outcome = exc
    send.send(outcome)
    send.close()
