from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from moodlens import media
from moodlens.errors import INCOMPLETE_MEDIA, InvalidMediaError, NoMediaError
from moodlens.media import (
    SAMPLE_RATE,
    DecodeDamage,
    expand_path,
    iter_audio,
    probe,
    read_audio,
    sample_frames,
)
from tests.conftest import DEMO
from tests.media_factory import truncate, write_media, write_mp3_with_cover


@pytest.mark.parametrize(
    ("name", "video", "audio"),
    [
        ("h264_aac.mp4", "h264", "aac"),
        ("vp9_opus.webm", "vp9", "opus"),
        ("h264_aac.mov", "h264", "aac"),
        ("tone.wav", None, "pcm_s16le"),
        ("tone.mp3", None, "mp3float"),
        ("tone.m4a", None, "aac"),
    ],
)
def test_probe_and_decode_every_container(media_dir: Path, name: str, video: str | None,
                                          audio: str) -> None:
    info = probe(media_dir / name)
    assert info.video_codec == video
    assert info.audio_codec == audio
    assert info.duration == pytest.approx(2.0, abs=0.15)
    samples = read_audio(media_dir / name)
    assert samples.dtype == np.float32
    # 16 kHz mono whatever the source rate (16, 44.1 or 48 kHz)
    assert samples.size == pytest.approx(2.0 * SAMPLE_RATE, rel=0.05)
    # the 220 Hz tone survives resampling: its spectral peak is where it should be
    spectrum = np.abs(np.fft.rfft(samples[: SAMPLE_RATE]))
    assert np.argmax(spectrum) == pytest.approx(220, abs=3)


def test_sample_frames_rate_and_size(media_dir: Path) -> None:
    frames = list(sample_frames(media_dir / "h264_aac.mp4", fps=2.0, max_side=80))
    assert len(frames) == 4  # 2 s at 2 fps
    assert [round(f.time, 1) for f in frames] == [0.0, 0.5, 1.0, 1.5]
    assert frames[0].image.shape == (60, 80, 3)  # 320x240 scaled to fit 80
    assert frames[0].image.dtype == np.uint8


def test_rotation_is_applied(media_dir: Path) -> None:
    info = probe(media_dir / "rotated.mp4")
    assert info.rotation == 90
    frame = next(iter(sample_frames(media_dir / "rotated.mp4")))
    assert frame.image.shape[:2] == (320, 240)  # stored 320x240 landscape, shown portrait


def test_audio_streams_in_bounded_chunks(tmp_path: Path) -> None:
    path = write_media(tmp_path / "long.wav", seconds=7.0, video_codec=None, audio_codec="pcm_s16le")
    chunks = list(iter_audio(path, chunk_seconds=2.0))
    assert [offset for offset, _ in chunks] == [0.0, 2.0, 4.0, 6.0]
    assert all(c.size == 2 * SAMPLE_RATE for _, c in chunks[:-1])
    assert chunks[-1][1].size == pytest.approx(SAMPLE_RATE, rel=0.01)


def test_video_without_audio(media_dir: Path) -> None:
    info = probe(media_dir / "silent_video.mp4")
    assert info.has_video and not info.has_audio
    with pytest.raises(InvalidMediaError, match="has no audio stream"):
        read_audio(media_dir / "silent_video.mp4")


def bad_files(tmp_path: Path, media_dir: Path) -> dict[str, tuple[Path, str]]:
    empty = tmp_path / "empty.mp4"
    empty.touch()
    text = tmp_path / "notes.mp4"
    text.write_text("this is not a video\n" * 20)
    corrupt = tmp_path / "corrupt.mp4"
    data = bytearray((media_dir / "h264_aac.mp4").read_bytes())
    data[:64] = b"\x00garbage" * 8
    corrupt.write_bytes(bytes(data))
    image = tmp_path / "still.png"
    import cv2

    cv2.imwrite(str(image), np.zeros((8, 8, 3), np.uint8))
    return {
        "missing": (tmp_path / "missing.mp4", "file not found"),
        "empty": (empty, "file is empty"),
        "not media": (text, "not a readable media file"),
        "truncated": (truncate(media_dir / "h264_aac.mp4", tmp_path / "cut.mp4", 0.5),
                      "not a readable media file"),
        "corrupt header": (corrupt, "not a readable media file"),
        "still image": (image, "still image"),
        "folder": (tmp_path, "is a folder"),
    }


@pytest.mark.parametrize("case", ["missing", "empty", "not media", "truncated", "corrupt header",
                                  "still image", "folder"])
def test_bad_input_raises_typed_error_naming_the_file(tmp_path: Path, media_dir: Path,
                                                      case: str) -> None:
    path, reason = bad_files(tmp_path, media_dir)[case]
    with pytest.raises(InvalidMediaError) as info:
        probe(path)
    message = str(info.value)
    assert str(path) in message and reason in message
    assert "\n" not in message


@pytest.mark.parametrize("special", ["/dev/zero", "/dev/urandom"])
def test_device_files_are_refused_without_reading(special: str) -> None:
    if not Path(special).exists():
        pytest.skip(f"{special} does not exist here")
    with pytest.raises(InvalidMediaError, match="not a regular file"):
        probe(special)


def test_expand_path(tmp_path: Path, media_dir: Path) -> None:
    found = expand_path(media_dir)
    assert {p.name for p in found} >= {"h264_aac.mp4", "tone.wav", "vp9_opus.webm"}
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "readme.txt").write_text("no media here")
    with pytest.raises(NoMediaError, match="folder contains no media files"):
        expand_path(tmp_path / "empty")
    assert expand_path(tmp_path / "x.bin") == [tmp_path / "x.bin"]


def test_truncated_faststart_file_is_flagged_not_silently_short(tmp_path: Path) -> None:
    """With the index up front, a cut file opens and decodes cleanly, then just stops."""
    whole = write_media(tmp_path / "whole.mp4", seconds=4.0, faststart=True)
    cut = truncate(whole, tmp_path / "cut.mp4", 0.5)
    notes: list[str] = []
    frames = list(sample_frames(cut, fps=2.0, notes=notes))
    audio = sum(chunk.size for _, chunk in iter_audio(cut, notes=notes))
    assert len(frames) < 8 and audio < 4.0 * SAMPLE_RATE
    assert len(notes) == 2 and all(n.startswith(INCOMPLETE_MEDIA) for n in notes)
    assert "of 4.0 s" in notes[0]
    notes.clear()
    list(sample_frames(whole, notes=notes))
    list(iter_audio(whole, notes=notes))
    assert notes == []  # a whole file raises no alarm


def test_cover_art_is_not_video(tmp_path: Path) -> None:
    path = write_mp3_with_cover(tmp_path / "song.mp3")
    info = probe(path)
    assert info.has_audio and not info.has_video
    with pytest.raises(InvalidMediaError, match="has no video stream"):
        next(iter(sample_frames(path)))


def test_also_at_adds_frames_between_samples(media_dir: Path) -> None:
    frames = list(sample_frames(media_dir / "h264_aac.mp4", fps=1.0, also_at=[0.25, 1.72]))
    assert [round(f.time, 1) for f in frames] == [0.0, 0.3, 1.3, 1.8]


def test_skipping_unreferenced_frames_takes_the_frames_a_full_decode_would() -> None:
    import av

    fps, also_at = 2.0, [1.03, 1.07, 7.5, 7.51]
    expected, next_time, wanted, count = [], 0.0, iter(also_at), 0
    moment = next(wanted)
    with av.open(str(DEMO)) as container:
        for frame in container.decode(video=0):  # sample_frames's rule, on every frame
            count, time = count + 1, float(frame.time)
            take = time + 1e-6 >= next_time
            while moment is not None and time + 1e-6 >= moment:
                take, moment = True, next(wanted, None)
            if take:
                next_time = time + 1.0 / fps
                expected.append((time, frame.to_ndarray(width=640, height=360, format="rgb24")))
    with av.open(str(DEMO)) as container:  # the demo's B-frames that no frame refers to: ~40 %
        container.streams.video[0].codec_context.skip_frame = "NONREF"
        assert sum(1 for _ in container.decode(video=0)) < 0.7 * count

    frames = list(sample_frames(DEMO, fps=fps, also_at=also_at))
    assert [f.time for f in frames] == [t for t, _ in expected]
    for frame, (_, image) in zip(frames, expected, strict=True):
        assert np.array_equal(frame.image, image)


def flip_middle(source: Path, target: Path, count: int = 16) -> Path:
    """The issue's case: `count` bytes inverted halfway through the file."""
    data = bytearray(source.read_bytes())
    middle = len(data) // 2
    data[middle : middle + count] = bytes(b ^ 0xFF for b in data[middle : middle + count])
    target.write_bytes(bytes(data))
    return target


def audio_seconds(path: Path, notes: list[str] | None = None, damage: DecodeDamage | None = None) -> float:
    return sum(s.size for _, s in iter_audio(path, 5.0, notes, damage)) / SAMPLE_RATE


def test_decoding_goes_on_past_a_corrupt_packet(tmp_path: Path) -> None:
    # 16 flipped bytes in the demo's AAC used to end its audio at 8.9 s of 21.9 s
    damaged = flip_middle(DEMO, tmp_path / "damaged.mp4")
    notes: list[str] = []
    damage = DecodeDamage()
    clean = audio_seconds(DEMO)
    assert audio_seconds(damaged, notes, damage) >= 0.9 * clean
    frames = list(sample_frames(damaged, fps=2.0, notes=notes, damage=damage))
    assert frames[-1].time >= 0.9 * probe(DEMO).duration
    assert damage.any and damage.audio_packets >= 1 and 0 < damage.audio_seconds < 1.0
    assert not [n for n in notes if n.startswith(INCOMPLETE_MEDIA)]
    assert "could not be decoded" in damage.describe()


def test_skipped_audio_becomes_silence_so_times_stay_true(tmp_path: Path) -> None:
    """Audio after the damage is where it was: the lost packet is replaced, not dropped."""
    damaged = flip_middle(DEMO, tmp_path / "damaged.mp4")
    clean, broken = read_audio(DEMO), read_audio(damaged)
    assert abs(broken.size - clean.size) <= SAMPLE_RATE // 100
    tail = slice(clean.size - 2 * SAMPLE_RATE, clean.size - SAMPLE_RATE)  # well after the damage
    assert np.corrcoef(clean[tail], broken[tail])[0, 1] > 0.99


def test_damaged_real_clips_are_analysed_to_ninety_percent(tmp_path: Path, meld_clips: list[dict]) -> None:
    for row in meld_clips:
        source = Path(row["path"])
        damaged = flip_middle(source, tmp_path / source.name, count=64)
        damage = DecodeDamage()
        assert audio_seconds(damaged, damage=damage) >= 0.9 * audio_seconds(source), source.name
        frames = list(sample_frames(damaged, fps=5.0, damage=damage))
        clean = list(sample_frames(source, fps=5.0))
        assert frames[-1].time >= 0.9 * clean[-1].time, source.name


def test_decoding_gives_up_only_after_a_long_undecodable_stretch(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    source = write_media(tmp_path / "tone.m4a", seconds=6.0, video_codec=None, audio_codec="aac")
    data = bytearray(source.read_bytes())
    moov = data.find(b"moov")  # keep the index at the end intact; zero the last 2/3 of the samples
    data[len(data) // 3 : moov - 4] = bytes(moov - 4 - len(data) // 3)
    broken = tmp_path / "broken.m4a"
    broken.write_bytes(bytes(data))
    notes: list[str] = []
    damage = DecodeDamage()
    assert audio_seconds(broken, notes, damage) == pytest.approx(2.0, abs=0.2)
    assert damage.audio_seconds == pytest.approx(4.0, abs=0.2)  # all of it counted, none invented
    assert notes and notes[0].startswith(f"{INCOMPLETE_MEDIA}: audio ends at")
    monkeypatch.setattr(media, "GIVE_UP_SECONDS", 1.0)
    notes = []
    audio_seconds(broken, notes)
    assert notes[0].startswith(f"{INCOMPLETE_MEDIA}: audio decoding gave up at 2.0 s: nothing decodes after")


def test_damage_from_two_passes_is_the_larger_count_not_the_sum() -> None:
    first = DecodeDamage(audio_packets=2, audio_seconds=0.1, video_packets=0, demux_errors=1)
    first.merge(DecodeDamage(audio_packets=1, audio_seconds=0.3, video_packets=4, demux_errors=1))
    assert first.to_dict() == {"audio_packets": 2, "audio_seconds": 0.3, "video_packets": 4, "demux_errors": 1}
