"""Fetching model-pack files: SHA-256 of a file, and a bounded HTTPS download.

Shared by every pack: a pack is installed only from a file whose SHA-256 matches the pinned one
(or, where upstream publishes none, the one recorded at the first pull). Downloads show a tqdm
progress bar on stderr when it is a terminal.
"""

from __future__ import annotations

import hashlib
import sys
import urllib.request
from collections.abc import Callable
from pathlib import Path

from facerec.errors import FaceRecError

# FaceNet's state dict is ~107 MB, AdaFace IR-101 ~250 MB: a bound, not a size estimate.
MAX_DOWNLOAD_BYTES = 1024 * 1024 * 1024
Downloader = Callable[[str, Path], None]


class DownloadError(FaceRecError):
    default_code = "download_failed"


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def download_url(
    url: str, dest: Path, timeout: float = 60.0, *, progress: bool | None = None
) -> None:
    """Stream ``url`` to ``dest`` (at most :data:`MAX_DOWNLOAD_BYTES`).

    ``progress``: show a bar on stderr (None: only when stderr is a terminal).
    """
    from tqdm import tqdm

    if not url.startswith("https://"):
        raise DownloadError(f"refusing a non-HTTPS model URL: {url}")
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response, open(dest, "wb") as out:
            length = response.headers.get("Content-Length")
            with tqdm(
                total=int(length) if length and length.isdigit() else None,
                unit="B",
                unit_scale=True,
                unit_divisor=1024,
                desc=Path(url).name,
                file=sys.stderr,
                disable=None if progress is None else not progress,
                leave=False,
            ) as bar:
                total = 0
                while chunk := response.read(1 << 20):
                    total += len(chunk)
                    if total > MAX_DOWNLOAD_BYTES:
                        raise DownloadError(f"{url} is larger than {MAX_DOWNLOAD_BYTES} bytes")
                    out.write(chunk)
                    bar.update(len(chunk))
    except OSError as exc:  # URLError, HTTPError and timeouts are all OSError
        raise DownloadError(f"cannot download {url}: {exc}", url=url) from exc
