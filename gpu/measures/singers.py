"""The one-singer check, run by a worker after the probe and before any GPU time is spent:
a Resemblyzer speaker embedding per ready file (its pretrained encoder ships in its wheel),
stored by SQL, which compares each file with the centroid of the others and flags a file
that is probably another person. Torch stays here, out of the web image.
"""

import contextlib
import logging
import tempfile
from functools import cache
from math import gcd
from pathlib import Path
from uuid import UUID

import numpy as np
import soundfile as sf
from scipy.signal import resample_poly

from gpu.errors import JobFailure
from gpu.sealed import fetch_sealed, input_check
from pipeline.repository import Repository
from pipeline.storage import Storage

log = logging.getLogger(__name__)
ENCODER_RATE = 16000
MAX_SECONDS = 60.0  # a minute of a file says who sings it; longer only costs time
# Resemblyzer's own level (`resemblyzer.hparams.audio_norm_target_dBFS`): its encoder reads a
# power mel spectrogram, not a log one, so the level it is given moves the embedding
ENCODER_RMS_DBFS = -30.0


@cache
def encoder():  # noqa: ANN201 - resemblyzer's type, imported lazily
    from resemblyzer import VoiceEncoder

    from gpu.runtime import device

    return VoiceEncoder(device(), verbose=False)


MIN_SPEECH_SECONDS = 1.0  # less than this left after the pause trimming: keep it all


def encoder_level(voice: np.ndarray) -> np.ndarray:
    """RMS at `ENCODER_RMS_DBFS`, up or down, but the peak never over full scale."""
    rms = float(np.sqrt(np.mean(np.square(voice, dtype=np.float64)))) if voice.size else 0.0
    if rms <= 0:
        return voice.astype(np.float32)
    peak = float(np.max(np.abs(voice)))
    return (voice * min(10 ** (ENCODER_RMS_DBFS / 20) / rms, 1.0 / peak)).astype(np.float32)


GATE_FRAME_SECONDS = 0.03
GATE_BELOW_DB = 40.0  # a frame this far under the clip's loud frames is a pause, not voice


def _without_pauses(voice: np.ndarray) -> np.ndarray:
    """The frames within `GATE_BELOW_DB` of the clip's loud ones (its 95th percentile of frame
    energy), joined: pauses and padding go, every voiced frame stays whatever its pitch. Not
    Resemblyzer's webrtcvad trimming: a speech detector, it dropped 12-48 % of continuously
    sung test notes, more the higher they were."""
    size = int(GATE_FRAME_SECONDS * ENCODER_RATE)
    frames = voice[: voice.size // size * size].reshape(-1, size)
    if not len(frames):
        return voice
    energy = 10 * np.log10(np.mean(np.square(frames, dtype=np.float64), axis=1) + 1e-20)
    return frames[energy > np.percentile(energy, 95) - GATE_BELOW_DB].reshape(-1)


def encoder_input(audio: np.ndarray, rate: int) -> np.ndarray:
    """Mono audio as every similarity here gives it to the encoder: float32 at 16 kHz, its
    pauses cut (`_without_pauses`), and its RMS at `ENCODER_RMS_DBFS` (up or down; turned
    down further only if that would put its peak over full scale). The encoder reads a power
    mel spectrogram, so the level of what it is given moves the embedding: scaling by the
    peak (as before) made the score follow the dynamics (a line through a peak limiter
    entered hotter: ~0.96 against itself, ~0.98 by RMS), and silence in the clip dilutes it
    (8 s of silence around an 8 s line: ~0.73 with it left in). Resemblyzer's
    `preprocess_wav` is not used as it is: it only ever turns audio up, so a loud clip keeps
    its level (+6 dB: ~0.96). bench/similarity.py measures all of this."""
    voice = at_encoder_rate(audio, rate)
    voiced = _without_pauses(voice)  # relative to the clip's own loud frames: any level
    return encoder_level(voiced if voiced.size >= MIN_SPEECH_SECONDS * ENCODER_RATE else voice)


def at_encoder_rate(audio: np.ndarray, rate: int) -> np.ndarray:
    """Mono audio resampled to the encoder's 16 kHz (float64, its level as it was)."""
    g = gcd(rate, ENCODER_RATE)
    return resample_poly(np.asarray(audio, np.float64), ENCODER_RATE // g, rate // g)


def load_voice(path: Path) -> np.ndarray:
    """At most `MAX_SECONDS` of a file, ready for the encoder (`encoder_input`). The decode
    is the probe's (soundfile), so every file that passed the probe loads."""
    with sf.SoundFile(path) as audio:
        rate = audio.samplerate
        samples = audio.read(int(MAX_SECONDS * rate), dtype="float32", always_2d=True)
    return encoder_input(samples.mean(axis=1), rate)


def embed(voice: np.ndarray) -> list[float]:
    return [float(x) for x in encoder().embed_utterance(voice)]


def check_profile(repo: Repository, storage: Storage, profile_id: UUID) -> int:
    """The profile's check, as its one worker: embeds every ready file that has no embedding
    yet, then once more for each time it was asked for again meanwhile (files that became
    ready during the pass); returns how many files it embedded. SQL refreshes the
    similarities after each one, so a crash loses nothing done."""
    repo.begin_singer_check(profile_id)
    done = 0
    try:
        while True:
            done += _embed_new_files(repo, storage, profile_id)
            if not repo.finish_singer_check(profile_id):
                return done
    except BaseException:
        with contextlib.suppress(Exception):  # the next request spawns afresh
            repo.finish_singer_check(profile_id, failed=True)
        raise


def _embed_new_files(repo: Repository, storage: Storage, profile_id: UUID) -> int:
    done = 0
    check = input_check(repo.settings)
    with tempfile.TemporaryDirectory(dir=repo.settings.scratch_dir, prefix="singers-") as tmp:
        for file in repo.singer_check_files(profile_id):
            path = Path(tmp) / "object"
            try:  # the bytes the probe judged, as the training reads them
                fetch_sealed(storage, file, path)
                check(path, file)
            except JobFailure:
                log.warning("file %s changed after its probe; not embedded", file.id)
                continue
            try:
                vector = embed(load_voice(path))
            except (sf.LibsndfileError, RuntimeError, ValueError, MemoryError) as exc:
                log.warning("could not embed %s: %s", file.id, exc)
                continue
            row = repo.record_singer_embedding(file.id, vector)
            log.info("file %s: similarity %s", file.id, row.singer_similarity)
            done += 1
    return done
