"""Pulling a model pack from upstream: download (extracting a zip member), check the file against
its pinned SHA-256 or, where upstream publishes none, the one recorded at the first pull (trust on
first use), then install it as an imported file is installed (:mod:`.pack_install`).

Apart from :mod:`.pack_install` because only a pull talks to the network and knows where upstream
keeps a file; installing is the same for a pulled file and an imported one.
"""

from __future__ import annotations

import shutil
import tempfile
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from facerec.errors import FaceRecError
from facerec.inference.catalogue import ModelEntry, PackFile
from facerec.inference.downloads import Downloader, download_url, sha256_file
from facerec.inference.liveness.minifasnet_pack import ChecksumMismatchError
from facerec.inference.pack_install import Trust, install_from
from facerec.inference.pack_validation import read_manifest

MAX_MEMBER_BYTES = 1024 * 1024 * 1024
TOFU_NOTE = (
    "upstream publishes no SHA-256 for this file, so it was recorded at this first pull "
    "(trust on first use); later pulls must match it"
)


def _download_file(entry: ModelEntry) -> PackFile:
    for file in entry.files:
        if file.url:
            return file
    raise FaceRecError(
        f"the {entry.name!r} pack has no pinned download: get the weights yourself"
        + (f" ({entry.homepage})" if entry.homepage else "")
        + f" and run `facerec models import {entry.name} FILE`"
    )


@contextmanager
def _fetched(file: PackFile, download: Downloader) -> Iterator[Path]:
    """The upstream file in a temporary folder (extracted when the URL is a zip archive)."""
    with tempfile.TemporaryDirectory(prefix="facerec-pull-") as work:
        fetched = Path(work) / (Path(file.url).name if file.member else file.name)
        download(file.url, fetched)
        if not file.member:
            yield fetched
            return
        target = Path(work) / file.name
        with zipfile.ZipFile(fetched) as archive:
            members = [i for i in archive.infolist() if Path(i.filename).name == file.member]
            if not members:
                raise FaceRecError(f"{file.url} holds no {file.member}")
            if members[0].file_size > MAX_MEMBER_BYTES:
                raise FaceRecError(f"{file.member} in {file.url} is implausibly large")
            with archive.open(members[0]) as src, target.open("wb") as out:
                shutil.copyfileobj(src, out)
        yield target


def pull_file_pack(
    entry: ModelEntry, model_dir: Path, *, download: Downloader | None = None
) -> list[str]:
    """Download, check (pinned SHA-256, or the one recorded at the first pull) and install."""
    file = _download_file(entry)
    lines = [f"downloading {file.url}" + (f" ({file.member})" if file.member else "")]
    with _fetched(file, download or download_url) as fetched:
        sha = sha256_file(fetched)
        trust: Trust = "pinned"
        if file.pinned:
            if sha != file.sha256:
                raise ChecksumMismatchError(
                    f"{file.name}: SHA-256 {sha} is not the published {file.sha256}",
                    model=entry.name,
                )
        else:
            installed = read_manifest(model_dir / entry.pack).get("installed", {})
            earlier = None
            if installed.get("origin") == file.url:
                earlier = installed.get("source_sha256") or installed.get("sha256")
            if earlier is not None and earlier != sha:
                raise ChecksumMismatchError(
                    f"{file.name}: SHA-256 {sha} differs from {earlier}, recorded at the first "
                    f"pull: upstream changed the file. Remove {model_dir / entry.pack} to trust "
                    "the new one",
                    model=entry.name,
                )
            trust = "trust-on-first-use"
            note = TOFU_NOTE if earlier is None else "matches the one recorded at the first pull"
            lines.append(f"{file.name}: SHA-256 {sha}: {note}")
        lines += install_from(entry, fetched, model_dir, verify=True, trust=trust, origin=file.url)
    return lines
