"""``i2i run``: train the method a recipe describes, resuming its run folder (on several processes through
torchrun with ``--nproc``)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import click


@click.command("run")
@click.argument("recipe", type=click.Path(dir_okay=False))
@click.option(
    "--set",
    "overrides",
    multiple=True,
    metavar="KEY=VALUE",
    help="Override a recipe value, e.g. --set train.steps=100 --set data.root=/data (repeatable).",
)
@click.option("--dry-run", is_flag=True, help="Print the resolved recipe and the components it builds, then stop.")
@click.option("--restart", is_flag=True, help="Start over: delete the run folder's checkpoints, samples and metrics.")
@click.option("--progress/--no-progress", default=None, help="Progress bar (default: when the output is a terminal).")
@click.option("--nproc", type=click.IntRange(min=1), default=1, help="Processes on this machine, through torchrun.")
def run_command(
    recipe: str, overrides: tuple[str, ...], dry_run: bool, restart: bool, progress: bool | None, nproc: int
) -> None:
    """Train the method described by RECIPE (a TOML file), resuming its run folder if it has checkpoints."""
    from i2i_core.recipe import load_recipe
    from i2i_core.training.loop import train
    from i2i_core.training.run_folder import run_dir_of

    resolved = load_recipe(recipe, overrides)
    if nproc > 1 and not dry_run:
        args = ["--standalone", f"--nproc_per_node={nproc}", "-m", "i2i_core", "run"]
        args += _command_line(click.get_current_context(), leave_out={"nproc"})
        code = subprocess.call([sys.executable, "-m", "torch.distributed.run", *args])
        if code:
            raise click.exceptions.Exit(code)
        return
    if dry_run:
        resolved.check_networks()
        click.echo(resolved.to_toml())
        for note in resolved.notes:
            click.echo(f"# {note}")
        click.echo(f"# run folder: {run_dir_of(resolved)}")
        click.echo(f"# method: {resolved['method']}")
        for table, (kind, name_key) in resolved.schema.component_tables.items():
            dotted = ".".join(table)
            options = json.dumps(resolved.component_options(*table))
            click.echo(f"# {dotted}: {kind} '{resolved[f'{dotted}.{name_key}']}' {options}")
        return
    try:
        result = train(resolved, restart=restart, show_progress=progress)
    except KeyboardInterrupt:  # a second Ctrl-C, or one before training started: stop at once, as a signal does
        if int(os.environ.get("RANK", "0")) == 0:
            click.echo(_stopped_at_once(run_dir_of(resolved)))
        raise click.exceptions.Exit(128 + signal.SIGINT) from None
    if int(os.environ.get("RANK", "0")) == 0:  # under torchrun, rank 0 reports
        how = (
            "Stopped by a signal"
            if result.interrupted
            else f"Stopped at the time budget (train.minutes = {resolved['train.minutes']:g})"
            if result.out_of_time
            else "Finished"
        )
        click.echo(
            f"{how} at step {result.steps} after {result.seconds:.0f} s ({result.steps_per_second:.2f} steps/s).\n"
            f"  run folder: {result.run_dir}\n  samples:    {result.run_dir / 'samples'}\n"
            f"  checkpoint: {result.checkpoint}"
        )
        if result.interrupted:
            click.echo("Run the same command again to resume from this checkpoint.")
    if result.stop_signal is not None:  # not finished: exit as a shell reports a signal (130 SIGINT, 143 SIGTERM)
        raise click.exceptions.Exit(128 + result.stop_signal)


def _stopped_at_once(run_dir: Path) -> str:
    """What a run stopped at once by Ctrl-C left: its run folder's last complete checkpoint (written atomically,
    so an interrupted save leaves the one before)."""
    from i2i_core.checkpoint import list_checkpoints

    checkpoints = list_checkpoints(run_dir / "checkpoints")
    if not checkpoints:
        return f"Stopped at once by Ctrl-C: the run folder {run_dir} has no checkpoint yet; run the command again."
    return (
        f"Stopped at once by Ctrl-C: the run folder {run_dir} is left at its last complete checkpoint, "
        f"{checkpoints[-1].name}; run the same command again to resume from it."
    )


def _command_line(ctx: click.Context, leave_out: set[str]) -> list[str]:
    """The arguments that give ``ctx``'s command its current parameters again, but those in ``leave_out``."""
    args: list[str] = []
    for param in ctx.command.params:
        value = ctx.params.get(param.name)
        if param.name in leave_out or value is None:
            continue
        if isinstance(param, click.Argument):
            args += [str(v) for v in value] if param.multiple else [str(value)]
        elif isinstance(param, click.Option) and param.is_flag:
            if param.secondary_opts:
                args.append(param.opts[0] if value else param.secondary_opts[0])
            elif value:
                args.append(param.opts[0])
        elif isinstance(param, click.Option):
            values = value if param.multiple else [value]
            args += [a for v in values for a in (param.opts[0], str(v))]
    return args
