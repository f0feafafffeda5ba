"""The compose topology, run locally: two ``facerec serve`` replicas on one PostgreSQL and Redis
behind a round-robin proxy. Enroll through the proxy, recognize through it (both replicas answer,
by the proxy's ``X-Upstream`` and by each replica's own /metrics), erase through it: the person is
gone from both replicas. Bounded: 12 recognitions, every call with a timeout, 4 minutes in all."""

from __future__ import annotations

import base64
import re
import time
import uuid

import httpx
import pytest

from tests.deploy.conftest import Topology
from tests.images import grace_hopper_jpeg

pytestmark = [pytest.mark.postgres, pytest.mark.redis]

API = "/api/face-recognition"
RECOGNIZE = f"{API}/recognize"
ROUNDS = 12
BUDGET_S = 240.0


def recognized_200(metrics: str) -> float:
    pattern = (
        r'^facerec_http_requests_total\{(?=[^}]*route="' + re.escape(RECOGNIZE) + r'")'
        r'(?=[^}]*status="200")[^}]*\}\s+(\S+)$'
    )
    return sum(float(value) for value in re.findall(pattern, metrics, re.M))


def test_two_replicas_behind_a_round_robin_proxy(topology: Topology) -> None:
    started = time.monotonic()
    face = base64.b64encode(grace_hopper_jpeg()).decode("ascii")
    person_id = f"deploy-{uuid.uuid4().hex[:10]}"
    headers = {"X-API-Key": topology.api_key}
    scrape = {"Authorization": f"Bearer {topology.metrics_token}"}
    replicas = [replica.base for replica in topology.replicas]

    with httpx.Client(base_url=topology.proxy.base, headers=headers, timeout=60) as client:
        assert client.get(RECOGNIZE.replace("recognize", "persons")).status_code == 200
        assert httpx.get(topology.proxy.base + "/api/models", timeout=10).status_code == 401

        enrolled = client.post(
            f"{API}/add-face",
            json={"person_name": "Grace", "person_id": person_id, "face_image_base64": face},
        )
        assert enrolled.status_code == 200, enrolled.text

        upstreams: list[str] = []
        for _ in range(ROUNDS):
            answer = client.post(RECOGNIZE, json={"face_image_base64": face})
            assert answer.status_code == 200, answer.text
            best = answer.json()["best_match"]
            assert best is not None and best["person_id"] == person_id
            upstreams.append(answer.headers["x-upstream"])
        assert sorted(set(upstreams)) == sorted(replicas)
        assert min(upstreams.count(base) for base in replicas) >= ROUNDS // 2 - 1

        # Each replica counts its own share: nothing is shared but the database and Redis.
        counted = []
        for base in replicas:
            metrics = httpx.get(base + "/metrics", headers=scrape, timeout=10)
            assert metrics.status_code == 200
            counted.append(recognized_200(metrics.text))
        assert all(count >= 1 for count in counted) and sum(counted) == ROUNDS, counted

        erased = client.delete(f"{API}/persons/{person_id}")
        assert erased.status_code == 200, erased.text

    for base in replicas:  # asked directly, not through the proxy
        with httpx.Client(base_url=base, headers=headers, timeout=60) as replica:
            assert replica.get(f"{API}/persons/{person_id}").status_code == 404
            answer = replica.post(RECOGNIZE, json={"face_image_base64": face})
            assert answer.status_code == 200, answer.text
            ids = {match["person_id"] for match in answer.json()["matches"]}
            assert person_id not in ids and answer.json()["unknown"] is True

    assert time.monotonic() - started < BUDGET_S
