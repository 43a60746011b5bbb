"""The ``i2i`` command line. Errors print one line (a traceback with ``--debug``) and exit non-zero."""

from __future__ import annotations

import json
import sys
import warnings
from typing import Any

import click

from i2i_core import __version__
from i2i_core.assignments import parse_assignment
from i2i_core.errors import I2IError
from i2i_core.importers import REFERENCE_ARCHS, SOURCES, import_weights
from i2i_core.plugins import get_plugin_host
from i2i_core.registry import KINDS, list_components


class I2IGroup(click.Group):
    """A click group that adds plugin commands and turns i2i errors into one clear line."""

    _plugin_commands_added = False

    def _add_plugin_commands(self) -> None:
        if self._plugin_commands_added:
            return
        self._plugin_commands_added = True
        host = get_plugin_host()
        for impl in host.pm.hook.register_commands.get_hookimpls():
            try:
                impl.function(cli=self)
            except Exception as exc:  # a broken plugin must not take the command line down
                warnings.warn(f"i2i plugin '{impl.plugin_name}': register_commands failed: {exc}", stacklevel=1)

    def list_commands(self, ctx: click.Context) -> list[str]:
        self._add_plugin_commands()
        return super().list_commands(ctx)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        self._add_plugin_commands()
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


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list of components.")
@click.option("--kind", type=click.Choice(KINDS), help="Only components of this kind.")
def plugins(as_json: bool, kind: str | None) -> None:
    """List the components that installed plugins provide."""
    components = list_components(kind)
    errors = get_plugin_host().errors
    if as_json:
        click.echo(json.dumps([c.to_json() for c in components], indent=2))
    else:
        rows = [("KIND", "NAME", "PLUGIN", "DISTRIBUTION", "SUMMARY")]
        rows += [
            (c.kind, c.name, c.plugin, f"{c.distribution or '-'} {c.version or ''}".strip(), c.summary)
            for c in components
        ]
        widths = [max(len(r[i]) for r in rows) for i in range(4)]
        for row in rows:
            click.echo("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=False)) + "  " + row[4])
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
    """Convert a reference CycleGAN checkpoint SRC (.pth) into an i2i component checkpoint."""
    parsed = dict(parse_assignment(o) for o in options)
    path = import_weights(src, dst, arch=arch, source=source, options=parsed)
    click.echo(f"Wrote {REFERENCE_ARCHS[arch]} '{arch}' to {path}")


def main() -> None:
    cli(prog_name="i2i")


if __name__ == "__main__":
    sys.exit(main())
