"""Rich progress bar and summary for the CLI (a loop callback; no library code uses it)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    MofNCompleteColumn,
    Progress,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)
from rich.table import Table

if TYPE_CHECKING:  # the loop imports torch; `clipgen models` should not pay for it
    from clipgen.run.loop import StepState

# Reading the loss forces a device sync; on a GPU doing it every step would stall the queue.
_LOSS_EVERY = 10


class BatchProgress:
    """A bar of a batch's prompts with counts of running, failed and retried ones (``--ray``);
    its methods are the driver's events. ``print_outcome(console, outcome)`` reports each
    finished prompt above the bar unless ``quiet``."""

    def __init__(self, console: Console, total: int, quiet: bool, print_outcome) -> None:
        self.progress = Progress(TextColumn("[bold]batch on Ray"), BarColumn(), MofNCompleteColumn(),
                                 TextColumn("{task.fields[counts]}"), TimeElapsedColumn(), console=console,
                                 disable=quiet)
        self.task = self.progress.add_task("", total=total, counts="starting workers…")
        self.quiet, self.print_outcome = quiet, print_outcome
        self.running: set[int] = set()
        self.failed = self.retried = self.workers = 0

    def __enter__(self) -> "BatchProgress":
        self.progress.start()
        return self

    def __exit__(self, *exc) -> None:
        self.progress.stop()

    def _show(self, advance: int = 0) -> None:
        text = (f"{len(self.running)} running on {self.workers} workers · {self.failed} failed"
                + (f" · {self.retried} retried" if self.retried else ""))
        self.progress.update(self.task, advance=advance, counts=text)

    def on_start(self, item, worker: str) -> None:
        self.running.add(item.index)
        self._show()

    def on_done(self, outcome) -> None:
        self.running.discard(outcome.item.index)
        self.failed += outcome.status == "failed"
        if not self.quiet:
            self.print_outcome(self.progress.console, outcome)
        self._show(advance=1)

    def on_retry(self, item, reason: str) -> None:
        self.running.discard(item.index)
        self.retried += 1
        if not self.quiet:
            self.progress.console.print(f"[yellow]retrying[/] line {item.line}: its worker was lost ({reason})")
        self._show()

    def on_workers(self, count: int) -> None:
        self.workers = count
        self._show()


class StepProgress:
    """The CLI's one progress style: a bar of steps with rate and loss (runs, toy training).

    Entering starts it when ``total`` is known; otherwise :meth:`start` does, later.
    """

    def __init__(self, console: Console, label: str, total: int | None = None):
        self.progress = Progress(
            TextColumn(f"[bold]{label}"), BarColumn(), MofNCompleteColumn(), TaskProgressColumn(),
            TextColumn("{task.fields[rate]} it/s"), TextColumn("loss {task.fields[loss]}"),
            TimeRemainingColumn(), console=console,
        )
        self.total = total
        self.task = None
        self.prior: Progress | None = None  # prior sampling's own bar (on_prior_token)

    def start(self, total: int) -> None:
        self.task = self.progress.add_task("", total=total, loss="–", rate="–")
        self.progress.start()

    def __enter__(self) -> "StepProgress":
        if self.total is not None:
            self.start(self.total)
        return self

    def __exit__(self, *exc) -> None:
        if self.task is not None:
            self.progress.stop()

    def update(self, step: int, loss: float | None = None) -> None:
        """Show ``step`` done, and ``loss`` if given (the last one shown stays otherwise)."""
        fields = {} if loss is None else {"loss": f"{loss:.4f}"}
        speed = self.progress.tasks[self.task].speed
        if speed:
            fields["rate"] = f"{speed:.2f}"
        self.progress.update(self.task, completed=step, **fields)


class ProgressBar(StepProgress):
    """A loop callback showing the progress bar; it appears at the run's first step,
    so errors raised while preparing the run are not drawn under an empty bar."""

    def __init__(self, console: Console):
        super().__init__(console, "step")

    def on_prior_token(self, done: int, total: int) -> None:
        """Prior sampling, before the first step: a bar of token positions of its own."""
        if self.prior is None:
            self.prior = Progress(TextColumn("[bold]prior tokens"), BarColumn(), MofNCompleteColumn(),
                                  TimeRemainingColumn(), console=self.progress.console)
            self.prior.add_task("", total=total)
            self.prior.start()
        self.prior.update(self.prior.task_ids[0], completed=done)
        if done == total:
            self.prior.stop()

    def __call__(self, state: StepState) -> None:
        if self.task is None:
            self.start(state.total)
        shown = state.loss is not None and (state.step % _LOSS_EVERY == 0 or state.step == state.total)
        self.update(state.step, float(state.loss) if shown else None)


def print_summary(console: Console, result) -> None:
    table = Table(show_header=False, box=None, pad_edge=False)
    table.add_row("image", str(result.paths["image"]))
    if "candidates" in result.paths:  # a prior run: every sample, scored
        count = len(result.extra.get("candidates", []))
        table.add_row("candidates", f"{count} prior samples in {result.paths['candidates']}, scores in "
                                    f"{result.paths['index']}")
    for key in ("svg", "video", "gif"):
        if key in result.paths:
            table.add_row(key, str(result.paths[key]))
    frames = result.paths["frames"]
    # With --candidates the frames stay in the kept candidate's own run folder; with
    # none saved there is no folder to name.
    table.add_row("frames", f"{len(frames)} in {Path(frames[0]).parent}" if frames else "none saved (--save-every 0)")
    table.add_row("settings", str(result.paths["run_json"]))
    table.add_row("time", f"{result.seconds:.1f} s ({result.settings.steps / max(result.seconds, 1e-9):.2f} steps/s)")
    if result.best_loss is not None:
        table.add_row("best loss", f"{result.best_loss:.4f}")
    table.add_row("CLIP similarity", f"{result.initial_similarity:.3f} → {result.final_similarity:.3f}")
    for name, scores in result.held_out.items():
        augmented = f" (augmented {scores['augmented']:.3f})" if "augmented" in scores else ""
        table.add_row(f"held-out {name}", f"{scores['score']:.3f}{augmented}")
    console.print(table)


class DownloadBar:
    """A rich progress bar fed by :class:`clipgen.weights.ProgressEvent` callbacks: one bar per
    file downloaded or verified; failed mirrors and cached files are told as lines."""

    def __init__(self, console: Console):
        self.progress = Progress(
            TextColumn("{task.description}"), BarColumn(), DownloadColumn(),
            TransferSpeedColumn(), TimeRemainingColumn(), console=console, transient=False,
        )
        self._tasks: dict[tuple[str, str], int] = {}

    def __enter__(self) -> "DownloadBar":
        self.progress.start()
        return self

    def __exit__(self, *exc) -> None:
        self.progress.stop()

    def _task(self, phase: str, filename: str, total: int | None) -> int:
        key = (phase, filename)
        if key not in self._tasks:
            self._tasks[key] = self.progress.add_task(f"{phase} {filename}", total=total)
        return self._tasks[key]

    def __call__(self, event) -> None:
        if event.phase in ("start", "download", "verify"):
            task = self._task("verify" if event.phase == "verify" else "download", event.filename, event.total)
            self.progress.update(task, completed=event.done, total=event.total)
        elif event.phase == "mirror-failed":
            host = event.url.split("/")[2] if "//" in event.url else event.url
            self.progress.console.print(f"{event.filename}: {host} failed ({event.message}); trying the next mirror",
                                        markup=False)
        elif event.phase == "skip":
            self.progress.console.print(f"{event.filename}: already downloaded and verified", markup=False)
