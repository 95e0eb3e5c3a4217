"""Consoles shared by the CLI modules: progress and messages on stderr, results on stdout."""

from __future__ import annotations


def stderr_console():
    from rich.console import Console

    return Console(stderr=True, highlight=False)


def stdout_console():
    from rich.console import Console

    return Console(highlight=False)
