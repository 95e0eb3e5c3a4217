"""The command line. The only module that reads argv and talks to the terminal."""

from __future__ import annotations

import ctypes
import dataclasses
import gc
import json
import logging
import platform
import sys
from typing import Annotated

import click
import typer

from clipgen import __version__
from clipgen.cli.console import stderr_console as _stderr
from clipgen.cli.console import stdout_console as _stdout
from clipgen.errors import ClipgenError

app = typer.Typer(
    name="clipgen",
    help="Text to image by CLIP-guided optimisation.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
)
presets_app = typer.Typer(help="List and inspect presets.", no_args_is_help=True)
app.add_typer(presets_app, name="presets")


def _mount_subcommands() -> None:
    from clipgen.cli.batch import batch
    from clipgen.cli.bench import bench
    from clipgen.cli.generate import generate, resume
    from clipgen.cli.models import models_app
    from clipgen.cli.score import classify, score
    from clipgen.cli.toy import toy_app

    for command in (generate, resume, batch, score, classify):
        app.command(no_args_is_help=True)(command)
    app.command()(bench)  # every option has a default: no arguments runs the CPU case

    app.add_typer(models_app, name="models")
    app.add_typer(toy_app, name="toy")


_mount_subcommands()


def _version(value: bool) -> None:
    if value:
        typer.echo(f"clipgen {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                          help="Show the version and exit.")] = False,
) -> None:
    """clipgen: a differentiable generator makes an image, CLIP scores it against your
    prompt, and gradients flow back until the image matches."""


@presets_app.command("list")
def presets_list() -> None:
    """Name, generator and description of every preset."""
    from rich.table import Table

    from clipgen.config.presets import available_presets, load_preset

    table = Table("preset", "generator", "description")
    for name in available_presets():
        preset = load_preset(name)
        table.add_row(name, str(preset.values.get("generator", "(default)")), preset.description)
    _stdout().print(table)


@presets_app.command("show")
def presets_show(name: Annotated[str, typer.Argument(help="Preset name or .toml path.")]) -> None:
    """The fully resolved settings of a preset, as TOML-like key = value lines."""
    from clipgen.config.settings import resolve_run_settings

    settings = resolve_run_settings(preset=name)
    console = _stdout()
    for key, value in settings.to_dict().items():
        if isinstance(value, dict):
            continue
        console.print(f"{key} = {json.dumps(value)}")
    section = settings.to_dict()[settings.generator]
    if section:
        console.print(f"\n[{settings.generator}]", markup=False)
        for key, value in section.items():
            console.print(f"{key} = {json.dumps(value)}")


@app.command("generators")
def generators_list() -> None:
    """Every generator: what it makes and the options it takes (--set GENERATOR.KEY=VALUE)."""
    from rich.table import Table
    from rich.text import Text

    from clipgen.config.typed import describe
    from clipgen.generators.registry import generator_names, get_generator_class

    console = _stdout()
    for name in generator_names():
        cls = get_generator_class(name)
        summary = (cls.__doc__ or "").strip().splitlines()[:1]
        console.print(Text.assemble((name, "bold"), ": " if summary else "", *summary))
        table = Table("option", "type", "default", "help", box=None, padding=(0, 1, 0, 2))
        for field in dataclasses.fields(cls.Options):
            # Text cells: a type such as tuple[int, ...] is not rich markup.
            table.add_row(*map(Text, (field.name, _type_name(field.type), _default_text(field), describe(field))))
        console.print(table if table.row_count else "  no options")
        console.print()
    console.print("Set an option with --set GENERATOR.KEY=VALUE (e.g. --set vqgan.checkpointing=true) "
                  "or in a preset's [GENERATOR] table.", markup=False)


def _type_name(tp) -> str:
    # Option classes use postponed annotations, so this is usually the source text already.
    return tp if isinstance(tp, str) else getattr(tp, "__name__", str(tp))


def _default_text(field) -> str:
    """A default as --set would spell it."""
    value = field.default_factory() if field.default is dataclasses.MISSING else field.default
    if value is None:
        return "none"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, (tuple, list)):
        return ",".join(map(str, value)) or '""'
    return str(value)


def _setup_logging() -> None:
    from rich.logging import RichHandler

    handler = RichHandler(console=_stderr(), show_time=False, show_path=False)
    handler.setFormatter(logging.Formatter("%(message)s"))
    logger = logging.getLogger("clipgen")
    logger.handlers[:] = [handler]
    logger.setLevel(logging.INFO)
    logger.propagate = False
    # Third-party libraries (huggingface_hub retries, open_clip) log at WARNING through the
    # root logger; their failures reach the user as our own one-line errors instead.
    logging.getLogger().setLevel(logging.ERROR + 10)
    # huggingface_hub has a handler of its own, which the root level does not silence.
    logging.getLogger("huggingface_hub").setLevel(logging.ERROR + 10)


# Recent typer vendors its own click; older ones use click itself. Catch both.
_EXIT = tuple({typer.Exit, click.exceptions.Exit})
_ABORT = tuple({typer.Abort, click.exceptions.Abort})
_USAGE = tuple({getattr(typer, "TyperException", click.ClickException), click.ClickException})


def main(argv: list[str] | None = None) -> None:
    """Entry point: every user error becomes one line on stderr and exit status 2."""
    _setup_logging()
    try:
        # Without standalone mode, click returns an Exit's code instead of raising it.
        returned = app(args=argv, prog_name="clipgen", standalone_mode=False)
    except _EXIT as exc:
        sys.exit(getattr(exc, "exit_code", 0))
    except _ABORT:
        sys.exit(130)
    except _USAGE as exc:
        _fail(exc.format_message() if hasattr(exc, "format_message") else str(exc), 2)
    except ClipgenError as exc:
        _fail(str(exc), getattr(exc, "exit_code", 2))
    except KeyboardInterrupt:
        sys.exit(130)
    sys.exit(returned if isinstance(returned, int) else 0)


def entry() -> None:
    """The console script (and ``python -m clipgen``): :func:`main` in a process that ends
    with it. Interpreter shutdown garbage-collects every object the imports made (torch's
    compiler stack alone leaves millions): 0.9 s of a 7.8 s quickstart on a 2-core Zen 5 EPYC.
    Frozen, they are left to the operating system; a run's files are already written
    (atomically) by then."""
    _keep_freed_memory()
    try:
        main()
    finally:
        gc.freeze()


def _keep_freed_memory() -> None:
    """Tell glibc's malloc to keep freed memory in the process rather than hand it back:
    a step frees and allocates the same large activations again, and each page handed back
    faults in again (5.5 µs a page on a 2-core Zen 5 EPYC VM: 22–38 k faults a step of
    ``vqgan-256-cut32``, 1.517 s/step; with this, none, 1.474 s; peak RSS 2.82 GB either
    way). Other C libraries: nothing to do."""
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return
    m_trim_threshold, m_mmap_threshold = -1, -3  # <malloc.h>
    if not libc.mallopt(m_mmap_threshold, 2**30):  # no allocation below 1 GiB its own mapping
        libc.mallopt(m_mmap_threshold, 2**25)  # a glibc that caps it: its cap, 32 MiB
    libc.mallopt(m_trim_threshold, 2**31 - 1)  # never give the heap's free top back


def _fail(message: str, code: int) -> None:
    """The CLI's one error exit. Plain stderr, not a rich console: rich would wrap a long
    message over several lines, and scripts read the error as one line."""
    sys.stderr.write(f"clipgen: error: {message}\n")
    sys.exit(code)
