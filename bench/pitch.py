"""Pitch trackers on synthetic singing with a known F0, every tracker through the same call
the fork makes (`so_vits_svc_fork.f0.compute_f0`, 44.1 kHz, hop 512), side by side in one
run, so the default is chosen by measurement and stays so.

    .venv/bin/python -m bench.pitch                 # every tracker, 4 voices x 20 s
    .venv/bin/python -m bench.pitch --seconds 8 --trackers fcpe dio

For each tracker and condition: gross pitch error (frames voiced in both the truth and the
estimate that are more than 50 cents off), median and 95th-percentile cents error of those
frames, voicing error (scored frames whose voiced/unvoiced call differs from the truth),
and the real-time factor on one CPU thread (model loading excluded: one warm-up call first).
`rmvpe` is measured only with its real weights in `VC_MODEL_CACHE_DIR/rmvpe` (a GPU image);
the offline tiny network is random and says nothing about accuracy.
"""

import argparse
import logging
import os
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from tests.singing import (
    SINGERS,
    Take,
    add_accompaniment,
    add_noise,
    errors,
    reverberate,
    sing,
)

TRACKERS = ("dio", "harvest", "parselmouth", "crepe", "crepe-tiny", "fcpe", "rmvpe")
CONDITIONS = {
    "clean": lambda a: a,
    "noise 20 dB": lambda a: add_noise(a, 20),
    "noise 10 dB": lambda a: add_noise(a, 10),
    "noise 0 dB": lambda a: add_noise(a, 0),
    "bleed -20 dB": lambda a: add_accompaniment(a, -20),
    "bleed -10 dB": lambda a: add_accompaniment(a, -10),
    "reverb": reverberate,
}


def rmvpe_is_real() -> bool:
    from gpu.measures import f0, rmvpe

    folder = f0.rmvpe_dir()
    return (
        bool(folder and (folder / rmvpe.WEIGHTS_NAME).exists())
        and not (folder / rmvpe.SIZES_NAME).exists()
    )


def measure(
    method: str, takes: list[Take], condition: Callable[[np.ndarray], np.ndarray]
) -> dict[str, float]:
    import so_vits_svc_fork.f0 as fork_f0

    fork_f0.compute_f0(takes[0].audio[:44100], sampling_rate=44100, hop_length=512, method=method)
    rows, seconds, audio_seconds = [], 0.0, 0.0
    for take in takes:
        audio = condition(take.audio)
        started = time.process_time()
        estimate = fork_f0.compute_f0(audio, sampling_rate=44100, hop_length=512, method=method)
        seconds += time.process_time() - started
        audio_seconds += len(audio) / 44100
        rows.append(errors(np.asarray(estimate), take))
    result = {k: float(np.mean([r[k] for r in rows])) for k in rows[0]}
    return result | {"rtf": seconds / audio_seconds}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=20.0, help="per voice")
    parser.add_argument("--trackers", nargs="+", default=list(TRACKERS), choices=TRACKERS)
    parser.add_argument("--conditions", nargs="+", default=list(CONDITIONS), choices=CONDITIONS)
    args = parser.parse_args()
    logging.disable(logging.WARNING)
    import torch

    torch.set_num_threads(1)
    from gpu.measures import f0

    f0.install(Path(os.environ.get("VC_MODEL_CACHE_DIR", ".local/models")))
    takes = [sing(s, args.seconds, seed=i) for i, s in enumerate(SINGERS)]
    print(
        f"{len(takes)} voices ({', '.join(s.name for s in SINGERS)}) x {args.seconds:.0f} s, "
        "44.1 kHz, hop 512; one CPU thread"
    )
    header = f"{'tracker':<12}{'condition':<14}{'GPE':>7}{'median c':>10}{'p95 c':>9}"
    print(header + f"{'voicing':>9}{'RTF':>8}")
    for method in args.trackers:
        if method == "rmvpe" and not rmvpe_is_real():
            print(f"{method:<12}skipped: no real weights here (the offline network is random)")
            continue
        for name in args.conditions:
            r = measure(method, takes, CONDITIONS[name])
            print(
                f"{method:<12}{name:<14}{100 * r['gpe']:>6.1f}%{r['median_cents']:>10.1f}"
                f"{r['p95_cents']:>9.1f}{100 * r['voicing_error']:>8.1f}%{r['rtf']:>8.3f}",
                flush=True,
            )


if __name__ == "__main__":
    main()
