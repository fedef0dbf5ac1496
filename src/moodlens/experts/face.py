"""Face expert: the talking face (RetinaFace boxes tracked across frames sampled inside each
utterance, the one whose mouth moves most; see tracks.py), FER2013 mini-Xception on its crops,
averaged over the utterance's frames.

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
from moodlens.tracks import FaceTracker, TrackSighting, active_track
from moodlens.utterances import Utterance

TRACK = "talking_track"  # detail key: the track chosen as talking, whichever face was read


class FaceExpert:
    name = "face"
    needs = "video"

    def __init__(self, options: AnalyzeOptions) -> None:
        self.model = load_face_expert(options.face_weights, options.device)
        self.detector = default_detector(options.device)

    def describe(self) -> ModalityInfo:
        return ModalityInfo(available=True,
                            model=f"{self.detector.name} + {self.model.description}",
                            trained_on="FER2013 (posed still faces, not MELD); uncalibrated and weak on MELD "
                                       "(bench/face.py), so fused with a small measured weight")

    def predict(self, media: MediaContext, utterances: Sequence[Utterance]) -> ExpertOutput:
        """One streaming pass over sampled frames; each frame feeds the utterances it falls in.
        Every clear face is tracked and read; each utterance then takes the face that talks
        (`active_track`), or the largest face in every frame with `face_selection="largest"`."""
        if not media.info.has_video:
            return unavailable(self.describe(), "no video stream", len(utterances))
        if not utterances:
            return unavailable(self.describe(), "no utterances to read faces for", 0)
        media.report(self.name, 0.0)
        options = media.options
        frames = [0] * len(utterances)
        sightings: list[dict[str, TrackSighting]] = [{} for _ in utterances]
        largest: list[list[np.ndarray]] = [[] for _ in utterances]
        tracker = FaceTracker()
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
                faces = tracker.update(frame.image, self.detector.detect(frame.image))
                probs = self.model.predict([crop_face(frame.image, f.box) for f in faces]) if faces else []
                for i in inside:
                    frames[i] += 1
                    for face, p in zip(faces, probs, strict=True):
                        seen = sightings[i].setdefault(face.track, TrackSighting())
                        seen.faces.append(face)
                        seen.probabilities.append(p)
                    if faces:
                        largest[i].append(probs[0])
            media.report(self.name, min(1.0, float(frame.time) / max(last_end, 1e-6)))
        media.report(self.name, 1.0)

        results: list[ModalityResult | None] = [None] * len(utterances)
        for i in range(len(utterances)):
            if not frames[i]:
                continue
            chosen = active_track(sightings[i])
            if chosen is None:
                results[i] = ModalityResult(None, None, 0.0, {
                    "frames": frames[i], "frames_with_face": 0,
                    "skipped": f"no clear face in {frames[i]} frame{'s' if frames[i] != 1 else ''}"})
                continue
            track, selected_by = chosen
            if options.face_selection == "largest":
                read, selected_by = largest[i], "largest face in each frame"
            else:
                read = sightings[i][track].probabilities
            emotion = np.mean(read, axis=0)
            results[i] = ModalityResult(
                Prediction.from_probabilities(EMOTIONS, emotion),
                Prediction.from_probabilities(SENTIMENTS, sentiment_from_emotion(emotion)),
                coverage=round(len(read) / frames[i], 4),
                detail={"frames": frames[i], "frames_with_face": len(read), TRACK: track,
                        "selected_by": selected_by, "faces": len(sightings[i]),
                        "sentiment_from": "emotion, via P(sentiment | emotion) on MELD train"})
        return finished(self.describe(), results, "no face found in the sampled frames")


def face_track(result: ModalityResult | None) -> str | None:
    """The face track an utterance's face result read (the talking face), if any."""
    return None if result is None else result.detail.get(TRACK)
