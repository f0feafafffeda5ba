"""Gallery migration speed: kept chips re-embedded per second (dlib → MobileFaceNet).

A synthetic gallery of ``--faces`` kept chips made from the real test photos (Grace Hopper and the
astronaut, with brightness, scale and small rotation variants), detected by RetinaFace and
aligned by dlib as enrollment does, stored with their dlib vectors in a fresh SQLite database.
Then the migration runs as the service's worker does (batches of ``--batch-size``, one
transaction each, chips decoded, re-aligned and embedded, the report computed at the end).

    .venv/bin/python -m bench.bench_migration [--faces 300 --batch-size 32]
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageEnhance
from tests.images import astronaut_rgb, grace_hopper_rgb

from bench.report import write_section
from facerec.config import Settings
from facerec.domain.chips import encode_chip
from facerec.domain.migration import GalleryMigrations
from facerec.inference.base import AlignedChip, FaceDetector, FaceEmbedder
from facerec.inference.manager import ModelManager
from facerec.inference.registry import build_models
from facerec.storage.engine import create_engine
from facerec.storage.gallery_migration import SqlMigrationStore
from facerec.storage.migrate import upgrade_database
from facerec.storage.models import EmbeddingSpace, NewFace, NewPerson
from facerec.storage.sql_repository import SqlGalleryRepository

SHARED = Path(__file__).resolve().parents[2] / "shared" / "models"


def photos() -> list[np.ndarray]:
    result = []
    for rgb in (grace_hopper_rgb(), astronaut_rgb()):
        image = Image.fromarray(rgb)
        for angle in (-8, 0, 8):
            for bright in (0.8, 1.0, 1.25):
                for scale in (0.6, 1.0):
                    variant = ImageEnhance.Brightness(image.rotate(angle)).enhance(bright)
                    size = (int(variant.width * scale), int(variant.height * scale))
                    result.append(np.asarray(variant.resize(size))[:, :, ::-1].copy())
    return result


def kept_chips(models: ModelManager) -> list[AlignedChip]:
    chips = []
    with (
        models.use("retinaface", FaceDetector) as detector,
        models.use("dlib_resnet", FaceEmbedder) as dlib,
    ):
        for bgr in photos():
            faces = detector.detect(bgr, conf_threshold=0.5, iou_threshold=0.4, max_faces=1)
            chip = dlib.chips_of(bgr, faces[:1])[0] if faces else None
            if chip is not None:
                chips.append(chip)
    return chips


async def run(faces: int, batch_size: int, model_dir: Path, tmp: Path) -> dict[str, float]:
    settings = Settings(
        db={"url": f"sqlite+aiosqlite:///{tmp / 'bench.db'}"},
        models={"model_dir": model_dir, "preload": []},
    )
    models = ModelManager(build_models(settings), settings.models)
    chips = kept_chips(models)
    with models.use("dlib_resnet", FaceEmbedder) as dlib:
        vectors = dlib.embed_aligned(chips)
        space = dlib.space
    engine = create_engine(settings.db)
    await upgrade_database(settings, engine=engine)
    repository = SqlGalleryRepository(engine)
    await repository.ensure_space(EmbeddingSpace(space, 128, "l2"))
    per_person = 5
    for start in range(0, faces, per_person):
        new = [
            NewFace(
                space=space,
                embedding=vectors[i % len(chips)],
                chip=encode_chip(chips[i % len(chips)]),
            )
            for i in range(start, min(faces, start + per_person))
        ]
        person = f"p{start // per_person}"
        await repository.add_faces(person, new, create=NewPerson(name=person, id=person))
    service = GalleryMigrations(
        store=SqlMigrationStore(engine),
        repository=repository,
        models=models,
        batch_size=batch_size,
    )
    with models.use("mobilefacenet", FaceEmbedder):
        pass  # loaded before timing
    record = await service.start("default", "mobilefacenet")
    began = time.perf_counter()
    record = await service.run(record.id)
    elapsed = time.perf_counter() - began
    report = record.report or {}
    await service.close()
    await repository.close()
    await engine.dispose()
    assert record.status == "complete" and record.done == faces, record
    return {
        "faces": faces,
        "chips": len(chips),
        "seconds": elapsed,
        "per_second": faces / elapsed,
        "compared": float(report.get("faces_compared", 0)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--faces", type=int, default=300)
    parser.add_argument("--batch-size", type=int, default=32)
    args = parser.parse_args()
    from facerec.inference.catalogue import MOBILEFACENET
    from facerec.inference.pack_install import install_pack_file

    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        install_pack_file(
            MOBILEFACENET,
            SHARED / "mobilefacenet" / "mobilefacenet_foamliu_opset18.onnx",
            tmp / "models",
            verify=True,
        )
        result = asyncio.run(run(args.faces, args.batch_size, tmp / "models", tmp))
    body = (
        f"`facerec gallery migrate` worker, dlib_resnet → mobilefacenet, on CPU: "
        f"{result['faces']} kept chips ({result['chips']} distinct real-photo chips, "
        f"5 per synthetic person) in batches of {args.batch_size}, each batch one SQLite "
        "transaction (decode PNG chip, re-align to the ArcFace 112 template, embed with mirror "
        "sum, write face + chip copy + progress), then the report over all faces.\n\n"
        "| faces | seconds (incl. report) | faces per second |\n|---|---|---|\n"
        f"| {result['faces']} | {result['seconds']:.2f} | {result['per_second']:.0f} |\n"
    )
    print(body)
    write_section("migration", "Gallery migration", body)


if __name__ == "__main__":
    main()
