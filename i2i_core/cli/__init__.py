"""The ``i2i`` command line. Errors print one line (a traceback with ``--debug``) and exit non-zero.

Each command is a module of this package (a group for ``export``); plugins add theirs through the
``register_commands`` hook. Commands import what they run when they run, so the command line starts fast.
"""

from __future__ import annotations

import warnings
from typing import Any

import click

from i2i_core.cli.analyze import analyze_command
from i2i_core.cli.bench import bench_command
from i2i_core.cli.demo import demo_command
from i2i_core.cli.eval import eval_command
from i2i_core.cli.export import export_group
from i2i_core.cli.import_weights import import_weights_command
from i2i_core.cli.plugins import plugins_command
from i2i_core.cli.run import run_command
from i2i_core.cli.translate import translate_command
from i2i_core.errors import I2IError
from i2i_core.host.plugins import get_plugin_host
from i2i_core.version import __version__


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


cli.add_command(analyze_command)
cli.add_command(bench_command)
cli.add_command(demo_command)
cli.add_command(eval_command)
cli.add_command(export_group)
cli.add_command(import_weights_command)
cli.add_command(plugins_command)
cli.add_command(run_command)
cli.add_command(translate_command)


def main() -> None:
    cli(prog_name="i2i")
