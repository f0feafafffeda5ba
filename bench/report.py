"""Write one benchmark's results into its own section of BENCHMARKS.md.

Each bench script owns the section between ``<!-- bench:NAME -->`` and ``<!-- /bench:NAME -->``;
running it again replaces that section only, so the file keeps every benchmark's latest figures
together with the command and the machine they came from.
"""

from __future__ import annotations

import os
import platform
import re
import shlex
import sys
import time
from pathlib import Path

import psutil

BENCHMARKS = Path(__file__).resolve().parent.parent / "BENCHMARKS.md"
HEADER = (
    "# Benchmarks\n\n"
    "Every section is written by the script named in it; rerun the command to refresh it.\n"
)


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    mem_gib = psutil.virtual_memory().total / 2**30
    return (
        f"{cpu}, {os.cpu_count()} cores, {mem_gib:.0f} GiB RAM, "
        f"Python {platform.python_version()}, {platform.system()} {platform.release()}"
    )


def command() -> str:
    """The command that ran the script, as one would type it again: ``python -m bench.x ...``
    for a script run as a module (the benches importing ``bench.*`` must be)."""
    spec = getattr(sys.modules.get("__main__"), "__spec__", None)
    args = [shlex.quote(arg) for arg in sys.argv[1:]]
    if spec is not None and spec.name:
        return " ".join(["python", "-m", spec.name, *args])
    return " ".join(["python", shlex.quote(sys.argv[0]), *args])


def load_average() -> str:
    """1, 5 and 15 minute load averages when the section is written: a busy machine shows here."""
    try:
        one, five, fifteen = os.getloadavg()
    except OSError:
        return "unknown"
    return f"{one:.2f} / {five:.2f} / {fifteen:.2f} (1 / 5 / 15 min)"


def write_section(name: str, title: str, body: str) -> None:
    """Replace (or append) the section ``name`` of BENCHMARKS.md."""
    stamp = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    section = (
        f"<!-- bench:{name} -->\n## {title}\n\n"
        f"- command: `{command()}`\n- machine: {machine()}\n- date: {stamp}\n"
        f"- load average when written: {load_average()}\n\n"
        f"{body.strip()}\n<!-- /bench:{name} -->"
    )
    text = BENCHMARKS.read_text(encoding="utf-8") if BENCHMARKS.exists() else HEADER
    pattern = re.compile(
        rf"<!-- bench:{re.escape(name)} -->.*?<!-- /bench:{re.escape(name)} -->", re.S
    )
    if pattern.search(text):
        text = pattern.sub(lambda _: section, text)
    else:
        text = text.rstrip() + "\n\n" + section + "\n"
    BENCHMARKS.write_text(text, encoding="utf-8")
    print(f"wrote section {name!r} to {BENCHMARKS}")


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    k = (len(ordered) - 1) * q / 100.0
    lo = int(k)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)
