"""Rich progress bar and summary for the CLI (a loop callback; no library code uses it)."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console
from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TaskProgressColumn, TextColumn,
                           TimeRemainingColumn)
from rich.table import Table

from clipgen.run.loop import StepState

# Reading the loss forces a device sync; on a GPU doing it every step would stall the queue.
_LOSS_EVERY = 10


class ProgressBar:
    """A loop callback showing a rich progress bar; it appears at the run's first step,
    so errors raised while preparing the run are not drawn under an empty bar."""

    def __init__(self, console: Console):
        self.progress = Progress(
            TextColumn("[bold]step"), BarColumn(), MofNCompleteColumn(), TaskProgressColumn(),
            TextColumn("{task.fields[rate]} it/s"), TextColumn("loss {task.fields[loss]}"),
            TimeRemainingColumn(), console=console,
        )
        self.task = None

    def __enter__(self) -> "ProgressBar":
        return self

    def __exit__(self, *exc) -> None:
        if self.task is not None:
            self.progress.stop()

    def __call__(self, state: StepState) -> None:
        if self.task is None:
            self.task = self.progress.add_task("generate", total=state.total, loss="–", rate="–")
            self.progress.start()
        fields = {}
        if state.loss is not None and (state.step % _LOSS_EVERY == 0 or state.step == state.total):
            fields["loss"] = f"{float(state.loss):.4f}"
        speed = self.progress.tasks[self.task].speed
        if speed:
            fields["rate"] = f"{speed:.2f}"
        self.progress.update(self.task, completed=state.step, **fields)


def print_summary(console: Console, result) -> None:
    table = Table(show_header=False, box=None, pad_edge=False)
    table.add_row("image", str(result.paths["image"]))
    for key in ("svg", "video", "gif"):
        if key in result.paths:
            table.add_row(key, str(result.paths[key]))
    frames = result.paths["frames"]
    # With --candidates the frames stay in the kept candidate's own run folder.
    frames_dir = Path(frames[0]).parent if frames else Path(result.paths["folder"]) / "frames"
    table.add_row("frames", f"{len(frames)} in {frames_dir}")
    table.add_row("settings", str(result.paths["run_json"]))
    table.add_row("time", f"{result.seconds:.1f} s ({result.settings.steps / max(result.seconds, 1e-9):.2f} steps/s)")
    if result.best_loss is not None:
        table.add_row("best loss", f"{result.best_loss:.4f}")
    table.add_row("CLIP similarity", f"{result.initial_similarity:.3f} → {result.final_similarity:.3f}")
    console.print(table)
