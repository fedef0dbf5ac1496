"""Face expert: the talking face (RetinaFace boxes tracked across the sampled frames, the one
whose mouth moves most inside the utterance; see tracks.py), FER2013 mini-Xception on its crops,
averaged over the utterance's frames. The frames are read on a thread of their own while speech
recognition runs (`FaceExpert.reading_ahead`).

Its probabilities are FER2013's, uncalibrated: on MELD frames they are no better than a uniform
guess at any temperature (bench/face.py). Fusion therefore counts a face only by how far it
departs from what the model says of TV faces on average, with a small measured weight."""

from __future__ import annotations

import bisect
import contextlib
import itertools
import os
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from moodlens.analysis import TALKING_TRACK, ModalityInfo, ModalityResult, Prediction
from moodlens.experts.base import ExpertOutput, MediaContext, finished, sentiment_from_emotion, unavailable
from moodlens.faces import FaceDetector, crop_face, default_detector
from moodlens.labels import EMOTIONS, SENTIMENTS
from moodlens.media import DecodeDamage, sample_frames
from moodlens.models.face import FaceModel, load_face_expert
from moodlens.options import AnalyzeOptions
from moodlens.tracks import FaceTracker, TrackedFace, TrackSighting, active_track
from moodlens.utterances import Utterance

MAX_READ_AHEAD = 1200  # frames read before the utterances are known (10 min at 2 fps; some 8 MB)
# reading ahead takes the core that speech recognition leaves idle, not the one it uses (bench/realtime_factor.py)
BESIDE_NICENESS = 10


@dataclass(frozen=True)
class FrameFaces:
    """One sampled frame's clear faces, tracked, and FER2013's probabilities for each."""

    time: float
    faces: list[TrackedFace]
    probabilities: list[np.ndarray]


def read_faces(time: float, image: np.ndarray, tracker: FaceTracker, detector: FaceDetector,
               model: FaceModel) -> FrameFaces:
    """One frame's clear faces, carried on from the tracker's earlier frames, and each one read."""
    faces = tracker.update(image, detector.detect(image))
    probabilities = model.predict([crop_face(image, f.box) for f in faces]) if faces else []
    return FrameFaces(time, faces, list(probabilities))


class FrameReader:
    """The face pass over one file's sampled frames, in time order. It can be started on a
    thread of its own before the utterances are known, reading every frame, and resumed by
    `FaceExpert.predict`, which then reads only the frames near an utterance."""

    def __init__(self, media: MediaContext, model: FaceModel, detector: FaceDetector) -> None:
        self.model, self.detector = model, detector
        # its own notes and damage until predict takes them in: a thread may be filling them
        self.notes: list[str] = []
        self.damage = DecodeDamage()
        options = media.options
        self.frames = sample_frames(media.info.path, options.fps, options.max_side, self.notes, damage=self.damage)
        self.tracker = FaceTracker()
        self.wanted: Callable[[float], bool] = lambda time: True
        self.until = float("inf")
        self.read: list[FrameFaces] = []
        self.error: BaseException | None = None

    def next(self) -> FrameFaces | None:
        """The next wanted frame's faces; None once past `until` or at the end."""
        for frame in self.frames:
            if frame.time > self.until:
                return None
            if self.wanted(frame.time):
                return read_faces(frame.time, frame.image, self.tracker, self.detector, self.model)
        return None

    def read_until(self, stop: threading.Event) -> None:
        """Read frames into `read` until STOP is set, the file ends or MAX_READ_AHEAD is reached."""
        if hasattr(os, "setpriority"):  # Linux: this thread only, and the decoder threads it starts
            with contextlib.suppress(OSError):
                os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), BESIDE_NICENESS)
        try:
            while not stop.is_set() and len(self.read) < MAX_READ_AHEAD:
                found = self.next()
                if found is None:
                    return
                self.read.append(found)
        except Exception as err:  # raised again by predict, in the caller's thread
            self.error = err


class FaceExpert:
    name = "face"
    needs = "video"

    def __init__(self, options: AnalyzeOptions) -> None:
        self.model = load_face_expert(options.face_weights, options.device)
        self.detector = default_detector(options.device)
        # one thread beside speech recognition, which keeps the other busy
        self.beside_detector = default_detector(options.device, threads=1)
        self.reader: FrameReader | None = None

    def describe(self) -> ModalityInfo:
        return ModalityInfo(available=True,
                            model=f"{self.detector.name} + {self.model.description}",
                            trained_on="FER2013 (posed still faces, not MELD); uncalibrated and weak on MELD "
                                       "(bench/face.py), so fused with a small measured weight")

    @contextlib.contextmanager
    def reading_ahead(self, media: MediaContext) -> Iterator[None]:
        """Read faces on a thread of its own while the block runs: speech recognition decodes on
        one core of two, so the demo's faces are read in its idle time (bench/stage_profile.py).
        Every frame is read, as the utterances are not known yet; predict goes on from there."""
        if not media.info.has_video:
            yield
            return
        reader = FrameReader(media, self.model, self.beside_detector)
        stop = threading.Event()
        thread = threading.Thread(target=reader.read_until, args=(stop,), name="moodlens-faces", daemon=True)
        thread.start()
        try:
            yield
        except BaseException:
            stop.set()
            thread.join()
            reader.frames.close()
            raise
        stop.set()
        thread.join()
        self.reader = reader

    def predict(self, media: MediaContext, utterances: Sequence[Utterance]) -> ExpertOutput:
        """One streaming pass over sampled frames (or the rest of the pass `reading_ahead` began):
        every clear face is tracked and read, in every frame within half a sampling step of an
        utterance. Each utterance reads the frames inside it, or the nearest one if none is (a
        short "Yeah." between two samples), and takes the face that talks (`active_track`), or
        the largest face in every frame with `face_selection="largest"`."""
        reader, self.reader = self.reader, None
        if not media.info.has_video:
            return unavailable(self.describe(), "no video stream", len(utterances))
        if not utterances:
            if reader is not None:
                reader.frames.close()
            return unavailable(self.describe(), "no utterances to read faces for", 0)
        media.report(self.name, 0.0)
        reader = reader or FrameReader(media, self.model, self.detector)
        try:
            read = self._read(reader, media, utterances)
        finally:
            reader.frames.close()
            media.notes.extend(reader.notes)
            media.damage.merge(reader.damage)
        media.report(self.name, 1.0)
        return finished(self.describe(), self.judge(read, utterances, media.options),
                        "no face found in the sampled frames")

    def _read(self, reader: FrameReader, media: MediaContext, utterances: Sequence[Utterance]) -> list[FrameFaces]:
        if reader.error is not None:
            raise reader.error
        half = 0.5 / media.options.fps
        spans = sorted((u.start - half, u.end + half) for u in utterances)
        starts = [start for start, _ in spans]
        reach = list(itertools.accumulate(end for _, end in spans))  # the furthest end so far, by start

        def near_an_utterance(time: float) -> bool:
            before = bisect.bisect_right(starts, time)
            return before > 0 and reach[before - 1] >= time

        reader.detector, reader.wanted, reader.until = self.detector, near_an_utterance, reach[-1]
        read = [frame for frame in reader.read if frame.time <= reader.until]
        while (found := reader.next()) is not None:
            read.append(found)
            media.report(self.name, min(1.0, found.time / max(reader.until, 1e-6)))
        return read

    @staticmethod
    def judge(read: Sequence[FrameFaces], utterances: Sequence[Utterance], options: AnalyzeOptions
              ) -> list[ModalityResult | None]:
        """Each utterance's face result, from the frames read around it (in time order)."""
        times = [frame.time for frame in read]
        half = 0.5 / options.fps
        results: list[ModalityResult | None] = [None] * len(utterances)
        for i, utterance in enumerate(utterances):
            frames = read[bisect.bisect_left(times, utterance.start):bisect.bisect_right(times, utterance.end)]
            if not frames:
                near = read[bisect.bisect_left(times, utterance.start - half):
                            bisect.bisect_right(times, utterance.end + half)]
                middle = (utterance.start + utterance.end) / 2
                frames = [min(near, key=lambda frame: abs(frame.time - middle))] if near else []
            if not frames:
                continue
            sightings: dict[str, TrackSighting] = {}
            for frame in frames:
                for face, p in zip(frame.faces, frame.probabilities, strict=True):
                    seen = sightings.setdefault(face.track, TrackSighting())
                    seen.faces.append(face)
                    seen.probabilities.append(p)
            chosen = active_track(sightings)
            if chosen is None:
                results[i] = ModalityResult(None, None, 0.0, {
                    "frames": len(frames), "frames_with_face": 0,
                    "skipped": f"no clear face in {len(frames)} frame{'s' if len(frames) != 1 else ''}"})
                continue
            track, selected_by = chosen
            if options.face_selection == "largest":
                chosen_read = [frame.probabilities[0] for frame in frames if frame.faces]
                selected_by = "largest face in each frame"
            else:
                chosen_read = sightings[track].probabilities
            emotion = np.mean(chosen_read, axis=0)
            results[i] = ModalityResult(
                Prediction.from_probabilities(EMOTIONS, emotion),
                Prediction.from_probabilities(SENTIMENTS, sentiment_from_emotion(emotion)),
                coverage=round(len(chosen_read) / len(frames), 4),
                detail={"frames": len(frames), "frames_with_face": len(chosen_read), TALKING_TRACK: track,
                        "selected_by": selected_by, "faces": len(sightings),
                        "sentiment_from": "emotion, via P(sentiment | emotion) on MELD train"})
        return results


def face_track(result: ModalityResult | None) -> str | None:
    """The face track an utterance's face result read (the talking face), if any."""
    return None if result is None else result.detail.get(TALKING_TRACK)
