"""The ``i2i`` command line. Errors print one line (a traceback with ``--debug``) and exit non-zero."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import warnings
from typing import Any

import click

from i2i_core import __version__
from i2i_core.analyze import analyze_command
from i2i_core.assignments import parse_assignment
from i2i_core.bench import bench_command
from i2i_core.checkpoint import select_checkpoint
from i2i_core.cli_options import PICK
from i2i_core.demo import demo_command
from i2i_core.errors import I2IError
from i2i_core.eval_command import eval_command
from i2i_core.host.plugins import get_plugin_host
from i2i_core.host.registry import KINDS, list_components
from i2i_core.importers import REFERENCE_ARCHS, SOURCES, import_weights
from i2i_core.infer.export import STORED_DTYPES, export_component, export_onnx
from i2i_core.recipe import load_recipe
from i2i_core.training.loop import train
from i2i_core.training.run_folder import run_dir_of
from i2i_core.translate_command import translate_command


class I2IGroup(click.Group):
    """A click group that adds plugin commands and turns i2i errors into one clear line."""

    _plugin_commands_added = False

    def _add_plugin_commands(self, ctx: click.Context) -> None:
        if self._plugin_commands_added:
            return
        self._plugin_commands_added = True
        if not ctx.params.get("debug"):  # plugins load here, before the group's callback runs
            warnings.showwarning = _show_warning
        host = get_plugin_host()
        for impl in host.pm.hook.register_commands.get_hookimpls():
            try:
                impl.function(cli=self)
            except Exception as exc:  # a broken plugin must not take the command line down
                warnings.warn(f"i2i plugin '{impl.plugin_name}': register_commands failed: {exc}", stacklevel=1)

    def list_commands(self, ctx: click.Context) -> list[str]:
        self._add_plugin_commands(ctx)
        return super().list_commands(ctx)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        self._add_plugin_commands(ctx)
        return super().get_command(ctx, name)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (I2IError, OSError) as exc:
            if ctx.params.get("debug"):
                raise
            raise click.ClickException(str(exc)) from None


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    click.echo(f"Warning: {message}", err=True)


@click.group(cls=I2IGroup)
@click.version_option(__version__, prog_name="i2i")
@click.option("--debug", is_flag=True, help="Show full tracebacks on errors.")
def cli(debug: bool) -> None:
    """i2i: plugin-based image-to-image translation (CycleGAN photo-to-anime and more)."""
    if not debug:
        warnings.showwarning = _show_warning


def _echo_table(rows: list[tuple[str, ...]]) -> None:
    """Print rows in aligned columns; the last column is not padded."""
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    for row in rows:
        click.echo("  ".join([*(cell.ljust(w) for cell, w in zip(row, widths, strict=False)), row[-1]]))


def _dist(distribution: str | None, version: str | None) -> str:
    return f"{distribution or '-'} {version or ''}".strip()


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list of components (of plugins with --plugins).")
@click.option("--kind", type=click.Choice(KINDS), help="Only components of this kind.")
@click.option(
    "--plugins", "show_plugins", is_flag=True, help="List the plugins instead: module, distribution, hooks, error."
)
def plugins(as_json: bool, kind: str | None, show_plugins: bool) -> None:
    """List the components that installed plugins provide (with --plugins: the plugins themselves)."""
    if show_plugins and kind:
        raise click.UsageError("--kind selects components; it cannot be combined with --plugins")
    components = list_components(kind)  # runs every plugin's hooks, so failing hooks are known below
    host = get_plugin_host()
    errors = host.errors
    if show_plugins:
        infos = sorted(host.plugins.values(), key=lambda info: info.name)
        if as_json:
            click.echo(json.dumps([info.to_json() for info in infos], indent=2))
        else:
            rows = [("NAME", "MODULE", "DISTRIBUTION", "HOOKS", "ERROR")]
            rows += [
                (i.name, i.module, _dist(i.distribution, i.version), ",".join(i.hooks) or "-", i.error or "-")
                for i in infos
            ]
            _echo_table(rows)
    elif as_json:
        click.echo(json.dumps([c.to_json() for c in components], indent=2))
    else:
        rows = [("KIND", "NAME", "PLUGIN", "DISTRIBUTION", "SUMMARY")]
        rows += [(c.kind, c.name, c.plugin, _dist(c.distribution, c.version), c.summary) for c in components]
        _echo_table(rows)
    for name, error in errors.items():
        click.echo(f"Plugin '{name}' failed to load: {error}", err=True)


@cli.command("import-weights")
@click.argument("src", type=click.Path(dir_okay=False))
@click.option("-o", "--output", "dst", required=True, type=click.Path(dir_okay=False), help="i2i checkpoint to write.")
@click.option("--from", "source", type=click.Choice(SOURCES), default="cyclegan-reference", show_default=True)
@click.option("--arch", required=True, type=click.Choice(list(REFERENCE_ARCHS)), help="Architecture of SRC.")
@click.option(
    "--option",
    "options",
    multiple=True,
    metavar="KEY=VALUE",
    help="Component option, e.g. dropout=true or ngf=32 (repeatable).",
)
def import_weights_command(src: str, dst: str, source: str, arch: str, options: tuple[str, ...]) -> None:
    """Convert a reference CycleGAN or CUT checkpoint SRC (.pth) into an i2i component checkpoint."""
    parsed = dict(parse_assignment(o) for o in options)
    path = import_weights(src, dst, arch=arch, source=source, options=parsed)
    click.echo(f"Wrote {REFERENCE_ARCHS[arch]} '{arch}' to {path}")


cli.add_command(analyze_command)
cli.add_command(bench_command)
cli.add_command(demo_command)
cli.add_command(eval_command)
cli.add_command(translate_command)


@cli.command()
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
def run(
    recipe: str, overrides: tuple[str, ...], dry_run: bool, restart: bool, progress: bool | None, nproc: int
) -> None:
    """Train the method described by RECIPE (a TOML file), resuming its run folder if it has checkpoints."""
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
    result = train(resolved, restart=restart, show_progress=progress)
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


@cli.group()
def export() -> None:
    """Export a trained generator to other formats."""


@export.command("onnx")
@click.option(
    "-c", "--checkpoint", required=True, help="Run folder, checkpoint folder, generator .safetensors or builtin:NAME."
)
@PICK
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False), help="The .onnx file to write.")
@click.option("--direction", type=click.Choice(["AtoB", "BtoA"]), default="AtoB", show_default=True)
@click.option("--dynamic-size", is_flag=True, help="Free batch size, height and width (else 1x3xSIZExSIZE).")
@click.option("--size", type=click.IntRange(min=16), default=256, show_default=True, help="Input side when fixed.")
@click.option("--opset", type=click.IntRange(min=13), default=17, show_default=True)
def export_onnx_command(
    checkpoint: str, pick: str | None, output: str, direction: str, dynamic_size: bool, size: int, opset: int
) -> None:
    """Export a generator to ONNX and check it against PyTorch with onnxruntime."""
    result = export_onnx(select_checkpoint(checkpoint, pick), output, direction, dynamic_size, size, opset)
    click.echo(f"Wrote {result.path}")
    if result.max_abs_diff is None:
        click.echo("onnxruntime is not installed: the model was not checked (pip install onnxruntime)")
    else:
        shapes = ", ".join("x".join(map(str, s)) for s in result.checked_shapes)
        click.echo(f"Checked with onnxruntime on {shapes}: max abs difference {result.max_abs_diff:.2e}")


@export.command("safetensors")
@click.option(
    "-c", "--checkpoint", required=True, help="Run folder, checkpoint folder, generator .safetensors or builtin:NAME."
)
@PICK
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False), help="The .safetensors file to write.")
@click.option("--direction", type=click.Choice(["AtoB", "BtoA"]), default="AtoB", show_default=True)
@click.option("--dtype", type=click.Choice(list(STORED_DTYPES)), default="fp16", show_default=True)
@click.option("--meta", "extra", multiple=True, metavar="KEY=VALUE", help="Metadata to record (repeatable).")
def export_safetensors_command(
    checkpoint: str, pick: str | None, output: str, direction: str, dtype: str, extra: tuple[str, ...]
) -> None:
    """Export a generator as one component checkpoint file (weights in fp16 by default), as a model is shipped."""
    pairs = [item.split("=", 1) for item in extra]
    if any(len(pair) != 2 or not pair[0] for pair in pairs):
        raise I2IError(f"--meta takes KEY=VALUE, got {', '.join(extra)}")
    path = export_component(select_checkpoint(checkpoint, pick), output, direction, dtype, dict(pairs))
    click.echo(f"Wrote {path} ({path.stat().st_size / 2**20:.1f} MiB, {dtype})")


def main() -> None:
    cli(prog_name="i2i")


if __name__ == "__main__":
    sys.exit(main())
