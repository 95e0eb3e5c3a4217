"""``clipgen models``: list, download, verify and locate pretrained weights.

Mounted by :mod:`clipgen.cli.app` as ``app.add_typer(models_app, name="models")``. The
library (:mod:`clipgen.weights`) reports progress through a callback; the rich progress
bar lives here. Every :class:`ClipgenError` becomes one line on stderr and exit status 2.
"""

from __future__ import annotations

import functools
from typing import Annotated, Callable, Optional

import typer

from clipgen.errors import ClipgenError

models_app = typer.Typer(help="List, download and verify pretrained weights.", no_args_is_help=True)


def _stderr():
    from rich.console import Console

    return Console(stderr=True, highlight=False)


def _stdout():
    from rich.console import Console

    return Console(highlight=False)


def _one_line_errors(command: Callable) -> Callable:
    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        try:
            return command(*args, **kwargs)
        except ClipgenError as exc:
            _stderr().print(f"error: {exc}", markup=False, soft_wrap=True)
            raise typer.Exit(2) from None

    return wrapper


NameArg = Annotated[str, typer.Argument(help="Model name (see: clipgen models list).")]


@models_app.command("list")
@_one_line_errors
def models_list() -> None:
    """Name, kind, size and whether it is downloaded, for every registered model."""
    from rich.table import Table

    from clipgen import weights

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
    _stdout().print(table)
    _stdout().print(f"cache: {weights.cache_dir()}  (set CLIPGEN_HOME to move it)", markup=False)


@models_app.command("download")
@_one_line_errors
def models_download(
    name: NameArg,
    force: Annotated[bool, typer.Option("--force", help="Fetch again even if cached and verified.")] = False,
) -> None:
    """Download a model (resumable; every file is verified before it is kept)."""
    from clipgen import weights

    entry = weights.get_entry(name)
    with _ProgressBar() as bar:
        paths = weights.download(entry, progress=bar, force=force)
    _stderr().print(f"{entry.name}: {len(paths)} file(s) verified in {weights.entry_dir(entry)}", markup=False)


@models_app.command("verify")
@_one_line_errors
def models_verify(
    name: Annotated[Optional[str], typer.Argument(help="Model name; default: every downloaded model.")] = None,
) -> None:
    """Re-hash downloaded files against the published (or recorded) SHA-256."""
    from clipgen import weights
    from clipgen.errors import ModelError

    if name is not None:
        targets = [weights.get_entry(name)]
    else:
        targets = [e for e in weights.entries() if any(s.present for s in weights.file_status(e))]
        if not targets:
            _stderr().print("no models are downloaded; nothing to verify", markup=False)
            return
    failures = []
    console = _stdout()
    for entry in targets:
        try:
            with _ProgressBar() as bar:
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
@_one_line_errors
def models_path(name: NameArg) -> None:
    """Print the folder holding a downloaded model (an error if it is not downloaded)."""
    from clipgen import weights

    entry = weights.get_entry(name)
    for status in weights.file_status(entry):
        if not status.present:
            from clipgen.errors import MissingWeightsError

            raise MissingWeightsError(
                f"{entry.name} is not downloaded ({status.path} is missing); "
                f"run: clipgen models download {entry.name}"
            )
    typer.echo(str(weights.entry_dir(entry)))


@models_app.command("convert")
@_one_line_errors
def models_convert(
    name: NameArg,
    trust_checkpoint: Annotated[bool, typer.Option(
        "--trust-checkpoint",
        help="Unpickle files that have no pinned SHA-256 (copied in by hand rather than downloaded by clipgen).",
    )] = False,
) -> None:
    """Convert a pickled model (dalle-dvae) once to safetensors, so runs never unpickle it."""
    from clipgen import weights
    from clipgen.generators.dvae.loader import convert_entry

    entry = weights.get_entry(name)
    written = convert_entry(entry.name, trust_checkpoint=trust_checkpoint)
    for path in written:
        typer.echo(str(path))  # one path per line, never wrapped: scripts read these
    _stderr().print(f"{entry.name}: converted; runs now load these instead of the .pkl files", markup=False)


class _ProgressBar:
    """A rich progress bar fed by :class:`clipgen.weights.ProgressEvent` callbacks."""

    def __enter__(self):
        from rich.progress import (
            BarColumn,
            DownloadColumn,
            Progress,
            TextColumn,
            TimeRemainingColumn,
            TransferSpeedColumn,
        )

        self._progress = Progress(
            TextColumn("{task.description}"), BarColumn(), DownloadColumn(),
            TransferSpeedColumn(), TimeRemainingColumn(), console=_stderr(), transient=False,
        )
        self._progress.__enter__()
        self._tasks: dict[tuple[str, str], int] = {}
        return self

    def __exit__(self, *exc):
        return self._progress.__exit__(*exc)

    def _task(self, phase: str, filename: str, total):
        key = (phase, filename)
        if key not in self._tasks:
            label = f"{'verify' if phase == 'verify' else 'download'} {filename}"
            self._tasks[key] = self._progress.add_task(label, total=total)
        return self._tasks[key]

    def __call__(self, event) -> None:
        if event.phase in ("start", "download"):
            task = self._task("download", event.filename, event.total)
            self._progress.update(task, completed=event.done, total=event.total)
        elif event.phase == "verify":
            task = self._task("verify", event.filename, event.total)
            self._progress.update(task, completed=event.done, total=event.total)
        elif event.phase == "mirror-failed":
            host = event.url.split("/")[2] if "//" in event.url else event.url
            self._progress.console.print(f"{event.filename}: {host} failed ({event.message}); trying the next mirror",
                                         markup=False)
        elif event.phase == "skip":
            self._progress.console.print(f"{event.filename}: already downloaded and verified", markup=False)
