"""AnalyzeOptions: every knob of `analyze`, checked where it is made, for the CLI and the library alike."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from moodlens.fusion import FusionWeights
from moodlens.language import AUTO, check_language
from moodlens.turns import TURN_GAP_SECONDS

DEVICES = ("cpu", "cuda")
EXPORT_MANIFEST = "moodlens-export.json"  # in a folder written by `moodlens export text|face`
FACE_SELECTIONS = ("active", "largest")
MODALITIES = ("text", "face", "voice")  # the experts (experts.EXPERTS, in the same order)


@dataclass(frozen=True)
class AnalyzeOptions:
    asr_model: str = "tiny.en"
    transcript: str | None = None
    fps: float = 2.0
    device: str = "cpu"
    fusion: FusionWeights = field(default_factory=FusionWeights)
    text_weights: str | None = None
    face_weights: str | None = None
    voice_weights: str | None = None
    window_seconds: float = 5.0
    max_side: int = 640
    face_selection: str = "active"  # the talking face (tracks.py), or the largest in each frame
    speakers: int | None = None  # force this many speakers; None: found from the evidence
    diarize: bool = True
    # the longest pause inside one speaker turn, which the experts judge whole (turns.py); 0: each
    # recognised segment alone
    turn_gap: float = TURN_GAP_SECONDS
    model: str | None = None  # a `moodlens train` bundle (DIR/best): feature-level fusion instead
    # the experts to run; the rest are not loaded or run, and the analysis reports them as off
    modalities: tuple[str, ...] = MODALITIES
    # What the result calls the file: the server passes the upload's own name, so a result
    # never shows where the server keeps it.
    media_name: str | None = None
    # "auto": told from the speech (language.py); a Whisper code reads all speech in that language
    language: str = AUTO

    @classmethod
    def from_flags(cls, *, fusion_weights: str = "", speakers: str = "auto", turn_gap: float | None = None,
                   **fields: Any) -> AnalyzeOptions:
        """Options as a command line or a form gives them: `fusion_weights` as `text=1,face=0.2`,
        `speakers` as auto, off or a number, paths as Path or str, None for "the default".
        ValueError, with a one-line message, for any bad value."""
        paths = ("transcript", "text_weights", "face_weights", "voice_weights", "model")
        fields = {k: (str(v) if k in paths and v is not None else v) for k, v in fields.items()}
        if isinstance(fields.get("modalities"), str):
            fields["modalities"] = fields["modalities"].lower()
        return cls(fusion=FusionWeights.parse(fusion_weights) if fusion_weights else FusionWeights(),
                   **({"turn_gap": turn_gap} if turn_gap is not None else {}), **parse_speakers(speakers), **fields)

    def __post_init__(self) -> None:
        object.__setattr__(self, "language", check_language(self.language))
        if not 0 < self.fps <= 60:
            raise ValueError(f"fps must be in (0, 60], got {self.fps:g}")
        if self.device not in DEVICES:
            raise ValueError(f"device must be cpu or cuda, got {self.device!r}")
        if self.window_seconds <= 0:
            raise ValueError(f"window_seconds must be positive, got {self.window_seconds:g}")
        if not 0 <= self.turn_gap <= 10:
            raise ValueError(f"turn_gap must be between 0 and 10 seconds, got {self.turn_gap:g}")
        if self.max_side < 32:
            raise ValueError(f"max_side must be at least 32, got {self.max_side}")
        names = self.modalities.split(",") if isinstance(self.modalities, str) else self.modalities  # "text,voice"
        object.__setattr__(self, "modalities", tuple(m.strip() for m in names if m.strip()))
        unknown = [m for m in self.modalities if m not in MODALITIES]
        if unknown or not self.modalities or len(set(self.modalities)) != len(self.modalities):
            raise ValueError(f"modalities must be distinct names among {', '.join(MODALITIES)}, "
                             f"got {','.join(self.modalities) or 'none'}")
        if self.model and tuple(sorted(self.modalities)) != tuple(sorted(MODALITIES)):
            raise ValueError("modalities apply to the experts; a --model bundle uses every modality it was trained on")
        if self.face_selection not in FACE_SELECTIONS:
            raise ValueError(f"face_selection must be active or largest, got {self.face_selection!r}")
        if self.speakers is not None and not 1 <= self.speakers <= 32:
            raise ValueError(f"speakers must be between 1 and 32, got {self.speakers}")
        if not isinstance(self.fusion, FusionWeights):
            raise ValueError("fusion must be a FusionWeights (FusionWeights.parse('text=1,face=0.5'))")
        for name in ("text_weights", "face_weights", "voice_weights"):
            value = getattr(self, name)
            exported = name != "voice_weights" and value is not None and (Path(value) / EXPORT_MANIFEST).is_file()
            if value is not None and not Path(value).is_file() and not exported:
                raise ValueError(f"{value}: {name.split('_')[0]} model file not found")


def parse_speakers(spec: str) -> dict[str, Any]:
    """auto | off | N as the AnalyzeOptions fields `speakers` and `diarize`."""
    value = spec.strip().lower()
    if value == "auto":
        return {"speakers": None, "diarize": True}
    if value == "off":
        return {"speakers": None, "diarize": False}
    if not value.isdigit():
        raise ValueError(f"--speakers must be auto, off or a number of speakers, got {spec!r}")
    return {"speakers": int(value), "diarize": True}


def require_device(device: str) -> None:
    """Refuse a device this process cannot use. Checked where the models run (analyze, warm_up,
    the CLI for local work), not when options are made: a batch driver on a laptop hands
    `device="cuda"` to a Ray cluster's GPU workers."""
    if device == "cuda":
        import torch

        if not torch.cuda.is_available():
            raise ValueError("device cuda asked for, but no CUDA GPU is available")
