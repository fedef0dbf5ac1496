"""Live events: what a live analysis says as it goes, one JSON object per event (JSON Lines).

The schema is schema/live-events-v1.json. Every event has `type` and `schema_version`; times
(`start`, `end`, `time`) are seconds of media time from the stream's first sample, as in the
Analysis. The types:

- `start`: the stream is open, and what it holds;
- `face`: the largest clear face of a sampled frame, its box and what the face model reads in it
  (a preview: the utterance's face result is the talking face over the whole utterance);
- `partial`: while someone is still speaking (with `--partials`), the words heard so far; a preview
  that the span's `utterance` event replaces;
- `utterance`: one finalised utterance, as it will stand in the saved Analysis, except that its
  speaker may be relabelled when the stream ends;
- `speakers`: when the stream ends, speakers found again over every utterance; the labels that changed;
- `note`: something the user should know (dropped camera frames, a language told, a missing model);
- `end`: the stream ended, why, and where the Analysis was written.
"""

from __future__ import annotations

import json
import sys
import threading
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path
from typing import IO, Any

from moodlens.analysis import Prediction, UtteranceResult

EVENTS_SCHEMA_VERSION = "1.1"
EVENTS_SCHEMA_PATH = Path(__file__).resolve().parent / "schema" / "live-events-v1.json"
EVENT_TYPES = ("start", "face", "partial", "utterance", "speakers", "note", "end")

Emit = Callable[[dict[str, Any]], None]


def event(kind: str, **fields: Any) -> dict[str, Any]:
    assert kind in EVENT_TYPES, kind
    return {"type": kind, "schema_version": EVENTS_SCHEMA_VERSION, **fields}


def _prediction(prediction: Prediction | None) -> dict[str, Any] | None:
    return None if prediction is None else {"label": prediction.label, "score": prediction.score,
                                            "probabilities": prediction.probabilities}


def utterance_event(result: UtteranceResult, processing_seconds: float) -> dict[str, Any]:
    """A finalised utterance: its place in the Analysis (`index`), its judgement, each expert's top
    label, and how long it took from the end of its speech being detected to this event."""
    experts = {name: None if r.emotion is None else {"label": r.emotion.label, "score": r.emotion.score}
               for name, r in result.per_modality.items()}
    return event("utterance", index=result.index, start=result.start, end=result.end, text=result.text,
                 text_en=result.text_en, language=result.language, speaker=result.speaker,
                 emotion=_prediction(result.emotion), sentiment=_prediction(result.sentiment),
                 modalities_used=list(result.modalities_used), experts=experts,
                 processing_seconds=round(processing_seconds, 3))


@lru_cache(maxsize=1)
def events_schema() -> dict[str, Any]:
    return json.loads(EVENTS_SCHEMA_PATH.read_text(encoding="utf-8"))


def validate_event(data: dict[str, Any]) -> None:
    """Raise jsonschema.ValidationError when `data` is not a valid live event."""
    import jsonschema

    jsonschema.validate(data, events_schema())


class JsonLines:
    """Events written one per line and flushed at once, to a file or to standard output (`-`);
    safe to call from several threads."""

    def __init__(self, target: str | Path) -> None:
        self.target = str(target)
        self.stream: IO[str] = sys.stdout if self.target == "-" else open(self.target, "w", encoding="utf-8")  # noqa: SIM115
        self.lock = threading.Lock()

    def __call__(self, data: dict[str, Any]) -> None:
        line = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
        with self.lock:
            self.stream.write(line + "\n")
            self.stream.flush()

    def close(self) -> None:
        if self.stream is not sys.stdout:
            self.stream.close()
