"""What every bulk command prints through: the console of its results, its progress bar (on
stderr, so ``--json`` output stays clean) and its failure line (JSON with ``--json``).

Apart from the commands (:mod:`.cli`, :mod:`.gallery_file_cli`) so that they print alike.
"""

from __future__ import annotations

import argparse
import json

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn


def results_console(args: argparse.Namespace) -> Console:
    return Console(soft_wrap=True, highlight=False)


def progress_bar(total: int, label: str, quiet: bool) -> Progress:
    progress = Progress(
        TextColumn(label),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=Console(stderr=True),
        disable=quiet,
        transient=False,
    )
    return progress


def fail(message: str, as_json: bool) -> int:
    if as_json:
        print(json.dumps({"success": False, "error": message}))
    else:
        Console(stderr=True).print(f"[red]facerec: {message}[/red]")
    return 1
