"""Seed-VC's chunk loop, lifted out of its CLI so it can be tested on its own.

The DiT sees the reference and a window of the source together in a 30 s context, so a long
input is rendered window by window; consecutive windows overlap by a few frames and the
overlap is crossfaded with cos²/sin² fades, which sum to one: two renders that agree in the
overlap come out exactly as one, so a seam can only come from the model, never from here.
"""

from collections.abc import Callable

import numpy as np

from gpu.errors import JobCanceled

Render = Callable[[int, int], np.ndarray]
Progress = Callable[[float], bool]


def fades(samples: int) -> tuple[np.ndarray, np.ndarray]:
    angle = np.linspace(0, np.pi / 2, samples)
    return np.cos(angle) ** 2, np.sin(angle) ** 2


def stitch(
    frames: int, window: int, overlap: int, hop: int, render: Render, progress: Progress | None
) -> np.ndarray:
    """`render(start, end)` gives `(end - start) * hop` samples for frames [start, end);
    returns `frames * hop` samples. `progress(done)` is asked after every window; False
    (the job left `running`) stops before the next window with `JobCanceled`."""
    if window <= overlap:
        raise ValueError(f"a window of {window} frames cannot overlap by {overlap}")
    fade_out, fade_in = fades(overlap * hop)
    pieces: list[np.ndarray] = []
    tail: np.ndarray | None = None
    start = 0
    while True:
        end = min(start + window, frames)
        wave = np.asarray(render(start, end), dtype=np.float32).copy()
        if tail is not None:
            wave[: len(tail)] = wave[: len(tail)] * fade_in + tail * fade_out
        if end >= frames:
            pieces.append(wave)
            break
        pieces.append(wave[: -len(fade_out)])
        tail = wave[-len(fade_out) :]
        start = end - overlap
        if progress is not None and progress(end / frames) is False:
            raise JobCanceled
    return np.concatenate(pieces)
