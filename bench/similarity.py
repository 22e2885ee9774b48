"""How the speaker-similarity score depends on the level of the audio, side by side for the
ways of preparing a clip for Resemblyzer, on real voices whose truth is known (Piper's packaged
voice and espeak-ng voices, the tests' own generators).

Resemblyzer's encoder reads a power mel spectrogram (not a log one), so the level of what it
is given moves the embedding. Each preparation below resamples to 16 kHz and then:

  raw         nothing more (how much the encoder itself follows the level)
  peak        scales the peak to full scale (what the measures did before)
  rms         scales the RMS to -30 dBFS, up or down, turned down further only if that would
              put the peak over full scale (`gpu.measures.singers.encoder_level`)
  rms+trim    the same, and pauses cut first by an energy gate (frames 40 dB under the
              clip's loud ones; `gpu.measures.singers.encoder_input`, what the measures use)
  preprocess  Resemblyzer's own `preprocess_wav`: RMS to -30 dBFS only upwards (a clip
              louder than that is left as it is), then long pauses cut by webrtcvad

Rows: a clip against itself at another level (-24/-12/+6 dB; 0 dB is the clip as made),
against itself through the look-ahead limiter of the text-to-speech output (driven 4, 7
and 12 dB into its ceiling, then compared at equal RMS), against itself with silence
around it (2 s, 8 s), against another take of the same
voice (other sentences), and against a different voice. The gap is the worst same-voice
score (other take) minus the best different-voice score: a preparation that keeps the
voices apart keeps it large.

    .venv/bin/python -m bench.similarity [--seconds 8]
"""

import argparse
import os

os.environ.setdefault("OMP_NUM_THREADS", "2")

import numpy as np

from gpu.measures.quality import cosine
from gpu.measures.singers import at_encoder_rate, encoder, encoder_input, encoder_level
from gpu.text.limiter import limit
from tests.vocals import RATE, speech

ESPEAK = ["en+m3", "en+f2", "en+m7", "en+f4", "en+m1"]  # m1 and m3 are nearly one voice
PIPER = "en_US-joe-medium"
GAINS_DB = (-24, -12, 6)
LIMIT_DB = (4, 7, 12)  # how far over the ceiling the limiter is driven
CEILING_DB = -1.0
PAD_SECONDS = (2, 8)  # silence added around a take, half before, half after


def peak(audio: np.ndarray, rate: int) -> np.ndarray:
    voice = at_encoder_rate(audio, rate)
    top = float(np.max(np.abs(voice), initial=0.0))
    return (voice / top if top > 0 else voice).astype(np.float32)


def preprocess(audio: np.ndarray, rate: int) -> np.ndarray:
    from resemblyzer import preprocess_wav

    return preprocess_wav(np.asarray(audio, np.float32), rate).astype(np.float32)


def raw(audio: np.ndarray, rate: int) -> np.ndarray:
    return at_encoder_rate(audio, rate).astype(np.float32)


def rms_only(audio: np.ndarray, rate: int) -> np.ndarray:
    return encoder_level(at_encoder_rate(audio, rate))


PREPARATIONS = {
    "raw": raw,
    "peak": peak,
    "rms": rms_only,
    "rms+trim": encoder_input,
    "preprocess": preprocess,
}


def embed(prepare, audio: np.ndarray, rate: int) -> np.ndarray:
    return np.asarray(encoder().embed_utterance(prepare(audio, rate)), np.float64)


def rms(audio: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(audio, dtype=np.float64))))


def limited(audio: np.ndarray, rate: int, over_db: float) -> np.ndarray:
    """`audio` driven `over_db` into the limiter's ceiling, then back at its own RMS: the same
    loudness, its peaks flattened."""
    drive = 10 ** (CEILING_DB / 20) / float(np.max(np.abs(audio))) * 10 ** (over_db / 20)
    out = limit(audio * drive, rate, CEILING_DB)
    return (out * rms(audio) / rms(out)).astype(np.float32)


def clips(seconds: float) -> dict[str, list[tuple[np.ndarray, int]]]:
    """Two takes (different sentences) per voice, peaks at 0.25 (0 dB in the table)."""
    takes = {v: [(speech(seconds, voice=v, seed=s), RATE) for s in (1, 2)] for v in ESPEAK}
    from gpu.text.engines import PiperEngine

    piper = PiperEngine()
    lines = (
        "The quick brown fox jumps over the lazy dog while the band plays on in the park.",
        "Every morning the baker opens the shop and the smell of fresh bread fills the street.",
    )
    said = [piper.speak(line, PIPER, "en-us") for line in lines]
    # at the espeak-ng takes' level (peak 0.25), so +6 dB does not clip
    takes[f"piper:{PIPER}"] = [(0.25 * s.audio / np.max(np.abs(s.audio)), s.rate) for s in said]
    return takes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=8.0)
    args = parser.parse_args()
    takes = clips(args.seconds)
    names = list(PREPARATIONS)
    rows: dict[str, dict[str, list[float]]] = {}
    detail: dict[str, dict[str, float]] = {}  # each voice's other take, each pair of voices

    def add(row: str, prep: str, value: float) -> None:
        rows.setdefault(row, {n: [] for n in names}).setdefault(prep, []).append(value)

    for prep_name, prep in PREPARATIONS.items():
        firsts = {}
        for voice, ((audio, rate), (other_take, other_rate)) in takes.items():
            base = embed(prep, audio, rate)
            firsts[voice] = base
            for gain in GAINS_DB:
                quiet = (audio * 10 ** (gain / 20)).astype(np.float32)
                assert float(np.max(np.abs(quiet))) < 1.0, "a gain that clips"
                add(f"self at {gain:+d} dB", prep_name, cosine(base, embed(prep, quiet, rate)))
            for over in LIMIT_DB:
                flat = limited(audio, rate, over)
                add(f"self limited {over} dB", prep_name, cosine(base, embed(prep, flat, rate)))
            for pad in PAD_SECONDS:
                gap = np.zeros(int(pad * rate / 2), np.float32)
                padded = np.concatenate([gap, audio, gap])
                add(f"self + {pad:g} s silence", prep_name, cosine(base, embed(prep, padded, rate)))
            same = cosine(base, embed(prep, other_take, other_rate))
            add("same voice, other take", prep_name, same)
            detail.setdefault(voice, {})[prep_name] = same
        voices = list(firsts)
        for i, a in enumerate(voices):
            for b in voices[i + 1 :]:
                score = cosine(firsts[a], firsts[b])
                add("different voices", prep_name, score)
                detail.setdefault(f"{a} ~ {b}", {})[prep_name] = score

    print(f"{len(takes)} voices ({', '.join(takes)}), {args.seconds:g} s takes")
    print("cells: min / mean over voices (pairs for 'different voices')\n")
    width = 26
    print(f"{'':{width}}" + "".join(f"{n:>19}" for n in names))
    for row, per in rows.items():
        cells = "".join(f"{min(per[n]):>10.4f} /{np.mean(per[n]):.4f}" for n in names)
        print(f"{row:{width}}{cells}")
    print("\nsame voice (other take) and each pair of voices:")
    for row, per in detail.items():
        print(f"{row:{width + 14}}" + "".join(f"{per[n]:>19.4f}" for n in names))
    gap = {
        n: min(rows["same voice, other take"][n]) - max(rows["different voices"][n]) for n in names
    }
    level = {n: min(min(v[n]) for r, v in rows.items() if r.startswith("self")) for n in names}
    print()
    print(f"{'worst self (level/limiter)':{width}}" + "".join(f"{level[n]:>19.4f}" for n in names))
    print(f"{'gap same - different':{width}}" + "".join(f"{gap[n]:>19.4f}" for n in names))


if __name__ == "__main__":
    main()
