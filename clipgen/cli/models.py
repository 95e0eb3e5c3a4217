"""``clipgen models``: list, download, verify and locate pretrained weights.

Mounted by :mod:`clipgen.cli.app` as ``app.add_typer(models_app, name="models")``. The
library (:mod:`clipgen.weights`) reports progress through a callback, drawn here by
:class:`clipgen.cli.progress.DownloadBar`, and is told whether it may go online: this is
the edge where the environment is read for that. Errors are raised, not printed: the app's
``main`` turns every :class:`ClipgenError` into one line on stderr and exit status 2.
"""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from clipgen import weights
from clipgen.cli.console import stderr_console, stdout_console
from clipgen.errors import MissingWeightsError, ModelError

models_app = typer.Typer(help="List, download and verify pretrained weights.", no_args_is_help=True)

NameArg = Annotated[str, typer.Argument(help="Model name (see: clipgen models list).")]


@models_app.command("list")
def models_list() -> None:
    """Name, kind, size and whether it is downloaded, for every registered model."""
    from rich.table import Table

    table = Table("name", "kind", "size", "cached", "description")
    for entry in weights.entries():
        statuses = weights.file_status(entry)
        if all(s.present for s in statuses):
            cached = "yes" if all(s.recorded for s in statuses) else "yes (not yet verified)"
        elif any(s.present or s.partial_bytes for s in statuses):
            cached = "partial"
        else:
            cached = "no"
        size = weights.human_size(entry.size, approx=not entry.exact_size)
        table.add_row(entry.name, entry.kind, size, cached, entry.description)
    console = stdout_console()
    console.print(table)
    console.print(f"cache: {weights.cache_dir()}  (set CLIPGEN_HOME to move it)", markup=False)


@models_app.command("download")
def models_download(
    names: Annotated[list[str], typer.Argument(help="Model name(s) (see: clipgen models list), e.g. "
                                                    "dalle-mini dalle-vqgan.")],
    force: Annotated[bool, typer.Option("--force", help="Fetch again even if cached and verified.")] = False,
) -> None:
    """Download models (resumable; every file is verified before it is kept)."""
    # Lazy: both pull in torch, which `clipgen --help` and `models list` need not pay for.
    from clipgen.cli.progress import DownloadBar
    from clipgen.config.settings import offline_from_environment

    # Every name is checked before anything downloads: a typo in the second fails at once.
    entries = [weights.get_entry(name) for name in names]
    console = stderr_console()
    for entry in entries:
        with DownloadBar(console) as bar:
            paths = weights.download(entry, offline=offline_from_environment(), progress=bar, force=force)
        console.print(f"{entry.name}: {len(paths)} file(s) verified in {weights.entry_dir(entry)}", markup=False)


@models_app.command("verify")
def models_verify(
    name: Annotated[Optional[str], typer.Argument(help="Model name; default: every downloaded model.")] = None,
) -> None:
    """Re-hash downloaded files against the published (or recorded) SHA-256."""
    from clipgen.cli.progress import DownloadBar

    if name is not None:
        targets = [weights.get_entry(name)]
    else:
        targets = [e for e in weights.entries() if any(s.present for s in weights.file_status(e))]
        if not targets:
            stderr_console().print("no models are downloaded; nothing to verify", markup=False)
            return
    failures = []
    console = stdout_console()
    for entry in targets:
        try:
            with DownloadBar(stderr_console()) as bar:
                digests = weights.verify(entry, progress=bar)
        except ModelError as exc:  # MissingWeightsError included
            failures.append(exc)
            console.print(f"{entry.name}: FAILED", markup=False)
            continue
        for filename, digest in digests.items():
            published = entry.file(filename).sha256 is not None
            how = "matches the published digest" if published else "matches the digest recorded at download"
            console.print(f"{entry.name}/{filename}: ok, sha256 {digest} ({how})", markup=False)
    if len(failures) == 1:
        raise failures[0]
    if failures:
        raise ModelError(f"{len(failures)} models failed verification; first: {failures[0]}")


@models_app.command("path")
def models_path(name: NameArg) -> None:
    """Print the folder holding a downloaded model (an error if it is not downloaded)."""
    entry = weights.get_entry(name)
    for status in weights.file_status(entry):
        if not status.present:
            raise MissingWeightsError(
                f"{entry.name} is not downloaded ({status.path} is missing); "
                f"run: clipgen models download {entry.name}"
            )
    typer.echo(str(weights.entry_dir(entry)))


@models_app.command("convert")
def models_convert(
    name: NameArg,
    trust_checkpoint: Annotated[bool, typer.Option(
        "--trust-checkpoint",
        help="Unpickle files that have no pinned SHA-256 (copied in by hand rather than downloaded by clipgen).",
    )] = False,
) -> None:
    """Convert a pickled model (dalle-dvae) once to safetensors, so runs never unpickle it."""
    from clipgen.generators.dvae.loader import convert_entry

    entry = weights.get_entry(name)
    written = convert_entry(entry.name, trust_checkpoint=trust_checkpoint)
    for path in written:
        typer.echo(str(path))  # one path per line, never wrapped: scripts read these
    stderr_console().print(f"{entry.name}: converted; runs now load these instead of the .pkl files", markup=False)
