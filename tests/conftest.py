from __future__ import annotations

import csv
import os
from pathlib import Path

import pytest

from tests.media_factory import write_media

ROOT = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("MOODLENS_SHARED", ROOT.parent / "shared"))
MELD_DIR = SHARED / "data" / "meld" / "MELD"
MELD_CLIPS = SHARED / "data" / "meld" / "media" / "test"
DEMO = ROOT / "examples" / "demo.mp4"

os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# Tests never touch the network: every model must resolve to packaged weights.
os.environ["HF_HUB_OFFLINE"] = "1"


def need_shared(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"{path} is absent: these tests need the real MELD data in ../shared")
    return path


@pytest.fixture(scope="session")
def meld_dir() -> Path:
    return need_shared(MELD_DIR)


@pytest.fixture(scope="session")
def meld_clips() -> list[dict[str, str]]:
    labels = need_shared(MELD_CLIPS / "labels.csv")
    with labels.open(encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    for row in rows:
        row["path"] = str(MELD_CLIPS / f"dia{row['Dialogue_ID']}_utt{row['Utterance_ID']}.mp4")
    return rows


@pytest.fixture(scope="session")
def media_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One file per container and codec, made once per session."""
    folder = tmp_path_factory.mktemp("media")
    write_media(folder / "h264_aac.mp4")
    write_media(folder / "vp9_opus.webm", video_codec="libvpx-vp9", audio_codec="libopus",
                audio_rate=48_000)
    write_media(folder / "h264_aac.mov")
    write_media(folder / "silent_video.mp4", audio_codec=None, seconds=6.0)
    write_media(folder / "no_face.mp4", face=False)
    write_media(folder / "rotated.mp4", rotation=90, audio_codec=None)
    write_media(folder / "tone.wav", video_codec=None, audio_codec="pcm_s16le")
    write_media(folder / "tone.mp3", video_codec=None, audio_codec="libmp3lame", audio_rate=44_100)
    write_media(folder / "tone.m4a", video_codec=None, audio_codec="aac", audio_rate=44_100)
    return folder


@pytest.fixture(scope="session")
def meld_raw(tmp_path_factory: pytest.TempPathFactory, meld_clips: list[dict[str, str]]
             ) -> tuple[Path, dict[str, list[str]]]:
    """MELD.Raw layout: 7 real clips + 3 generated ones as train, 4 real + 1 generated as dev."""
    from tests.meld_fixture import build_meld_raw

    root = tmp_path_factory.mktemp("MELD.Raw")
    return root, build_meld_raw(root, meld_clips)


@pytest.fixture(scope="session")
def meld_cache(tmp_path_factory: pytest.TempPathFactory, meld_raw: tuple[Path, dict[str, list[str]]]) -> Path:
    """The fixture's train and dev splits, prepared once for every test that trains."""
    pytest.importorskip("torchvision", reason="the multimodal extra is not installed")
    from moodlens.data.cache import prepare_split

    cache = tmp_path_factory.mktemp("meld-cache")
    for split in ("train", "dev"):
        prepare_split(meld_raw[0], split, cache, workers=2)
    return cache


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_port(port: int, process: object, seconds: float = 30.0) -> None:
    import socket
    import time

    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if getattr(process, "poll", lambda: None)() is not None:
            raise RuntimeError(f"the process meant to listen on {port} exited")
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise TimeoutError(f"nothing listens on port {port} after {seconds:g} s")


@pytest.fixture(scope="session")
def s3_endpoint() -> object:
    """A real S3 API: moto's server as its own process, and boto3 pointed at it the standard way
    (AWS_ENDPOINT_URL), so the code under test runs exactly as against MinIO or AWS."""
    import subprocess
    import sys

    server = Path(sys.executable).parent / "moto_server"
    if not server.exists():
        pytest.skip("moto[server] is not installed: `make test` installs the test extra")
    port = free_port()
    process = subprocess.Popen([str(server), "-H", "127.0.0.1", "-p", str(port)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    endpoint = f"http://127.0.0.1:{port}"
    saved = {k: os.environ.get(k) for k in (*AWS_TEST_ENV, "AWS_ENDPOINT_URL")}
    from moodlens.storage import s3_client

    try:
        wait_for_port(port, process)
        os.environ.update(AWS_TEST_ENV, AWS_ENDPOINT_URL=endpoint)
        s3_client.cache_clear()
        yield endpoint
    finally:
        process.terminate()
        process.wait(10)
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        s3_client.cache_clear()


AWS_TEST_ENV = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                "AWS_DEFAULT_REGION": "us-east-1", "AWS_CONFIG_FILE": "/dev/null",
                "AWS_SHARED_CREDENTIALS_FILE": "/dev/null"}


@pytest.fixture
def bucket(s3_endpoint: str) -> str:
    """A fresh, empty bucket per test: s3://NAME."""
    import uuid

    from moodlens.storage import s3_client

    name = f"moodlens-test-{uuid.uuid4().hex[:12]}"
    s3_client().create_bucket(Bucket=name)
    return f"s3://{name}"


def _postgres_bin() -> Path | None:
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
    return found[-1].parent if found else None


@pytest.fixture(scope="session")
def postgres_url() -> object:
    """A real PostgreSQL server in a temporary directory, started with initdb and pg_ctl (Debian's
    `postgresql` package, which `make test` installs where apt can); skipped with the reason where
    it can't be. As root, the server runs as the `postgres` user, since PostgreSQL refuses root."""
    import shutil
    import subprocess

    pytest.importorskip("psycopg", reason="psycopg is not installed: `make test` installs the scale extra")
    bin_dir = _postgres_bin()
    if bin_dir is None:
        pytest.skip("PostgreSQL is not installed (Debian's postgresql package); `make test` installs it where apt can")
    import tempfile

    as_user: list[str] = []
    # not under pytest's tmp root: that is private to the test user, and the server may run as another
    root = Path(tempfile.mkdtemp(prefix="moodlens-postgres-"))
    if os.geteuid() == 0:
        if shutil.which("runuser") is None:
            pytest.skip("running as root without runuser: PostgreSQL refuses to run as root")
        try:
            import pwd

            pwd.getpwnam("postgres")
        except KeyError:
            pytest.skip("running as root and there is no `postgres` user to run PostgreSQL as")
        shutil.chown(root, "postgres")
        root.chmod(0o700)
        as_user = ["runuser", "-u", "postgres", "--"]
    data, port = root / "data", free_port()

    def run(*args: str) -> None:
        subprocess.run([*as_user, *args], check=True, capture_output=True, timeout=120)

    run(str(bin_dir / "initdb"), "-D", str(data), "-U", "moodlens", "--auth=trust", "-E", "UTF8")
    run(str(bin_dir / "pg_ctl"), "-D", str(data), "-l", str(root / "server.log"), "-w", "-t", "60", "-o",
        f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c max_connections=100", "start")
    try:
        run(str(bin_dir / "createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", "moodlens", "moodlens")
        yield f"postgresql+psycopg://moodlens@127.0.0.1:{port}/moodlens"
    finally:
        subprocess.run([*as_user, str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop"],
                       capture_output=True, timeout=60)
        shutil.rmtree(root, ignore_errors=True)


def new_database(server_url: str) -> str:
    """A fresh database on the PostgreSQL server, so no test sees another's jobs."""
    import uuid

    import sqlalchemy

    name = f"jobs_{uuid.uuid4().hex[:10]}"
    engine = sqlalchemy.create_engine(server_url, isolation_level="AUTOCOMMIT")
    with engine.connect() as connection:
        connection.execute(sqlalchemy.text(f"CREATE DATABASE {name}"))
    engine.dispose()
    return server_url.rsplit("/", 1)[0] + f"/{name}"


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Each job-store test runs on SQLite and on a real PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'jobs.sqlite3'}"
    return new_database(request.getfixturevalue("postgres_url"))
