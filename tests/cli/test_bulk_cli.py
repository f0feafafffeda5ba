"""``facerec enroll | recognize | compare | export | import`` on folders of real photos built
here: offline on the configured database, and against a real ``facerec serve``."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from bench.server import running_server
from PIL import Image

from facerec.bulk.folders import STATE_FILE
from facerec.cli import main
from tests.images import astronaut_rgb, encode, grace_hopper_jpeg, grace_hopper_rgb


def build_folder(root: Path) -> Path:
    """Grace (person.json with an employee id: register-multiple) with a duplicate photo, and
    Eileen (add-face per photo) with a file that is not an image."""
    grace, eileen = root / "Grace Hopper", root / "Eileen Collins"
    grace.mkdir(parents=True)
    eileen.mkdir()
    (grace / "grace.jpg").write_bytes(grace_hopper_jpeg())
    (grace / "grace_copy.jpg").write_bytes(grace_hopper_jpeg())  # the same bytes again
    rotated = Image.fromarray(grace_hopper_rgb()).rotate(4, fillcolor=(128, 128, 128))
    (grace / "grace-rotated.png").write_bytes(encode(rotated))
    (grace / "person.json").write_text(
        json.dumps(
            {"employee_id": "E-7", "department": "Navy", "metadata": {"rank": "rear admiral"}}
        )
    )
    (eileen / "eileen.png").write_bytes(encode(astronaut_rgb()))
    small = Image.fromarray(astronaut_rgb()).resize((384, 384))
    (eileen / "eileen-small.jpg").write_bytes(encode(small, "JPEG", quality=90))
    (eileen / "broken.jpg").write_bytes(b"\xff\xd8 not really a jpeg" + bytes(200))
    return root


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("FACEREC_MODELS__MODEL_DIR", str(tmp_path / "models"))
    monkeypatch.setenv("FACEREC_SERVER__LOG_DIR", str(tmp_path / "logs"))
    monkeypatch.setenv("FACEREC_DB__URL", f"sqlite+aiosqlite:///{tmp_path / 'cli.db'}")
    monkeypatch.setenv("FACEREC_INDEX__INDEX_DIR", str(tmp_path / "index"))
    monkeypatch.chdir(tmp_path)
    return tmp_path


def run_json(capsys: pytest.CaptureFixture[str], argv: list[str], code: int = 0) -> object:
    capsys.readouterr()
    assert main(argv) == code
    return json.loads(capsys.readouterr().out)


def by_file(summary: object) -> dict[str, dict[str, object]]:
    assert isinstance(summary, dict)
    return {r["file"]: r for r in summary["results"]}


def check_first_run(summary: object, report: Path) -> None:
    results = by_file(summary)
    assert isinstance(summary, dict)
    assert (summary["enrolled"], summary["rejected"], summary["duplicate"]) == (4, 1, 1)
    assert results["broken.jpg"]["status"] == "rejected"
    assert results["broken.jpg"]["reason"] in ("invalid_image", "unsupported_format")
    assert results["grace_copy.jpg"]["status"] == "duplicate"
    grace_ids = {results[f]["person_id"] for f in ("grace.jpg", "grace-rotated.png")}
    eileen_ids = {results[f]["person_id"] for f in ("eileen.png", "eileen-small.jpg")}
    assert len(grace_ids) == 1 and len(eileen_ids) == 1 and grace_ids != eileen_ids
    with report.open() as handle:
        rows = list(csv.DictReader(handle))
    assert {(r["file"], r["status"]) for r in rows} == {
        ("broken.jpg", "rejected"),
        ("grace_copy.jpg", "duplicate"),
    }
    assert all(r["reason"] for r in rows)


def test_enroll_offline_resume_recognize_compare_export_import(
    workdir: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    photos = build_folder(workdir / "people")
    report = workdir / "rejections.csv"
    argv = ["enroll", str(photos), "--collection", "staff", "--workers", "2", "--json"]
    first = run_json(capsys, [*argv, "--report", str(report)])
    check_first_run(first, report)
    assert (photos / STATE_FILE).exists()

    again = run_json(capsys, argv)  # resumable: nothing enrolled twice
    assert isinstance(again, dict) and again["enrolled"] == 0 and again["skipped"] == 4

    (photos / STATE_FILE).unlink()  # offline also knows the photos from the faces' SHA-256
    third = run_json(capsys, argv)
    assert isinstance(third, dict) and third["enrolled"] == 0 and third["skipped"] == 4

    probe = str(photos / "Grace Hopper" / "grace.jpg")
    found = run_json(capsys, ["recognize", probe, "--collection", "staff", "--json"])
    assert isinstance(found, list) and found[0]["faces"][0]["best_match"]["person_name"] == (
        "Grace Hopper"
    )
    same = run_json(
        capsys, ["compare", probe, str(photos / "Grace Hopper" / "grace-rotated.png"), "--json"]
    )
    assert isinstance(same, dict) and same["is_same_person"] is True
    assert main(["recognize", probe, "--collection", "staff"]) == 0
    assert "Grace Hopper" in capsys.readouterr().out

    gallery = workdir / "staff.jsonl"
    exported = run_json(capsys, ["export", str(gallery), "--collection", "staff", "--json"])
    assert isinstance(exported, dict) and exported["faces"] == 4 and exported["chips"] == 4

    monkeypatch.setenv("FACEREC_DB__URL", f"sqlite+aiosqlite:///{workdir / 'fresh.db'}")
    monkeypatch.setenv("FACEREC_INDEX__INDEX_DIR", str(workdir / "fresh-index"))
    imported = run_json(capsys, ["import", str(gallery), "--json"])
    assert isinstance(imported, dict) and imported["persons"] == 2 and imported["faces"] == 4
    found = run_json(capsys, ["recognize", probe, "--collection", "staff", "--json"])
    assert isinstance(found, list)
    best = found[0]["faces"][0]["best_match"]
    assert best["person_name"] == "Grace Hopper"
    assert best["person_id"] == by_file(first)["grace.jpg"]["person_id"]
    twice = run_json(capsys, ["import", str(gallery), "--json"])
    assert isinstance(twice, dict) and twice["persons"] == 0 and twice["skipped"] == 2

    # A gallery of another embedding space is refused by a collection with faces.
    other = workdir / "other.jsonl"
    lines = gallery.read_text().splitlines()
    space = next(iter(json.loads(lines[0])["spaces"]))
    other.write_text("\n".join(line.replace(space, "other_model@1") for line in lines) + "\n")
    refused = run_json(capsys, ["import", str(other), "--json"], code=1)
    assert isinstance(refused, dict) and "other_model@1" in refused["error"]
    refused = run_json(capsys, ["import", str(other), "--migrate", "--json"], code=1)
    assert isinstance(refused, dict) and "not supported" in refused["error"]


def test_enroll_table_and_bad_folder(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    photos = build_folder(workdir / "people")
    assert main(["enroll", str(photos), "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "enrolled" in out and "broken.jpg" in out and "duplicate" in out
    assert main(["enroll", str(workdir / "missing"), "--json"]) == 1
    assert "not a folder" in capsys.readouterr().out


def test_enroll_and_recognize_against_a_running_service(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    photos = build_folder(tmp_path / "people")
    report = tmp_path / "rejections.csv"
    with running_server({"FACEREC_MODELS__PRELOAD": '["retinaface","dlib_resnet"]'}) as server:
        url = str(server.client.base_url)
        argv = ["enroll", str(photos), "--collection", "staff", "--url", url, "--json"]
        first = run_json(capsys, [*argv, "--workers", "4", "--report", str(report)])
        check_first_run(first, report)
        again = run_json(capsys, argv)
        assert isinstance(again, dict) and again["enrolled"] == 0 and again["skipped"] == 4
        probe = str(photos / "Eileen Collins" / "eileen.png")
        found = run_json(
            capsys, ["recognize", probe, "--collection", "staff", "--url", url, "--json"]
        )
        assert isinstance(found, list)
        assert found[0]["faces"][0]["best_match"]["person_name"] == "Eileen Collins"
        persons = server.client.get(
            "/api/face-recognition/persons", params={"collection": "staff"}
        ).json()["persons"]
        grace = next(p for p in persons if p["person_name"] == "Grace Hopper")
        assert grace["employee_id"] == "E-7" and grace["metadata"] == {"rank": "rear admiral"}
        assert grace["department"] == "Navy" and grace["face_count"] == 2
    assert np.isfinite(first["seconds"]) if isinstance(first, dict) else False
