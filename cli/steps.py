"""`augment list`: every registered method and filter with its parameters, defaults and help.

Printed from the steps' config dataclasses (augment/steps.py), so it cannot drift from the code.
"""

from __future__ import annotations

import json

import click


def _show(value: object) -> str:
    return json.dumps(value, ensure_ascii=False) if value is not None else "-"


@click.command("list")
@click.argument("kind", required=False, type=click.Choice(["methods", "filters"]))
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def list_command(kind: str | None, as_json: bool) -> None:
    """List the augmentation methods and filters, with their parameters.

    Set a method's parameter with `-P METHOD.KEY=VALUE` or `methods.params` in the config file;
    a filter's with its flag or the `filters` section (the names below)."""
    from augment import steps

    kinds = [kind[:-1]] if kind else ["method", "filter"]
    data = {
        k: [
            {"name": s.name, "summary": s.summary, "parameters": s.parameters()}
            for s in steps.specs(k)
        ]
        for k in kinds
    }
    if as_json:
        click.echo(json.dumps(data, ensure_ascii=False, indent=2, default=str))
        return
    for k in kinds:
        click.echo(f"{k}s:")
        for entry in data[k]:
            click.echo(f"  {entry['name']}: {entry['summary']}".rstrip(": "))
            for p in entry["parameters"]:
                help_ = f"  {p['help']}" if p["help"] else ""
                click.echo(f"      {p['name']} ({p['type']}) = {_show(p['default'])}{help_}")
        click.echo()
