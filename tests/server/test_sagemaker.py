"""The SageMaker inference contract: GET /ping and POST /invocations, on the real app and workers."""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from moodlens.analysis import validate
from moodlens.models.weights import shipped
from moodlens.server import ServerSettings, create_app


@pytest.fixture(scope="module")
def endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[TestClient, Path]]:
    model_dir = tmp_path_factory.mktemp("opt-ml-model")
    # a model directory as SageMaker unpacks it: here a voice head (the shipped one, copied)
    shutil.copy(shipped("voice_ravdess_whisper_tiny_en_v1.safetensors"), model_dir / "voice.safetensors")
    data = tmp_path_factory.mktemp("serve")
    settings = ServerSettings(data_dir=data, max_upload_mb=5, workers=1, model_dir=model_dir)
    with TestClient(create_app(settings)) as client:
        deadline = time.monotonic() + 240
        while client.get("/ping").status_code != 200:
            assert time.monotonic() < deadline, "the workers never became ready"
            time.sleep(0.2)
        yield client, data


def test_ping_is_503_until_the_models_are_loaded(tmp_path: Path) -> None:
    with TestClient(create_app(ServerSettings(data_dir=tmp_path), start_workers=False)) as client:
        answer = client.get("/ping")
        assert answer.status_code == 503 and answer.json()["status"] == "degraded"


def test_a_raw_video_body_gets_the_analysis_synchronously(endpoint: tuple[TestClient, Path],
                                                          meld_clips: list[dict]) -> None:
    client, data = endpoint
    assert client.get("/ping").status_code == 200
    clip = Path(meld_clips[1]["path"])
    answer = client.post("/invocations", content=clip.read_bytes(), headers={"Content-Type": "video/mp4"})
    assert answer.status_code == 200, answer.text
    analysis = answer.json()
    validate(analysis)
    assert analysis["utterances"] and analysis["utterances"][0]["emotion"]["label"]
    # the voice head came from the model directory: it has no measured baseline, so only face keeps one
    assert analysis["settings"]["fusion"]["baselines"] == ["face"]
    assert not any((data / "jobs").iterdir())  # a synchronous call keeps nothing behind


def test_a_json_video_path_from_s3_or_disk(endpoint: tuple[TestClient, Path], bucket: str, media_dir: Path) -> None:
    from moodlens.storage import s3_client, split_s3

    client, _ = endpoint
    s3_client().put_object(Bucket=split_s3(bucket)[0], Key="clips/a.mp4",
                           Body=(media_dir / "h264_aac.mp4").read_bytes())
    answer = client.post("/invocations", json={"video_path": f"{bucket}/clips/a.mp4"})
    assert answer.status_code == 200, answer.text
    assert answer.json()["media"]["path"] == "a.mp4" and answer.json()["media"]["has_video"]
    answer = client.post("/invocations", json={"video_path": str(media_dir / "tone.wav")})
    assert answer.status_code == 200 and not answer.json()["media"]["has_video"]


@pytest.mark.parametrize(("body", "headers", "status", "message"), [
    (b"not json", {"Content-Type": "application/json"}, 400, "not valid JSON"),
    (b'{"video": "x"}', {"Content-Type": "application/json"}, 400, "video_path"),
    (b'{"video_path": "relative/clip.mp4"}', {"Content-Type": "application/json"}, 404, "absolute path"),
    (b"plainly not a video" * 50, {"Content-Type": "video/mp4"}, 415, "not a readable media file"),
    (b"", {"Content-Type": "application/octet-stream"}, 415, "the body is empty"),
    (b"x", {"Content-Type": "text/plain"}, 415, "send the video as the body"),
    (b"x" * (6 * 2**20), {"Content-Type": "video/mp4"}, 413, "larger than the 5 MB limit"),
])
def test_bad_invocations_get_a_json_error(endpoint: tuple[TestClient, Path], body: bytes, headers: dict,
                                          status: int, message: str) -> None:
    client, data = endpoint
    answer = client.post("/invocations", content=body, headers=headers)
    assert answer.status_code == status and message in answer.json()["error"], answer.text
    assert not any((data / "jobs").iterdir())


def test_a_missing_s3_object_is_a_404(endpoint: tuple[TestClient, Path], bucket: str) -> None:
    client, _ = endpoint
    answer = client.post("/invocations", json={"video_path": f"{bucket}/nothing.mp4"})
    assert answer.status_code == 404 and "no such S3 object" in answer.json()["error"]


def test_a_model_dir_that_does_not_exist_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="model directory does not exist"):
        create_app(ServerSettings(data_dir=tmp_path, model_dir=tmp_path / "absent"), start_workers=False)
