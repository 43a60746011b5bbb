"""``i2i plugins``: the components installed plugins provide, or the plugins themselves."""

from __future__ import annotations

import json

import click

from i2i_core.host.plugins import get_plugin_host
from i2i_core.host.registry import KINDS, list_components


def _echo_table(rows: list[tuple[str, ...]]) -> None:
    """Print rows in aligned columns; the last column is not padded."""
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    for row in rows:
        click.echo("  ".join([*(cell.ljust(w) for cell, w in zip(row, widths, strict=False)), row[-1]]))


def _dist(distribution: str | None, version: str | None) -> str:
    return f"{distribution or '-'} {version or ''}".strip()


@click.command("plugins")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list of components (of plugins with --plugins).")
@click.option("--kind", type=click.Choice(KINDS), help="Only components of this kind.")
@click.option(
    "--plugins", "show_plugins", is_flag=True, help="List the plugins instead: module, distribution, hooks, error."
)
def plugins_command(as_json: bool, kind: str | None, show_plugins: bool) -> None:
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
