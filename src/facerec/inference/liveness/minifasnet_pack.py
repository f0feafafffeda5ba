"""The MiniFASNet pack from its upstream files, converted by :mod:`.convert`.

``convert_pack`` (CLI ``facerec models convert minifasnet --src DIR --dest DIR``) converts the
pack from local files; ``pull_pack`` (CLI ``facerec models pull minifasnet``) downloads them from
the pinned upstream commit first. Every source file's SHA-256 is checked against
:data:`~facerec.inference.catalogue.MINIFASNET` and a pack directory only ever holds a complete,
verified set: files are written to a temporary directory and moved into place at the end.

Apart from the conversion of one file because this is the pack's bookkeeping: checksums, staging
directories and ``manifest.json``.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from dataclasses import asdict
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from facerec.errors import ModelLoadError
from facerec.inference.catalogue import MINIFASNET, ConvertedFile, ModelEntry
from facerec.inference.downloads import Downloader, download_url, sha256_file
from facerec.inference.liveness.convert import ConvertReport, convert_minifasnet, require_torch

logger = logging.getLogger(__name__)

MANIFEST_NAME = "manifest.json"


class ChecksumMismatchError(ModelLoadError):
    default_code = "checksum_mismatch"


def _check_sha256(path: Path, spec: ConvertedFile) -> None:
    actual = sha256_file(path)
    if actual != spec.sha256:
        raise ChecksumMismatchError(
            f"{path.name}: SHA-256 {actual} is not the published {spec.sha256}",
            file=spec.source_name,
        )


def convert_pack(
    src_dir: Path,
    dest_dir: Path,
    *,
    pack: ModelEntry = MINIFASNET,
    verify_sha256: bool = True,
    sample_inputs: NDArray[np.float32] | None = None,
) -> list[ConvertReport]:
    """Convert every file of ``pack`` found in ``src_dir`` (upstream file names) into
    ``dest_dir``, which is filled only when all of them convert; writes ``manifest.json``."""
    src_dir, dest_dir = Path(src_dir), Path(dest_dir)
    sources = [src_dir / spec.source_name for spec in pack.converted_files]
    missing = [path.name for path in sources if not path.is_file()]
    if missing:
        raise FileNotFoundError(f"{src_dir} lacks {', '.join(missing)}")
    require_torch()
    dest_dir.mkdir(parents=True, exist_ok=True)
    reports: list[ConvertReport] = []
    with tempfile.TemporaryDirectory(dir=dest_dir, prefix=".convert-") as work:
        staging = Path(work)
        for spec, source in zip(pack.converted_files, sources, strict=True):
            if verify_sha256:
                _check_sha256(source, spec)
            reports.append(
                convert_minifasnet(
                    source,
                    staging / spec.onnx_name,
                    spec.variant,
                    input_size=spec.input_size,
                    sample_inputs=sample_inputs,
                )
            )
        installed = []
        for spec, report in zip(pack.converted_files, reports, strict=True):
            os.replace(staging / spec.onnx_name, dest_dir / spec.onnx_name)
            installed.append(_with_path(report, dest_dir / spec.onnx_name))
    manifest = {"pack": pack.as_dict(), "converted": [asdict(r) for r in installed]}
    (dest_dir / MANIFEST_NAME).write_text(json.dumps(manifest, indent=2), encoding="utf-8")
    return installed


def _with_path(report: ConvertReport, path: Path) -> ConvertReport:
    return ConvertReport(**{**asdict(report), "onnx_path": str(path)})


def pull_pack(
    dest_dir: Path,
    *,
    pack: ModelEntry = MINIFASNET,
    download: Downloader | None = None,
) -> list[ConvertReport]:
    """Download the pack's upstream files, check their SHA-256, convert into ``dest_dir``.

    ``download(url, path)`` is injectable (tests, mirrors); the default streams over HTTPS.
    """
    require_torch()
    fetch = download or download_url
    dest_dir = Path(dest_dir)
    dest_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=dest_dir, prefix=".download-") as work:
        staging = Path(work)
        for spec in pack.converted_files:
            target = staging / spec.source_name
            logger.info("downloading %s", spec.url)
            fetch(spec.url, target)
            _check_sha256(target, spec)
        return convert_pack(staging, dest_dir, pack=pack)
