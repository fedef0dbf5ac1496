"""The Analysis: one versioned, JSON-serialisable object that every writer reads."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from functools import lru_cache
from pathlib import Path
from typing import Any

from moodlens.errors import INCOMPLETE_MEDIA
from moodlens.labels import EMOTIONS, SENTIMENTS
from moodlens.media import MediaInfo

SCHEMA_VERSION = "1.4"
SCHEMA_PATH = Path(__file__).resolve().parent / "schema" / "analysis-v1.json"


@dataclass(frozen=True)
class Prediction:
    """A distribution over labels and its top label."""

    label: str
    score: float
    probabilities: dict[str, float]

    @classmethod
    def from_probabilities(cls, labels: tuple[str, ...], probs: Any) -> Prediction:
        values = [float(p) for p in probs]
        total = sum(values)
        values = [v / total for v in values] if total > 0 else values
        best = max(range(len(values)), key=values.__getitem__)
        return cls(labels[best], round(values[best], 6),
                   {k: round(v, 6) for k, v in zip(labels, values, strict=True)})


# ModalityResult.detail keys that fusion reads (fusion.fuse_file): the track an expert chose as
# the talking face, how unlike the training voices a voice is (VoiceHead.atypicality), and how
# its pitch wobbles (pitch.pitch_jitter)
TALKING_TRACK = "talking_track"
ATYPICALITY = "atypicality"
PITCH_JITTER = "pitch_jitter"


@dataclass(frozen=True)
class ModalityResult:
    """One expert's view of one utterance. `coverage` in [0, 1] scales its fusion weight.

    An expert that had the input but would only be guessing (an utterance too short for the
    voice, no clear face) says so: no prediction, coverage 0, and the reason in `detail["skipped"]`.
    """

    emotion: Prediction | None
    sentiment: Prediction | None
    coverage: float
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class UtteranceResult:
    index: int
    start: float
    end: float
    text: str
    speaker: str | None
    source: str
    emotion: Prediction | None
    sentiment: Prediction | None
    modalities_used: list[str]
    per_modality: dict[str, ModalityResult]
    speaker_detail: dict[str, Any] = field(default_factory=dict)  # by, face_track, reason
    turn: int | None = None  # the speaker turn judged (turns.py); None in analyses before 1.3
    agreement: dict[str, Any] | None = None  # whether the experts agree, and on what (fusion.agreement)
    language: str | None = None  # heard (language.py); None before 1.4, and where not told
    language_probability: float | None = None
    text_en: str | None = None  # the English the text model read, where `text` is another language


@dataclass(frozen=True)
class SentimentPoint:
    start: float
    end: float
    score: float


@dataclass(frozen=True)
class Summary:
    utterance_count: int
    speaking_time: float
    emotion_share: dict[str, float]
    dominant_emotion: str | None
    sentiment_score: float | None
    sentiment_timeline: list[SentimentPoint]


@dataclass(frozen=True)
class SpeakerSummary:
    """One speaker over the whole video."""

    id: str  # S1, S2, ... or a transcript's name
    name: str | None  # the transcript's name where it gave one
    talk_time: float
    utterance_count: int
    emotion_share: dict[str, float]
    dominant_emotion: str | None
    sentiment_score: float | None
    face_tracks: list[str]


@dataclass(frozen=True)
class ModalityInfo:
    available: bool
    model: str | None
    trained_on: str | None
    reason: str | None = None
    languages: str | None = None  # how it treats languages other than English (language.py)


@dataclass(frozen=True)
class Damage:
    """What decoding skipped: packets the demuxer or decoder rejected. Skipped audio is replaced by
    silence of the same length, so times stay true."""

    audio_packets: int = 0
    audio_seconds: float = 0.0
    video_packets: int = 0
    demux_errors: int = 0


@dataclass(frozen=True)
class MediaRecord(MediaInfo):
    """Analysis.media: the file or stream as probed (media.MediaInfo), with what decoding skipped;
    `path` is the name its user knows it by."""

    damage: Damage | None = None  # absent from documents written before damage was counted

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> MediaRecord:
        damage = raw.get("damage")
        return cls(**{**_known(cls, raw), "damage": Damage(**damage) if damage is not None else None})


@dataclass(frozen=True)
class FusionSettings:
    """How the experts' judgements were joined: decision-level (weights, the measured baselines,
    the per-utterance trust) or feature-level (one `moodlens train` model)."""

    method: str
    weights: dict[str, float] | None = None
    baselines: list[str] | None = None
    trust: dict[str, Any] | None = None
    model: str | None = None


@dataclass(frozen=True)
class SpeakerSettings:
    """How speakers were found: the method ("off", "none", "voice (CAM++)", "face tracks only ..."),
    the count forced by --speakers N, the voice embedding model, and whether labels came online."""

    method: str
    forced_count: int | None = None
    voice_model: str | None = None
    online: bool | None = None


@dataclass(frozen=True)
class TurnSettings:
    """What the experts judged whole: `count` turns from `segments` recognised segments, joined
    across pauses up to `max_gap` s within one voice (files), or closed as a live stream closes
    them; `unit` says which, in words."""

    count: int
    segments: int
    max_gap: float | None = None
    unit: str | None = None


@dataclass(frozen=True)
class LiveSettings:
    """A live analysis: its source, when it started, what ended it, and whether it ended whole."""

    source: str
    started_at: str
    ended: str
    complete: bool


@dataclass(frozen=True)
class Settings:
    """Analysis.settings: what the analysis ran with. Records that a document predates are None."""

    asr_model: str | None = None  # None: a transcript gave the lines
    transcript: str | None = None
    fps: float = 2.0
    device: str = "cpu"
    fusion: FusionSettings | None = None
    speakers: SpeakerSettings | None = None
    turns: TurnSettings | None = None  # schema 1.3
    modalities: list[str] = field(default_factory=lambda: ["text", "face", "voice"])
    language: str = "auto"  # schema 1.4
    live: LiveSettings | None = None  # live analyses only

    def to_dict(self) -> dict[str, Any]:
        """As JSON holds it: a record that is absent is left out, and so is an absent value inside one."""
        out: dict[str, Any] = {}
        for name, value in asdict(self).items():
            if isinstance(value, dict) and name != "modalities":
                value = {k: v for k, v in value.items() if v is not None}
            if value is not None or name in ("asr_model", "transcript"):
                out[name] = value
        return out

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> Settings:
        records = {"fusion": FusionSettings, "speakers": SpeakerSettings, "turns": TurnSettings, "live": LiveSettings}
        given = _known(cls, raw)
        for name, record in records.items():
            if given.get(name) is not None:
                given[name] = record(**_known(record, given[name]))
        return cls(**given)


def _known(cls: type, raw: dict[str, Any]) -> dict[str, Any]:
    """The keys of `raw` that `cls` has fields for: a newer minor schema may add others."""
    names = {f.name for f in fields(cls)}
    return {k: v for k, v in raw.items() if k in names}


UTTERANCE_COLUMNS = (
    "index", "start", "end", "speaker", "text", "emotion", "emotion_score", "sentiment", "sentiment_score",
    "modalities_used", *(f"emotion_p_{e}" for e in EMOTIONS), *(f"sentiment_p_{s}" for s in SENTIMENTS),
    "turn", "experts_agree", "language", "text_en",
)


@dataclass(frozen=True)
class Analysis:
    media: MediaRecord
    settings: Settings
    modalities: dict[str, ModalityInfo]
    utterances: list[UtteranceResult]
    summary: Summary
    notes: list[str]
    moodlens_version: str
    created_at: str
    speakers: list[SpeakerSummary] = field(default_factory=list)
    # the file's language: code, probability, given (by --language) and, where none, the reason
    language: dict[str, Any] = field(default_factory=dict)
    schema_version: str = SCHEMA_VERSION

    @property
    def incomplete(self) -> list[str]:
        """Notes saying the media broke off early: the analysis covers only part of it."""
        return [n for n in self.notes if n.startswith(INCOMPLETE_MEDIA)]

    @property
    def name(self) -> str:
        return Path(self.media.path).stem

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["settings"] = self.settings.to_dict()
        if self.media.damage is None:
            del data["media"]["damage"]
        return data

    def utterance_rows(self) -> list[dict[str, Any]]:
        """One flat record per utterance, keyed by UTTERANCE_COLUMNS: what the CSV writer and
        to_pandas() show. None where a value is absent (no prediction, no speaker, English)."""
        rows = []
        for u in self.utterances:
            emotion = u.emotion.probabilities if u.emotion else {}
            sentiment = u.sentiment.probabilities if u.sentiment else {}
            rows.append({
                "index": u.index, "start": u.start, "end": u.end, "speaker": u.speaker, "text": u.text,
                "emotion": u.emotion.label if u.emotion else None,
                "emotion_score": u.emotion.score if u.emotion else None,
                "sentiment": u.sentiment.label if u.sentiment else None,
                "sentiment_score": u.sentiment.score if u.sentiment else None,
                "modalities_used": "+".join(u.modalities_used),
                **{f"emotion_p_{e}": emotion.get(e) for e in EMOTIONS},
                **{f"sentiment_p_{s}": sentiment.get(s) for s in SENTIMENTS},
                "turn": u.turn, "experts_agree": None if u.agreement is None else bool(u.agreement["agree"]),
                "language": u.language, "text_en": u.text_en,
            })
        return rows

    def to_pandas(self) -> Any:
        """The utterances as a pandas DataFrame, one row each, columns as in the CSV output
        (pandas is the optional extra `moodlens[pandas]`)."""
        try:
            import pandas
        except ImportError as err:
            raise ImportError("Analysis.to_pandas() needs pandas: pip install 'moodlens[pandas]'") from err
        return pandas.DataFrame(self.utterance_rows(), columns=list(UTTERANCE_COLUMNS))

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent, ensure_ascii=False)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Analysis:
        """An Analysis from its JSON form, this schema or an older one of the same major version; a
        ValueError for a newer major version, whose meaning this release cannot know."""
        version = str(data.get("schema_version", ""))
        major = version.split(".")[0]
        if not major.isdigit():
            raise ValueError(f"not an Analysis document: schema_version {version!r}")
        if int(major) > int(SCHEMA_VERSION.split(".")[0]):
            raise ValueError(f"this Analysis has schema {version}, newer than the {SCHEMA_VERSION} that this "
                             "moodlens reads: upgrade moodlens to load it")
        def prediction(raw: dict[str, Any] | None) -> Prediction | None:
            return Prediction(**raw) if raw else None

        def modality(raw: dict[str, Any]) -> ModalityResult:
            return ModalityResult(prediction(raw["emotion"]), prediction(raw["sentiment"]),
                                  raw["coverage"], raw.get("detail", {}))

        utterances = [
            UtteranceResult(
                **{k: v for k, v in u.items() if k not in ("emotion", "sentiment", "per_modality")},
                emotion=prediction(u["emotion"]),
                sentiment=prediction(u["sentiment"]),
                per_modality={k: modality(v) for k, v in u["per_modality"].items()},
            )
            for u in data["utterances"]
        ]
        raw_summary = dict(data["summary"])
        raw_summary["sentiment_timeline"] = [SentimentPoint(**p) for p in raw_summary["sentiment_timeline"]]
        return cls(
            media=MediaRecord.from_dict(data["media"]),
            settings=Settings.from_dict(data["settings"]),
            modalities={k: ModalityInfo(**v) for k, v in data["modalities"].items()},
            utterances=utterances,
            summary=Summary(**raw_summary),
            notes=list(data["notes"]),
            moodlens_version=data["moodlens_version"],
            created_at=data["created_at"],
            speakers=[SpeakerSummary(**s) for s in data.get("speakers", [])],
            language=dict(data.get("language", {})),
            schema_version=data["schema_version"],
        )


@lru_cache(maxsize=1)
def schema() -> dict[str, Any]:
    return json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))


def validate(data: dict[str, Any]) -> None:
    """Raise jsonschema.ValidationError when `data` is not a valid Analysis document."""
    import jsonschema

    jsonschema.validate(data, schema())
