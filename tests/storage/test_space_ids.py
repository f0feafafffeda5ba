"""Every embedder's embedding space id is one the gallery accepts: a space id the storage layer
refused made enrollment with that model answer 400 ``invalid_embedding_space``."""

from __future__ import annotations

import pytest

from facerec.config import Settings
from facerec.errors import InvalidInputError
from facerec.inference.base import FaceEmbedder
from facerec.inference.registry import build_models
from facerec.storage.models import check_space_name


def test_every_catalogue_embedder_space_id_is_accepted(tmp_path: object) -> None:
    embedders = [
        model
        for model in build_models(Settings(models={"model_dir": str(tmp_path)})).values()
        if isinstance(model, FaceEmbedder)
    ]
    assert len(embedders) >= 4
    settings_in_id = [e.space for e in embedders if "=" in e.space]
    assert settings_in_id, "expected at least one id carrying its settings (name@v+key=value)"
    for embedder in embedders:
        assert check_space_name(embedder.space) == embedder.space


@pytest.mark.parametrize("bad", ["", "-leading", "has space", "semi;colon", "x" * 129])
def test_malformed_space_ids_are_refused(bad: str) -> None:
    with pytest.raises(InvalidInputError) as caught:
        check_space_name(bad)
    assert caught.value.code == "invalid_embedding_space"
