from collections.abc import Iterator

import numpy as np
import pytest

from moodlens.features import face_tensor, padded_spans, text_with_context


def test_text_context_uses_only_previous_turns() -> None:
    history = ["a", "b", "c", "d"]
    assert text_with_context(history, k=2) == ("d", "b c")
    assert text_with_context(["only"], k=2) == ("only", "")
    assert text_with_context(history, k=0) == ("d", "")
    with pytest.raises(ValueError):
        text_with_context([])


def test_face_tensor_scales_to_minus_one_one() -> None:
    crops = [np.zeros((30, 20, 3), np.uint8), np.full((100, 100, 3), 255, np.uint8)]
    batch = face_tensor(crops)
    assert batch.shape == (2, 1, 64, 64)
    assert batch[0].max() == -1.0 and batch[1].min() == 1.0


def test_log_mel_shape_and_pitch() -> None:
    from moodlens.features import MEL_BANDS, MEL_FRAMES, log_mel

    t = np.arange(16_000, dtype=np.float32) / 16_000
    low, high = (log_mel(np.sin(2 * np.pi * hz * t)) for hz in (300.0, 3000.0))
    assert low.shape == high.shape == (MEL_BANDS, MEL_FRAMES) and low.dtype == np.float32
    # one second of audio fills 98 frames; the rest is padded with silence's value
    assert np.all(low[:, 99:] == low[0, -1])
    assert low[:, :90].mean(1).argmax() < high[:, :90].mean(1).argmax()
    assert log_mel(np.zeros(10), frames=None).shape[1] == 1  # shorter than one window still works
    assert log_mel(np.zeros(16_000 * 10)).shape == (MEL_BANDS, MEL_FRAMES)  # longer is cut


def test_clip_tensor_spreads_and_crops() -> None:
    from moodlens.features import clip_tensor

    frames = [np.full((90, 160, 3), i, np.uint8) for i in range(40)]
    clip = clip_tensor(frames, length=16, size=112)
    assert clip.shape == (16, 112, 112, 3) and clip.dtype == np.uint8
    assert clip[0, 0, 0, 0] == 0 and clip[-1, 0, 0, 0] == 39  # first and last frames, evenly between
    assert clip_tensor(frames[:3], length=16).shape[0] == 16  # few frames repeat, never black


def test_utterance_clips_and_audio_follow_their_spans() -> None:
    from moodlens.features import utterance_audio, utterance_clips

    spans = [(0.0, 1.0), (0.5, 2.0), (5.0, 6.0), (9.0, 9.5)]
    frames = ((i / 10, np.full((60, 80, 3), i, np.uint8)) for i in range(80))  # 8 s at 10 fps
    clips = dict(utterance_clips(frames, spans, length=4, size=32))
    assert clips[0][0, 0, 0, 0] == 0 and clips[0][-1, 0, 0, 0] == 10
    assert clips[1][0, 0, 0, 0] == 5 and clips[2][-1, 0, 0, 0] == 60
    assert 3 not in clips  # no frame falls inside it
    samples = np.arange(16_000 * 8, dtype=np.float32)
    chunks = ((offset, samples[offset * 16_000 : (offset + 3) * 16_000]) for offset in (0, 3, 6))
    audio = dict(utterance_audio(chunks, [(2.5, 3.5), (4.0, 20.0)], seconds=1.0))
    assert np.array_equal(audio[0], samples[40_000:56_000])  # crosses the chunk boundary at 3 s
    assert np.array_equal(audio[1], samples[64_000:80_000])  # only the first `seconds` is kept


def test_utterance_clips_and_audio_stream() -> None:
    """Each span comes out as soon as it is over, long before the input ends, so a caller that
    encodes as it goes never holds more than the open spans."""
    from moodlens.features import utterance_audio, utterance_clips

    consumed = []

    def frames() -> Iterator[tuple[float, np.ndarray]]:
        for i in range(600):  # 60 s at 10 fps
            consumed.append(i)
            yield i / 10, np.zeros((40, 40, 3), np.uint8)

    clips = utterance_clips(frames(), [(1.0, 2.0), (30.0, 31.0)], length=4, size=16)
    assert next(clips)[0] == 0 and len(consumed) < 30
    assert next(clips)[0] == 1 and len(consumed) < 320

    read = []

    def chunks() -> Iterator[tuple[float, np.ndarray]]:
        for offset in range(0, 60, 5):
            read.append(offset)
            yield float(offset), np.ones(5 * 16_000, np.float32)

    audio = utterance_audio(chunks(), [(1.0, 2.0), (12.0, 30.0), (58.0, 59.0)], seconds=1.0)
    assert next(audio)[0] == 0 and read == [0]
    index, samples = next(audio)
    assert index == 1 and samples.size == 16_000 and read == [0, 5, 10]  # enough after 1 s of it
    assert next(audio)[0] == 2


def test_long_utterance_clips_are_evenly_spaced() -> None:
    """A span with many frames keeps frames from its whole length, not mostly from its end."""
    from moodlens.features import utterance_clips

    frames = [(i / 8, np.full((120, 160, 3), i, np.uint8)) for i in range(200)]  # pixel value = frame number
    ((_, clip),) = list(utterance_clips(frames, [(0.0, 30.0)], length=16, size=32))
    picked = clip[:, 0, 0, 0].astype(int)
    gaps = np.diff(picked)
    assert picked[0] == 0 and picked[-1] >= 180
    assert gaps.min() >= 8 and gaps.max() <= 16  # about 200 / 15 apart, everywhere


def test_padding_never_reaches_into_a_neighbour() -> None:
    spans = padded_spans([(1.1, 2.0), (0.1, 1.0), (5.0, 6.0)], 0.25)  # any order in, the same order out
    assert spans == [(1.0, 2.25), (0.0, 1.1), (4.75, 6.25)]
    assert padded_spans([(0.5, 1.0), (2.0, 2.5)], 1.0) == [(0.0, 2.0), (1.0, 3.5)]
