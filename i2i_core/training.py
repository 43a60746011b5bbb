"""The training engine: a run of any training method from a recipe, top to bottom, resumable at any step.

``train(recipe)`` builds the method (its networks, losses and optimisers) and the data, resumes from the run folder's latest complete
checkpoint if there is one, then loops: learning rate, one step, metrics, samples, checkpoints. SIGINT and
SIGTERM save a checkpoint and stop cleanly. The run folder is locked for the whole run.
"""

from __future__ import annotations

import contextlib
import fcntl
import inspect
import json
import math
import os
import shutil
import signal
import sys
import threading
import time
import tomllib
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import torch
from safetensors.torch import load_file
from torch import nn
from torch.utils.data import DataLoader, Dataset

from i2i_core import distributed
from i2i_core.autotune import Layout, choose_layout
from i2i_core.checkpoint import (
    atomic_write_bytes,
    checkpoint_name,
    list_checkpoints,
    load_state_dict_checked,
    network_file,
    read_metadata,
)
from i2i_core.errors import CheckpointError, I2IError
from i2i_core.method import Method, NetworkSpec
from i2i_core.monitors import CollapseMonitor, DiscriminatorMonitor
from i2i_core.precision import resolve_device, resolve_precision
from i2i_core.recipe import Recipe, with_defaults
from i2i_core.registry import create, get_component
from i2i_core.samples import save_sample_grid
from i2i_core.training_checkpoint import (
    Progress,
    prune_checkpoints,
    read_training_checkpoint,
    recover_checkpoints,
    restore_training_checkpoint,
    save_training_checkpoint,
    set_aside,
)

#: The file of a run folder that a running ``i2i run`` holds locked.
LOCK_FILE = "run.lock"
#: What ``--restart`` deletes from a run folder.
RESULTS = ("checkpoints", "samples", "reports", "tensorboard", "metrics.jsonl")


@dataclass
class TrainResult:
    """Where a run went and how it ended."""

    run_dir: Path
    steps: int
    metrics: dict[str, float] = field(default_factory=dict)
    checkpoint: Path | None = None
    interrupted: bool = False
    stop_signal: int | None = None  # the signal that stopped an interrupted run (SIGINT or SIGTERM)
    seconds: float = 0.0
    steps_per_second: float = 0.0


# -- building -----------------------------------------------------------------------------------------------


def build_trainer(recipe: Recipe, device: str | torch.device | None = None, layout: Layout | None = None) -> Method:
    """The recipe's training method (networks, losses, optimisers), with starting weights loaded, on its device
    and precision (``layout``: how the networks run, by default :func:`compute_layout`).

    Example:
        >>> method = build_trainer(load_recipe("recipes/quickstart.toml"))  # doctest: +SKIP
        >>> losses = method.train_step({"A": real_A, "B": real_B})  # doctest: +SKIP
    """
    device = torch.device(device) if device is not None else resolve_device(recipe["train.device"])
    layout = layout or compute_layout(recipe, device)
    torch.manual_seed(recipe["train.seed"])  # deterministic initialisation
    method = recipe.method.from_recipe(recipe, device, layout)
    for net, path in starting_weights(recipe, method.network_specs).items():
        load_starting_weights(method.networks[net], path, method.network_specs[net])
    return method


def compute_layout(recipe: Recipe, device: torch.device) -> Layout:
    """The precision and memory format the recipe's networks train in on ``device``: as the recipe sets them, and
    for ``auto`` what trains its generator fastest there (measured once per machine, see :mod:`i2i_core.autotune`)."""
    precision, memory_format = recipe["train.precision"], recipe["train.memory_format"]
    if precision != "auto" or int(os.environ.get("WORLD_SIZE", "1")) > 1:
        # under torchrun every process must run the same layout: the rule by CPU flags, not a measurement
        precision = resolve_precision(precision, device)  # refuses fp16 without CUDA
        memory_format = (
            memory_format if memory_format != "auto" else "channels_last" if precision == "bf16" else "contiguous"
        )
    name, options = recipe["model.generator.name"], recipe.component_options("model", "generator")
    return choose_layout(
        lambda: recipe.create("model", "generator"),
        f"generator {name} {json.dumps(options, sort_keys=True)}",
        recipe["data.crop_size"],
        device,
        precision,
        memory_format,
    )


def starting_weights(recipe: Recipe, specs: dict[str, NetworkSpec]) -> dict[str, Path]:
    """Network -> the file its weights start from (``model.<network>.init_from``, else that of the table of its
    kind: ``model.generator.init_from``...), for the networks that have one."""
    files = {}
    for net, (kind, _, _) in specs.items():
        path = recipe.get(f"model.{net}.init_from") or recipe.get(f"model.{kind}.init_from")
        if path:
            files[net] = network_file(path, net)
    return files


def load_starting_weights(module: nn.Module, path: Path, spec: NetworkSpec) -> None:
    """Load a component checkpoint into ``module``, after checking it holds the same component and options."""
    kind, name, options = spec
    meta = read_metadata(path)
    saved_options = json.loads(meta.get("options", "{}"))
    defaults = {k: v for k, v in get_component(kind, name).options().items() if v is not inspect.Parameter.empty}
    if (meta.get("kind"), meta.get("name"), {**defaults, **saved_options}) != (kind, name, {**defaults, **options}):
        raise I2IError(
            f"init_from {path}: holds {meta.get('kind')} '{meta.get('name')}' with options {saved_options}, but "
            f"the recipe builds {kind} '{name}' with options {options}; make them match"
        )
    load_state_dict_checked(module, load_file(str(path)), source=f"init_from {path}")


def build_dataset(recipe: Recipe, split: str) -> Dataset:
    """The recipe's dataset component for ``split`` (``train`` or ``test``)."""
    return create("dataset", recipe["data.dataset"], split=split, **recipe.component_options("data"))


# -- schedule -----------------------------------------------------------------------------------------------


def linear_decay(t: int, n_constant: int, n_decay: int) -> float:
    """The reference's "linear" policy for 1-based period ``t``: 1 for ``n_constant`` periods, then linear
    decay over ``n_decay``: ``1 - max(0, t - n_constant) / (n_decay + 1)``."""
    return 1.0 - max(0, t - n_constant) / (n_decay + 1)


@dataclass(frozen=True)
class Schedule:
    """Length of a run and its learning rate at each step.

    With ``train.steps`` unset: ``epochs + decay_epochs`` epochs, the rate decaying per epoch as the reference.
    With ``train.steps``: that many steps, the rate decaying per step over the second half. The first
    ``train.d_pretrain_steps`` steps train only the discriminators, at the initial rate, before either count.
    """

    steps_per_epoch: int
    adversarial_steps: int
    lr: float
    decay: str
    epochs: int
    decay_epochs: int
    by_steps: bool
    pretrain_steps: int = 0

    @classmethod
    def from_recipe(cls, recipe: Recipe, dataset_size: int) -> Schedule:
        steps_per_epoch = math.ceil(dataset_size / recipe["train.batch_size"])
        steps = recipe["train.steps"]
        epochs, decay_epochs = recipe["train.epochs"], recipe["train.decay_epochs"]
        adversarial = steps if steps else (epochs + decay_epochs) * steps_per_epoch
        return cls(
            steps_per_epoch,
            adversarial,
            recipe["train.lr"],
            recipe["train.decay"],
            epochs,
            decay_epochs,
            bool(steps),
            recipe["train.d_pretrain_steps"],
        )

    @property
    def total_steps(self) -> int:
        return self.pretrain_steps + self.adversarial_steps

    def pretraining(self, step: int) -> bool:
        """Whether 0-based step ``step`` trains the discriminators alone."""
        return step < self.pretrain_steps

    def lr_at(self, step: int) -> float:
        """Learning rate of 0-based step ``step``."""
        step = max(0, step - self.pretrain_steps)
        if self.decay == "none":
            return self.lr
        if self.by_steps:
            n_decay = self.adversarial_steps // 2
            return self.lr * linear_decay(step + 1, self.adversarial_steps - n_decay, n_decay)
        return self.lr * linear_decay(step // self.steps_per_epoch + 1, self.epochs, self.decay_epochs)


def epoch_order(seed: int, epoch: int, size: int) -> list[int]:
    """The shuffled order of an epoch, from its own generator: a resumed run sees the same order."""
    generator = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    return torch.randperm(size, generator=generator).tolist()


def fixed_sample_batch(recipe: Recipe, train_set: Dataset) -> dict[str, torch.Tensor]:
    """The images every sample grid shows: the first test pairs, or fixed training crops without a test split."""
    count = recipe["output.num_samples"]
    try:
        dataset = build_dataset(recipe, "test")
    except I2IError as exc:
        warnings.warn(f"sample grids use training images: {exc}", stacklevel=2)
        dataset = train_set
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        items = [dataset[i] for i in range(min(count, len(dataset)))]
    return {"A": torch.stack([it["A"] for it in items]), "B": torch.stack([it["B"] for it in items])}


# -- run folder ---------------------------------------------------------------------------------------------


def run_dir_of(recipe: Recipe) -> Path:
    return Path(recipe["output.dir"] or Path("runs") / recipe.name)


def _is_run_folder(run_dir: Path) -> bool:
    """Whether ``run_dir`` holds a recipe that i2i stored (a TOML file with the recipe's tables) and checkpoints/."""
    try:
        stored = tomllib.loads((run_dir / "recipe.toml").read_text())
    except (OSError, ValueError):
        return False
    return {"data", "model", "train", "output"} <= set(stored) and (run_dir / "checkpoints").is_dir()


def _check_restartable(run_dir: Path) -> None:
    """Refuse ``--restart`` (which deletes results) in a folder that is neither new, empty nor an i2i run folder."""
    if not run_dir.exists() or _is_run_folder(run_dir):
        return
    if run_dir.is_dir() and all(p.name == LOCK_FILE for p in run_dir.iterdir()):
        return
    raise I2IError(
        f"--restart would delete {', '.join(RESULTS)} in {run_dir}, which is not an i2i run folder (no recipe.toml "
        "and checkpoints/ of a run); choose another output.dir, or clear it yourself"
    )


class _RunFolderLock:
    """An exclusive ``fcntl.flock`` on the run folder's ``run.lock`` (which names the holder's pid), held for a
    whole run: a second ``i2i run`` on the same folder fails at once."""

    def __init__(self, run_dir: Path) -> None:
        self.path = run_dir / LOCK_FILE
        self.file: IO[str] | None = None

    def __enter__(self) -> _RunFolderLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        file = open(self.path, "a+")  # closed by __exit__, which releases the lock
        try:
            fcntl.flock(file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            file.seek(0)
            holder = file.read().strip()
            file.close()
            raise I2IError(
                f"run folder {self.path.parent} is in use by {f'pid {holder}' if holder else 'another process'}: "
                "wait for that run to end, or stop it"
            ) from None
        file.truncate(0)
        file.write(f"{os.getpid()}\n")
        file.flush()
        self.file = file
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.file is not None:
            self.file.close()


@contextlib.contextmanager
def _run_folder(run_dir: Path, restart: bool, job: distributed.Distributed) -> Iterator[None]:
    """Hold the run folder for a run (rank 0 locks it): checked, locked, emptied of results with ``restart``,
    and tidied of what a run that died while saving left."""
    if not job.is_main:
        job.barrier()
        yield
        return
    if restart:
        _check_restartable(run_dir)
    with _RunFolderLock(run_dir):
        if restart:
            for name in RESULTS:
                path = run_dir / name
                shutil.rmtree(path) if path.is_dir() else path.unlink(missing_ok=True)
        recover_checkpoints(run_dir / "checkpoints")
        job.barrier()
        yield


def _resume(
    run_dir: Path, trainer: Method, method: str, job: distributed.Distributed
) -> tuple[Progress, Path | None]:
    """Restore the latest checkpoint that reads back whole into ``trainer``: its progress and path (``Progress()``
    and None without checkpoints).

    A newer checkpoint that does not read back (a torn or corrupt file) is renamed ``step_XXXXXXX.corrupt``,
    with a warning. When none reads back, the error names the newest and nothing is changed.
    """
    corrupt: dict[Path, CheckpointError] = {}
    found = None
    for path in reversed(list_checkpoints(run_dir / "checkpoints")):
        try:
            found = read_training_checkpoint(path, trainer, method)
            break
        except CheckpointError as exc:
            corrupt[path] = exc
    if found is None and corrupt:
        raise CheckpointError(
            f"{next(iter(corrupt.values()))} (and no earlier checkpoint in {run_dir / 'checkpoints'} reads back): "
            "repair it, or start over with --restart"
        )
    job.barrier()  # every process has read its checkpoint before a corrupt one is renamed
    if job.is_main:
        for path, exc in corrupt.items():
            kept = set_aside(path, ".corrupt")
            warnings.warn(f"{exc}; kept as {kept.name}, resuming from {found.path.name}", stacklevel=3)
    if found is None:
        return Progress(), None
    return restore_training_checkpoint(found, trainer), found.path


def _start_run_folder(run_dir: Path, recipe: Recipe, step: int, resumed: bool) -> None:
    """Once a run is built and resumed: store its recipe (warning when it changed), make the output folders and
    drop the metric lines after ``step``."""
    stored = run_dir / "recipe.toml"
    if resumed and stored.is_file() and not _same_recipe(stored, recipe):
        warnings.warn(
            f"the recipe differs from the one {run_dir} was started with; resuming with the new one "
            "(use --restart to start over)",
            stacklevel=3,
        )
    atomic_write_bytes(stored, recipe.to_toml().encode())
    for folder in ("checkpoints", "samples"):
        (run_dir / folder).mkdir(exist_ok=True)
    _truncate_metrics(run_dir / "metrics.jsonl", step)


def _same_recipe(stored: Path, recipe: Recipe) -> bool:
    """Whether the recipe stored in a run folder resolves to ``recipe`` (one stored before a default was added,
    such as ``method``, still does)."""
    text = stored.read_text()
    if text == recipe.to_toml():
        return True
    try:
        return with_defaults(tomllib.loads(text), str(stored)) == recipe.values
    except (ValueError, I2IError):
        return False


def _truncate_metrics(path: Path, step: int) -> None:
    """Keep the metric lines up to ``step``, the step a run resumes from (0 when it starts afresh), so that no
    step is logged twice; a torn line (a run killed while writing it) is dropped with a warning."""
    if not path.is_file():
        return
    kept = []
    for number, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
        try:
            line_step = json.loads(line)["step"] if line else None
        except (ValueError, KeyError, TypeError):
            warnings.warn(f"{path}: line {number} is torn or not a metric line; dropped", stacklevel=4)
            continue
        if line_step is not None and line_step <= step:
            kept.append(line + "\n")
    atomic_write_bytes(path, "".join(kept).encode())


class _StopSignals:
    """Turn SIGINT/SIGTERM into a request to stop after the current step (a second SIGINT stops at once)."""

    def __init__(self) -> None:
        self.received: int | None = None
        self._previous: dict[int, Any] = {}

    def _handle(self, signum: int, frame: Any) -> None:
        if self.received is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.received = signum

    def __enter__(self) -> _StopSignals:
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc: Any) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


def _tensorboard(run_dir: Path) -> Any:
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:  # optional extra
        return None
    return SummaryWriter(str(run_dir / "tensorboard"))


def _progress_bar(total: int, initial: int, show: bool | None) -> Any:
    from tqdm.auto import tqdm

    return tqdm(
        total=total,
        initial=initial,
        unit="step",
        dynamic_ncols=True,
        disable=not (sys.stderr.isatty() if show is None else show),
    )


class RunLog:
    """``metrics.jsonl`` (and TensorBoard scalars of ``loss_names`` and the learning rate when available): metric
    lines and warnings, by step."""

    def __init__(self, run_dir: Path, loss_names: tuple[str, ...]) -> None:
        self.file = open(run_dir / "metrics.jsonl", "a")  # noqa: SIM115 (closed by close())
        self.tensorboard = _tensorboard(run_dir)
        self.loss_names = loss_names

    def metrics(self, record: dict[str, Any]) -> None:
        self.file.write(json.dumps(record) + "\n")
        self.file.flush()
        if self.tensorboard is not None:
            for name in (*self.loss_names, "lr"):
                if name in record:
                    self.tensorboard.add_scalar(f"loss/{name}" if name != "lr" else "lr", record[name], record["step"])

    def warning(self, step: int, message: str) -> None:
        """Warn now (once per call) and keep the warning in ``metrics.jsonl``."""
        warnings.warn(message, RuntimeWarning, stacklevel=3)
        self.metrics({"step": step, "warning": message})

    def images(self, tag: str, images: torch.Tensor, step: int) -> None:
        if self.tensorboard is not None:
            self.tensorboard.add_images(tag, images * 0.5 + 0.5, step)

    def close(self) -> None:
        self.file.close()
        if self.tensorboard is not None:
            self.tensorboard.close()


# -- the loop -----------------------------------------------------------------------------------------------


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
    specs = trainer.network_specs
    reporters = {name: create("reporter", name) for name in recipe["report.reporters"]}
    schedule = Schedule.from_recipe(recipe, math.ceil(len(train_set) / job.world_size))
    out = recipe.values["output"]
    seed, batch_size = recipe["train.seed"], recipe["train.batch_size"]

    with _run_folder(run_dir, restart, job), _StopSignals() as stop:
        progress, resume_from = _resume(run_dir, trainer, recipe["method"], job)
        if job.is_main:
            _start_run_folder(run_dir, recipe, progress.step, resumed=resume_from is not None)
            if resume_from is not None:
                print(f"Resuming {run_dir} from step {progress.step} ({resume_from.name})", file=sys.stderr)
        if job.enabled:
            trainer.distribute()
            # every rank draws its own augmentations and pool choices (rank 0's weights are broadcast)
            torch.manual_seed(seed + 1_000_003 * job.rank + progress.step)
            trainer.reseed(seed, job.rank, progress.step)
        log = RunLog(run_dir, trainer.loss_names) if job.is_main else None
        collapse, discriminators = CollapseMonitor(), DiscriminatorMonitor(trainer.discriminator_losses)
        bar = _progress_bar(schedule.total_steps, progress.step, show_progress if job.is_main else False)
        losses: dict[str, float] = {}
        checkpoint = resume_from
        start_step, started = progress.step, time.perf_counter()
        window_start, window_steps = started, 0

        def save_checkpoint() -> Path:
            path = run_dir / "checkpoints" / checkpoint_name(progress.step)
            if job.is_main:
                extra = {"lr": schedule.lr_at(max(progress.step - 1, 0)), "recipe": recipe.name}
                extra.update(world_size=job.world_size, method=recipe["method"])
                path = save_training_checkpoint(run_dir / "checkpoints", trainer, progress, specs, extra)
                prune_checkpoints(run_dir / "checkpoints", out["keep_last"])
            job.barrier()
            return path

        def save_samples(log: RunLog) -> None:
            step = progress.step
            images = {"real_A": sample_batch["A"], "real_B": sample_batch["B"]}
            images.update(trainer.sample_images(sample_batch))
            save_sample_grid(run_dir / "samples" / f"step_{step:07d}.png", images, trainer.sample_columns)
            translations = trainer.translations
            for name, reporter in reporters.items():
                folder = run_dir / "reports" / name / f"step_{step:07d}"
                for direction, t in translations.items():
                    reporter.report({t.source: images[t.source], t.output: images[t.output]}, folder / direction)
            log.images("samples", torch.cat([images[t.output] for t in translations.values()]), step)
            if not schedule.pretraining(step - 1):
                for t in translations.values():
                    if message := collapse.check(t.network, images[t.source], images[t.output], step):
                        log.warning(step, message)

        trainer.train()
        stopping = False
        while progress.step < schedule.total_steps and not stopping:
            order = job.shard(epoch_order(seed, progress.epoch, len(train_set)))
            loader = DataLoader(
                train_set,
                batch_size=batch_size,
                sampler=order[progress.batch_in_epoch * batch_size :],
                num_workers=recipe["train.num_workers"],
                # its own generator: creating a loader must not draw from the global RNG, or a resumed run
                # (which creates one more) would diverge from an uninterrupted one
                generator=torch.Generator().manual_seed(seed + progress.epoch),
            )
            for batch in loader:
                pretraining = schedule.pretraining(progress.step)
                trainer.set_lr(schedule.lr_at(progress.step))
                losses = trainer.pretrain_step(batch) if pretraining else trainer.train_step(batch)
                progress.step += 1
                progress.batch_in_epoch += 1
                if progress.batch_in_epoch == schedule.steps_per_epoch:
                    progress.epoch, progress.batch_in_epoch = progress.epoch + 1, 0
                window_steps += 1
                bar.update(1)
                bar.set_postfix({k: f"{v:.3f}" for k, v in losses.items() if k in trainer.shown_losses}, refresh=False)
                step, done = progress.step, progress.step >= schedule.total_steps
                stopping = job.any(stop.received is not None)
                if log is not None:
                    if not pretraining:
                        for message in discriminators.check(losses, step):
                            log.warning(step, message)
                    if out["log_every"] and (step % out["log_every"] == 0 or done):
                        now = time.perf_counter()
                        phase = {"phase": "d_pretrain"} if pretraining else {}
                        log.metrics(
                            {
                                "step": step,
                                "epoch": progress.epoch + 1,
                                **phase,
                                **losses,
                                "lr": schedule.lr_at(step - 1),
                                "steps_per_s": window_steps / (now - window_start),
                            }
                        )
                        window_start, window_steps = now, 0
                    if out["sample_every"] and (step % out["sample_every"] == 0 or done):
                        save_samples(log)
                if out["checkpoint_every"] and step % out["checkpoint_every"] == 0 and not done:
                    checkpoint = save_checkpoint()
                if done or stopping:
                    break
        if checkpoint is None or checkpoint.name != checkpoint_name(progress.step):  # not when nothing changed
            checkpoint = save_checkpoint()
    bar.close()
    if log is not None:
        log.close()

    seconds = time.perf_counter() - started
    done_steps = progress.step - start_step
    result = TrainResult(
        run_dir=run_dir,
        steps=progress.step,
        metrics=losses,
        checkpoint=checkpoint,
        interrupted=stopping,
        # a process of a torchrun job that another one's signal stopped reports SIGTERM
        stop_signal=(stop.received or signal.SIGTERM) if stopping else None,
        seconds=seconds,
        steps_per_second=done_steps / seconds if seconds > 0 else 0.0,
    )
    return result
