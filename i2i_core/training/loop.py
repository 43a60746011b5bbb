"""The training loop, top to bottom: build the method and data, hold and resume the run folder, then one step after
another (learning rate, step, log, samples, checkpoints) until the schedule ends or a signal asks to stop.

SIGINT and SIGTERM save a checkpoint and stop cleanly. Under ``torchrun`` every process runs the loop on its
shard of each epoch; only rank 0 writes the run folder.
"""

from __future__ import annotations

import math
import signal
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset

from i2i_core.checkpoint import BEST, checkpoint_name
from i2i_core.host.registry import create
from i2i_core.method import Method
from i2i_core.precision import resolve_device
from i2i_core.recipe import Recipe
from i2i_core.seeds import loader_seed, rank_seed
from i2i_core.training import distributed
from i2i_core.training.build import build_dataset, build_trainer, compute_layout, fixed_sample_batch
from i2i_core.training.evaluator import EvalScores, Evaluator
from i2i_core.training.log import RunLog, progress_bar
from i2i_core.training.monitors import CollapseMonitor, DiscriminatorMonitor
from i2i_core.training.run_folder import hold_run_folder, resume, run_dir_of, start_run_folder
from i2i_core.training.samples import save_sample_grid
from i2i_core.training.schedule import Schedule, epoch_order
from i2i_core.training.state import Progress, prune_checkpoints, save_training_checkpoint


@dataclass
class TrainResult:
    """Where a run went and how it ended."""

    run_dir: Path
    steps: int
    metrics: dict[str, float] = field(default_factory=dict)
    checkpoint: Path | None = None
    interrupted: bool = False
    out_of_time: bool = False  # stopped by the time budget (train.minutes) before the schedule's end
    stop_signal: int | None = None  # the signal that stopped an interrupted run (SIGINT or SIGTERM)
    seconds: float = 0.0
    steps_per_second: float = 0.0


class StopNow(KeyboardInterrupt):
    """A second SIGINT: the run stops at once, its run folder left at its last complete checkpoint."""


class StopSignals:
    """Turn SIGINT/SIGTERM into a request to stop after the current step. A second SIGINT stops at once
    (:class:`StopNow`), but not while a checkpoint is being written (:meth:`saving`): that one is finished first."""

    def __init__(self) -> None:
        self.received: int | None = None
        self._previous: dict[int, Any] = {}
        self._saving = False

    def _handle(self, signum: int, frame: Any) -> None:
        if self.received is not None and signum == signal.SIGINT:
            if not self._saving:
                raise StopNow
            print("Ctrl-C again while a checkpoint is being written: finishing it, then stopping", file=sys.stderr)
        self.received = signum

    @contextmanager
    def saving(self) -> Iterator[None]:
        """Write a checkpoint in the ``with`` block: a second SIGINT waits for it to be complete."""
        self._saving = True
        try:
            yield
        finally:
            self._saving = False

    def __enter__(self) -> StopSignals:
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc: Any) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


@dataclass(frozen=True)
class Cadence:
    """When a run logs, draws samples and saves checkpoints: every ``output.*_every`` steps (0: never), and
    logs and samples at the last step too (the last checkpoint is saved whatever the cadence)."""

    log_every: int
    sample_every: int
    checkpoint_every: int

    @classmethod
    def from_recipe(cls, recipe: Recipe) -> Cadence:
        out = recipe.values["output"]
        return cls(out["log_every"], out["sample_every"], out["checkpoint_every"])

    def logs(self, step: int, done: bool) -> bool:
        return bool(self.log_every) and (step % self.log_every == 0 or done)

    def samples(self, step: int, done: bool) -> bool:
        return bool(self.sample_every) and (step % self.sample_every == 0 or done)

    def checkpoints(self, step: int, done: bool) -> bool:
        return bool(self.checkpoint_every) and step % self.checkpoint_every == 0 and not done


class Checkpoints:
    """Saves a run's checkpoints into ``<run>/checkpoints`` (rank 0 writes, every process waits) and prunes all
    but the newest ``output.keep_last``; and ``checkpoints/best``, by the evaluator's scores."""

    def __init__(
        self, run_dir: Path, recipe: Recipe, trainer: Method, schedule: Schedule, job: distributed.Distributed
    ):
        self.folder, self.recipe, self.trainer, self.schedule, self.job = (
            run_dir / "checkpoints",
            recipe,
            trainer,
            schedule,
            job,
        )

    def extra(self, progress: Progress) -> dict[str, Any]:
        """What a checkpoint of ``progress`` records besides the method's state."""
        return {
            "lr": self.schedule.lr_at(max(progress.step - 1, 0)),
            "recipe": self.recipe.name,
            "world_size": self.job.world_size,
            "method": self.recipe["method"],
        }

    def save(self, progress: Progress) -> Path:
        path = self.folder / checkpoint_name(progress.step)
        if self.job.is_main:
            extra = self.extra(progress)
            path = save_training_checkpoint(self.folder, self.trainer, progress, extra)
            prune_checkpoints(self.folder, self.recipe["output.keep_last"])
        self.job.barrier()
        return path

    def save_best(self, progress: Progress, evaluation: EvalScores) -> Path | None:
        """Save ``checkpoints/best`` when ``evaluation`` is the best so far, its ``state.json`` recording the scores
        that made it best; on rank 0 only, which evaluates (the others do not wait)."""
        if evaluation.best is None:
            return None
        extra = {**self.extra(progress), "eval": evaluation.scores, "eval_best": evaluation.best}
        return save_training_checkpoint(self.folder, self.trainer, progress, extra, name=BEST)


class Samples:
    """Sample grids of a fixed batch (``<run>/samples/step_XXXXXXX.png`` and TensorBoard), the reporters' analyses
    of each translation direction, and the collapse monitor watching each exported generator."""

    def __init__(self, run_dir: Path, batch: dict[str, torch.Tensor], trainer: Method, reporters: dict, log: RunLog):
        self.run_dir, self.batch, self.trainer, self.reporters, self.log = run_dir, batch, trainer, reporters, log
        self.collapse = CollapseMonitor()

    def save(self, step: int, watch_collapse: bool) -> None:
        made = self.trainer.sample_images(self.batch)
        images = {
            "real_A": self.batch["A"],
            "real_B": self.batch["B"],
            **{column: image.float().contiguous().clamp(-1, 1) for column, image in made.items()},
        }
        name = f"step_{step:07d}"
        save_sample_grid(self.run_dir / "samples" / f"{name}.png", images, self.trainer.sample_columns)
        translations = self.trainer.translations
        for reporter_name, reporter in self.reporters.items():
            for direction, t in translations.items():
                folder = self.run_dir / "reports" / reporter_name / name / direction
                reporter.report({t.source: images[t.source], t.output: images[t.output]}, folder)
        self.log.images("samples", torch.cat([images[t.output] for t in translations.values()]), step)
        if watch_collapse:
            for t in translations.values():
                if message := self.collapse.check(t.network, images[t.source], images[t.output], step):
                    self.log.warning(step, message)


class TrainingTime:
    """Seconds spent training, in this session and the ones before it (``before``), evaluation excluded."""

    def __init__(self, before: float) -> None:
        self.before, self.since, self.excluded = before, time.perf_counter(), 0.0

    def seconds(self) -> float:
        return self.before + time.perf_counter() - self.since - self.excluded

    @contextmanager
    def excluding(self) -> Iterator[None]:
        """Leave out the time spent in the ``with`` block."""
        start = time.perf_counter()
        try:
            yield
        finally:
            self.excluded += time.perf_counter() - start


class Throughput:
    """Steps per second since the last time it was read."""

    def __init__(self) -> None:
        self.since, self.steps = time.perf_counter(), 0

    def count(self) -> None:
        self.steps += 1

    def read(self) -> float:
        now = time.perf_counter()
        rate = self.steps / (now - self.since)
        self.since, self.steps = now, 0
        return rate


def epoch_loader(train_set: Dataset, recipe: Recipe, progress: Progress, job: distributed.Distributed) -> DataLoader:
    """The batches left in the current epoch for this process, in the epoch's own shuffled order."""
    seed, batch_size = recipe["train.seed"], recipe["train.batch_size"]
    order = job.shard(epoch_order(seed, progress.epoch, len(train_set)))
    return DataLoader(
        train_set,
        batch_size=batch_size,
        sampler=order[progress.batch_in_epoch * batch_size :],
        num_workers=recipe["train.num_workers"],
        # its own generator: creating a loader must not draw from the global RNG, or a resumed run (which
        # creates one more) would diverge from an uninterrupted one
        generator=torch.Generator().manual_seed(loader_seed(seed, progress.epoch)),
    )


def train(recipe: Recipe, restart: bool = False, show_progress: bool | None = None) -> TrainResult:
    """Train the recipe's method in its run folder, resuming from its latest checkpoint.

    Under ``torchrun`` every process runs this function: each trains on its shard of every epoch with
    gradients averaged over all of them, and only rank 0 writes the run folder.

    Args:
        recipe: from :func:`i2i_core.load_recipe`.
        restart: delete the run folder's checkpoints, samples and metrics and start over.
        show_progress: progress bar on or off (default: only when standard error is a terminal).
    """
    device = resolve_device(recipe["train.device"])
    job = distributed.setup(device)
    if job.enabled and device.type == "cuda":
        device = torch.device("cuda", job.local_rank)
        torch.cuda.set_device(device)
    try:
        return _train(recipe, restart, show_progress, device, job)
    finally:
        distributed.teardown(job)


def _train(
    recipe: Recipe, restart: bool, show_progress: bool | None, device: torch.device, job: distributed.Distributed
) -> TrainResult:
    run_dir = run_dir_of(recipe)
    train_set = build_dataset(recipe, "train")
    sample_batch = fixed_sample_batch(recipe, train_set)
    layout = compute_layout(recipe, device)
    if job.is_main and "auto" in (recipe["train.precision"], recipe["train.memory_format"]):
        print(f"Training in {layout.describe()}: {layout.reason}", file=sys.stderr)
    trainer = build_trainer(recipe, device, layout)
    if job.is_main and device.type == "cuda":
        print(f"Training with {trainer.graphs_note}", file=sys.stderr)
    reporters = {name: create("reporter", name) for name in recipe["report.reporters"]}
    schedule = Schedule.from_recipe(recipe, math.ceil(len(train_set) / job.world_size))
    cadence = Cadence.from_recipe(recipe)

    with hold_run_folder(run_dir, restart, job), StopSignals() as stop:
        progress, checkpoint = resume(run_dir, trainer, recipe["method"], job)
        if job.is_main:
            start_run_folder(run_dir, recipe, progress.step, resumed=checkpoint is not None)
            if checkpoint is not None:
                print(f"Resuming {run_dir} from step {progress.step} ({checkpoint.name})", file=sys.stderr)
        if job.enabled:
            trainer.distribute()
            # every rank draws its own augmentations and random choices (rank 0's weights are broadcast)
            torch.manual_seed(rank_seed(recipe["train.seed"], job.rank, progress.step))
            trainer.reseed(recipe["train.seed"], job.rank, progress.step)
        log = RunLog(run_dir) if job.is_main else None
        samples = Samples(run_dir, sample_batch, trainer, reporters, log) if log is not None else None
        evaluator = Evaluator(run_dir, recipe, trainer, log) if log is not None else None
        checkpoints = Checkpoints(run_dir, recipe, trainer, schedule, job)
        clock, budget = TrainingTime(progress.train_seconds), recipe["train.minutes"] * 60
        discriminators = DiscriminatorMonitor(trainer.discriminator_losses)
        bar = progress_bar(schedule.total_steps, progress.step, show_progress if job.is_main else False)
        losses: dict[str, float] = {}
        start_step, started, throughput = progress.step, time.perf_counter(), Throughput()

        trainer.train()
        stopping, out_of_time = False, bool(budget) and progress.train_seconds >= budget
        while progress.step < schedule.total_steps and not (stopping or out_of_time):
            for batch in epoch_loader(train_set, recipe, progress, job):
                pretraining = schedule.pretraining(progress.step)
                trainer.set_lr(schedule.lr_at(progress.step))
                losses = trainer.pretrain_step(batch) if pretraining else trainer.run_step(batch)
                progress.advance(schedule.steps_per_epoch)
                progress.train_seconds = clock.seconds()
                throughput.count()
                bar.update(1)
                shown = trainer.shown_losses or losses
                bar.set_postfix({k: f"{v:.3f}" for k, v in losses.items() if k in shown}, refresh=False)
                # the budget is rank 0's: the others wait for it while it evaluates
                out_of_time = job.any(bool(budget) and job.is_main and progress.train_seconds >= budget)
                step, done = progress.step, progress.step >= schedule.total_steps or out_of_time
                stopping = job.any(stop.received is not None)
                if log is not None:
                    if not pretraining:
                        for message in discriminators.check(losses, step):
                            log.warning(step, message)
                    if cadence.logs(step, done):
                        phase = {"phase": "d_pretrain"} if pretraining else {}
                        lr = schedule.lr_at(step - 1)
                        log.metrics(
                            {
                                "step": step,
                                "epoch": progress.epoch + 1,
                                **phase,
                                **losses,
                                "lr": lr,
                                "steps_per_s": throughput.read(),
                            }
                        )
                    if cadence.samples(step, done):
                        samples.save(step, watch_collapse=not schedule.pretraining(step - 1))
                    if evaluator.due(step, done) and not schedule.pretraining(step - 1):
                        with clock.excluding():
                            scores = evaluator.run(progress)
                            with stop.saving():
                                checkpoints.save_best(progress, scores)
                if cadence.checkpoints(step, done):
                    with stop.saving():
                        checkpoint = checkpoints.save(progress)
                if done or stopping:
                    break
        if checkpoint is None or checkpoint.name != checkpoint_name(progress.step):  # not when nothing changed
            with stop.saving():
                checkpoint = checkpoints.save(progress)
    bar.close()
    if log is not None:
        log.close()

    seconds = time.perf_counter() - started
    return TrainResult(
        run_dir=run_dir,
        steps=progress.step,
        metrics=losses,
        checkpoint=checkpoint,
        interrupted=stopping,
        out_of_time=out_of_time and not stopping,
        # a process of a torchrun job that another one's signal stopped reports SIGTERM
        stop_signal=(stop.received or signal.SIGTERM) if stopping else None,
        seconds=seconds,
        steps_per_second=(progress.step - start_step) / seconds if seconds > 0 else 0.0,
    )
