"""Fetching model-pack files: SHA-256 of a file, and a bounded HTTPS download.

Shared by every pack (MobileFaceNet, MiniFASNet): a pack is installed only from a file whose
SHA-256 matches the pinned one.
"""

from __future__ import annotations

import hashlib
import urllib.request
from collections.abc import Callable
from pathlib import Path

from facerec.errors import FaceRecError

MAX_DOWNLOAD_BYTES = 64 * 1024 * 1024
Downloader = Callable[[str, Path], None]


class DownloadError(FaceRecError):
    default_code = "download_failed"


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def download_url(url: str, dest: Path, timeout: float = 60.0) -> None:
    """Stream ``url`` to ``dest`` (at most :data:`MAX_DOWNLOAD_BYTES`)."""
    if not url.startswith("https://"):
        raise DownloadError(f"refusing a non-HTTPS model URL: {url}")
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response, open(dest, "wb") as out:
            total = 0
            while chunk := response.read(1 << 20):
                total += len(chunk)
                if total > MAX_DOWNLOAD_BYTES:
                    raise DownloadError(f"{url} is larger than {MAX_DOWNLOAD_BYTES} bytes")
                out.write(chunk)
    except OSError as exc:  # URLError, HTTPError and timeouts are all OSError
        raise DownloadError(f"cannot download {url}: {exc}", url=url) from exc
