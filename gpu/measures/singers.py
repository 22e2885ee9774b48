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


@cache
def encoder():  # noqa: ANN201 - resemblyzer's type, imported lazily
    from resemblyzer import VoiceEncoder

    from gpu.runtime import device

    return VoiceEncoder(device(), verbose=False)


def load_voice(path: Path) -> np.ndarray:
    """Mono float32 at 16 kHz, at most `MAX_SECONDS`, peak-normalised. Resemblyzer's own
    loader trims pauses with webrtcvad and resamples with librosa; the decode here is the
    probe's (soundfile), so every file that passed the probe loads."""
    with sf.SoundFile(path) as audio:
        rate = audio.samplerate
        samples = audio.read(int(MAX_SECONDS * rate), dtype="float32", always_2d=True)
    mono = samples.mean(axis=1)
    g = gcd(rate, ENCODER_RATE)
    voice = resample_poly(mono, ENCODER_RATE // g, rate // g).astype(np.float32)
    peak = float(np.max(np.abs(voice), initial=0.0))
    return voice / peak if peak > 0 else voice


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
