"""Late fusion: how the experts' per-utterance predictions become one, and the one assembly
step that both fusers (decision-level here, feature-level in feature_level.py) end in.

Decision-level fusion multiplies likelihood ratios, each expert mixed with its own baseline:

    log p(c) = sum over experts e of  log( (r_e p_e(c) + (1 - r_e) b_e(c)) / b_e(c) ),
    r_e = weight_e * coverage_e

- b_e is what expert e says on average on TV dialogue (its *baseline*, measured without labels
  on the MELD clips by bench/fusion.py). By Bayes' rule p_e(c | x) / p_e(c) is proportional to
  the likelihood p(x | c), so an expert counts only where it says more than it always says: the
  FER face model answers "sadness" for a third of TV faces, and such a face adds nothing. The
  text expert is the anchor: its baseline is uniform, so its own distribution, class prior
  included, is the starting point, and the prior enters once.
- r_e in [0, 1] is how far the expert is relied on: the chance that it read this utterance
  rather than said its baseline. Unlike an exponent it bounds what one expert can do: it can
  lower a class by at most log(1 / (1 - r_e)) nats, so a confidently wrong voice or face cannot
  veto what the text says, only weigh against it. The weights are measured (bench/fusion.py,
  written to weights/fusion_v3.json), never hand-set.
- An expert that says its baseline changes nothing, whatever its weight.
- An expert that does not know a class gives it the share a know-nothing expert would (see
  models.voice.full_distribution), so a voice head trained without "neutral" cannot push a
  neutral line away from neutral: missing classes count as unknown, not as zero.
- coverage_e in [0, 1] is how much of the utterance the expert saw (share of frames with a
  face, of audio that was not silence), so a modality that saw little counts little.
- A user's own face or voice weights have no measured baseline; theirs is taken as uniform.

Per utterance, two more things set what an expert is worth (`fuse_file`, fitted by
bench/fusion.py on four regimes: real acted speech with neutral words, emotional words in a
synthetic voice, line by line and as whole dialogues, real TV clips):
- A face counts by how far it departs from *that person's own* baseline across the video: its
  face track's mean reading (the video's, where the track was read once; the TV baseline, where
  the video has one reading). Its reliability grows with that departure (total variation),
  fully from `Trust.face_change` on. A face that never changes, a smiling still photo, says
  its own baseline on every line and adds nothing, however sure FER is.
- The text counts less the surer it is that the words are neutral (`Trust.text_neutral`: the
  share of its weight it keeps at certainty): neutral words do not mean a calm speaker, and
  MELD labels what was seen and heard, not what was said.
- A voice counts by how typical it is of the voices the head was trained on
  (`VoiceHead.atypicality`): fully up to `Trust.voice_typical`, then halving every
  `Trust.voice_halving` beyond, so a synthetic or out-of-domain voice cannot outvote the words.
  That measure also reads the channel: TV audio is further from the head's studio recordings
  than espeak-ng is. So a voice also counts fully where the file's voices wobble in pitch as
  people's do (`pitch.pitch_jitter`, the file's median, from `Trust.voice_human` on, ramping up
  over `Trust.voice_human_ramp` below it), where a formant synthesiser's glide smoothly.
Each utterance's result carries `agreement`: which emotion each expert read, and whether they
agree ("text says anger, face says joy" is itself worth knowing: sarcasm, masking).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np

from moodlens.analysis import ATYPICALITY, PITCH_JITTER, TALKING_TRACK, ModalityResult, Prediction, UtteranceResult
from moodlens.labels import EMOTIONS, SENTIMENTS

MEASURED = Path(__file__).resolve().parent / "weights" / "fusion_v3.json"
_FLOOR = 1e-6  # keeps log() finite for an expert that is sure a class is impossible


def _measured() -> dict:
    """What bench/fusion.py measured; without the file, text alone."""
    try:
        document = json.loads(MEASURED.read_text(encoding="utf-8"))
        return {"weights": {k: float(v) for k, v in document["weights"].items()},
                "baselines": {name: Baseline(np.array(b["emotion"]), np.array(b["sentiment"]))
                              for name, b in document.get("baselines", {}).items()},
                "trust": {k: float(v) for k, v in document.get("trust", {}).items()}}
    except (OSError, KeyError, ValueError, AttributeError, TypeError):
        return {"weights": {"text": 1.0}, "baselines": {}, "trust": {}}


@dataclass(frozen=True)
class Baseline:
    """An expert's average emotion and sentiment distributions on TV dialogue."""

    emotion: np.ndarray
    sentiment: np.ndarray


_MEASURED = _measured()
_WEIGHTS: dict[str, float] = _MEASURED["weights"]
BASELINES: dict[str, Baseline] = _MEASURED["baselines"]
_TRUST: dict[str, float] = _MEASURED["trust"]


@dataclass(frozen=True)
class Trust:
    """How each utterance's reliabilities are made from what the experts saw (see the module doc)."""

    face_change: float = _TRUST.get("face_change", 0.2)
    text_neutral: float = _TRUST.get("text_neutral", 1.0)
    voice_typical: float = _TRUST.get("voice_typical", 1e9)
    voice_halving: float = _TRUST.get("voice_halving", 1.0)
    voice_human: float = _TRUST.get("voice_human", 1e9)
    voice_human_ramp: float = _TRUST.get("voice_human_ramp", 0.01)

    def text(self, neutral: float) -> float:
        """The share of its weight the text keeps when it gives `neutral` to "neutral": words
        that say nothing ("Kids are talking by the door") do not say the speaker was calm."""
        return 1.0 - (1.0 - self.text_neutral) * neutral

    def voice(self, atypicality: float | None, jitter: float | None = None) -> float:
        """The share of its weight a voice keeps: all of it where it is typical of the training
        voices or its pitch wobbles as a person's does (`jitter`, the file's), less the further it
        is from those voices otherwise."""
        if atypicality is None or atypicality <= self.voice_typical:
            return 1.0
        typical = float(0.5 ** ((atypicality - self.voice_typical) / max(self.voice_halving, 1e-6)))
        if jitter is None:
            return typical
        human = (jitter - self.voice_human) / max(self.voice_human_ramp, 1e-6) + 1.0
        return max(typical, min(1.0, max(0.0, human)))


@dataclass(frozen=True)
class FusionWeights:
    text: float = _WEIGHTS.get("text", 1.0)
    face: float = _WEIGHTS.get("face", 0.0)
    voice: float = _WEIGHTS.get("voice", 0.0)

    @classmethod
    def parse(cls, spec: str) -> FusionWeights:
        """`text=1,face=0.5` -> FusionWeights; unknown names and values outside [0, 1] are errors."""
        values = {}
        known = {f.name for f in fields(cls)}
        for part in filter(None, (p.strip() for p in spec.split(","))):
            name, _, raw = part.partition("=")
            name = name.strip()
            if name not in known:
                raise ValueError(f"unknown modality {name!r} in fusion weights (use {sorted(known)})")
            try:
                value = float(raw)
            except ValueError as err:
                raise ValueError(f"fusion weight for {name} is not a number: {raw!r}") from err
            if not 0 <= value <= 1:
                raise ValueError(f"fusion weight for {name} must be between 0 and 1 (a reliability)")
            values[name] = value
        return cls(**values)

    def of(self, modality: str) -> float:
        return float(getattr(self, modality, 0.0))


def pool(distributions: Sequence[np.ndarray], reliabilities: Sequence[float],
         baselines: Sequence[np.ndarray | None] | None = None) -> np.ndarray:
    """Product of each distribution's likelihood ratio against its baseline (uniform where it has
    none), after mixing it with that baseline by its reliability; normalised."""
    baselines = baselines or [None] * len(distributions)
    log = np.zeros(len(distributions[0]))
    for p, r, b in zip(distributions, reliabilities, baselines, strict=True):
        base = np.full(len(p), 1 / len(p)) if b is None else np.clip(b, _FLOOR, 1.0)
        log = log + np.log(np.clip(r * np.asarray(p) + (1 - r) * base, _FLOOR, None) / base)
    log = log - log.max()
    out = np.exp(log)
    return out / out.sum()


def fuse(
    results: dict[str, ModalityResult], weights: FusionWeights,
    baselines: dict[str, Baseline] | None = None, trust: dict[str, float] | None = None,
) -> tuple[Prediction | None, Prediction | None, list[str]]:
    """Fused emotion and sentiment, and the modalities that really contributed.

    A weight says how far an expert is relied on against the others, times `trust` (per expert, in
    [0, 1], 1 where absent): what this utterance's evidence is worth. An expert that is alone
    (a face-only video, say) is reported as it is, whatever its weight: there is nothing to
    weigh it against, and saying nothing would hide what it saw.
    """
    seen = [m for m, r in results.items() if r.emotion is not None and r.coverage > 0]
    used = [m for m in seen if weights.of(m) > 0] or (seen if len(seen) == 1 else [])
    if not used:
        return None, None, []
    if len(used) == 1:
        alone = results[used[0]]
        return alone.emotion, alone.sentiment, used
    trust = trust or {}
    reliabilities = [weights.of(m) * results[m].coverage * trust.get(m, 1.0) for m in used]
    known = baselines or {}
    emotion = pool([np.array([results[m].emotion.probabilities[e] for e in EMOTIONS]) for m in used],
                   reliabilities, [known[m].emotion if m in known else None for m in used])
    sentiment = pool([np.array([results[m].sentiment.probabilities[s] for s in SENTIMENTS]) for m in used],
                     reliabilities, [known[m].sentiment if m in known else None for m in used])
    return (Prediction.from_probabilities(EMOTIONS, emotion),
            Prediction.from_probabilities(SENTIMENTS, sentiment), used)


def own_baselines(per_modality: Sequence[dict[str, ModalityResult]], modality: str, group_key: str,
                  change: float) -> list[tuple[Baseline, float] | None]:
    """Per utterance, the baseline of the person `modality` read it in (the group
    `detail[group_key]`, a face track, where it was read more than once; else the whole video,
    where that was) and the share of its reliability it keeps: its total-variation distance from
    that baseline over `change`, at most 1. None where the expert said nothing, or where the video
    has one reading and nothing to compare it with (the measured TV baseline then applies)."""
    seen = [i for i, results in enumerate(per_modality)
            if (r := results.get(modality)) is not None and r.emotion is not None and r.coverage > 0]
    out: list[tuple[Baseline, float] | None] = [None] * len(per_modality)
    if len(seen) < 2:
        return out

    def emotion(i: int) -> np.ndarray:
        return np.array([per_modality[i][modality].emotion.probabilities[e] for e in EMOTIONS])

    def sentiment(i: int) -> np.ndarray:
        return np.array([per_modality[i][modality].sentiment.probabilities[s] for s in SENTIMENTS])

    groups: dict[object, list[int]] = {}
    for i in seen:
        groups.setdefault(per_modality[i][modality].detail.get(group_key), []).append(i)
    for key, members in groups.items():
        own = members if key is not None and len(members) > 1 else seen
        baseline = Baseline(np.mean([emotion(i) for i in own], axis=0), np.mean([sentiment(i) for i in own], axis=0))
        for i in members:
            departure = 0.5 * float(np.abs(emotion(i) - baseline.emotion).sum())
            out[i] = (baseline, min(1.0, departure / max(change, 1e-6)))
    return out


def file_jitter(per_modality: Sequence[dict[str, ModalityResult]]) -> float | None:
    """The median pitch jitter of the file's voiced utterances (pitch.pitch_jitter): one
    utterance's is noisy, and a video's voices are as a rule all people or all synthesised."""
    values = [j for results in per_modality if (voice := results.get("voice")) is not None
              and (j := voice.detail.get(PITCH_JITTER)) is not None]
    return float(np.median(values)) if values else None


def fuse_file(per_modality: Sequence[dict[str, ModalityResult]], weights: FusionWeights,
              baselines: dict[str, Baseline] | None = None, trust: Trust | None = None,
              indices: Sequence[int] | None = None, jitter: float | None = None,
              ) -> list[tuple[Prediction | None, Prediction | None, list[str]]]:
    """`fuse` for every utterance of one file (or those at `indices`: a live stream fuses its
    newest against the baselines of all so far), each with its own reliabilities: the face against
    its track's own baseline, the voice by how typical and how human it is (see the module doc).
    `jitter`: the whole file's, where these utterances are part of it; else file_jitter's."""
    trust = trust or Trust()
    known = baselines or {}
    faces = own_baselines(per_modality, "face", TALKING_TRACK, trust.face_change)
    jitter = file_jitter(per_modality) if jitter is None else jitter
    chosen = range(len(per_modality)) if indices is None else indices
    fused = []
    for results, face in ((per_modality[i], faces[i]) for i in chosen):
        own, worth = dict(known), {}
        if face is not None:
            own["face"], worth["face"] = face
        voice, text = results.get("voice"), results.get("text")
        worth["voice"] = trust.voice(voice.detail.get(ATYPICALITY) if voice is not None else None, jitter)
        if text is not None and text.emotion is not None:
            worth["text"] = trust.text(text.emotion.probabilities["neutral"])
        fused.append(fuse(results, weights, own, worth))
    return fused


def agreement(results: dict[str, ModalityResult]) -> dict[str, object] | None:
    """Which emotion each expert that read the utterance says, and whether they agree; None with
    fewer than two."""
    tops = {m: r.emotion.label for m, r in results.items() if r.emotion is not None and r.coverage > 0}
    if len(tops) < 2:
        return None
    return {"agree": len(set(tops.values())) == 1, "emotions": tops,
            "summary": ", ".join(f"{m} says {label}" for m, label in tops.items())}


def assemble(utterances: Sequence[object], per_modality: Sequence[dict[str, ModalityResult]],
             fused: Sequence[tuple[Prediction | None, Prediction | None, list[str]]]) -> list[UtteranceResult]:
    """One UtteranceResult per utterance, from what each expert said and what the fuser made of it."""
    return [
        UtteranceResult(
            index=index, start=round(u.start, 3), end=round(u.end, 3), text=u.text, speaker=u.speaker,
            source=u.source, emotion=emotion, sentiment=sentiment, modalities_used=used,
            per_modality=dict(modalities), agreement=agreement(modalities),
            language=getattr(u, "language", None), language_probability=getattr(u, "language_probability", None),
            text_en=getattr(u, "text_en", None),
        )
        for index, (u, modalities, (emotion, sentiment, used)) in enumerate(
            zip(utterances, per_modality, fused, strict=True))
    ]
