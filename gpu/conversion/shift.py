"""The instrumental transposed with the vocal, its duration kept: Rubber Band's R3 ("finer")
engine with formant preservation, through Debian's `rubberband` command.

Why Rubber Band, and why its command: librosa's phase vocoder (what this replaced) resolves
nothing closer than its 2048-point frames, so the partials of a bass chord spread off pitch,
and it smears every drum hit into a soft swell; Rubber Band's multi-resolution R3 engine keeps
both. Shifting a song in independent chunks and crossfading them leaves a dip at each join
(two pieces' partials arrive with unrelated phases), so the whole file goes through one
stretcher: the command streams it from file to file in two passes (study, then process) in a
few tens of megabytes, whatever the length, and its output is exactly as long as its input.
Its progress (a percentage per pass on stderr) is passed on; a cancel ends the process.
The output keeps the input's sample format (the separator writes float, so nothing clips
here: the mix's limiter owns the ceiling).
"""

import re
import subprocess
from pathlib import Path

import soundfile as sf

from gpu.chunked import Progress
from gpu.errors import JobCanceled

COMMAND = "rubberband"
_PERCENT = re.compile(rb"(\d+)%")


def command(source: Path, target: Path, semitones: float) -> list[str]:
    return [
        COMMAND,
        "--fine",  # the R3 engine
        "--formant",  # the instruments' body stays where it was, only the notes move
        "--ignore-clipping",  # never re-run at a lower gain: the mix's limiter decides
        "--pitch",
        f"{semitones:g}",
        str(source),
        str(target),
    ]


def shift_pitch(source: Path, target: Path, semitones: float, progress: Progress | None) -> None:
    """Writes `source` shifted by `semitones` to `target`, same rate, channels and length."""
    proc = subprocess.Popen(  # noqa: S603 - a fixed command, our own paths, a number
        command(source, target, semitones), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    assert proc.stderr is not None
    tail, passes, last = b"", 0, -1.0
    try:
        while chunk := proc.stderr.read1(4096):
            tail = (tail + chunk)[-4096:]
            passes += chunk.count(b"Pass 2")
            found = _PERCENT.findall(chunk)
            if not found or progress is None:
                continue
            done = (min(passes, 1) + int(found[-1]) / 100) / 2
            if done > last:
                last = done
                if not progress(done):
                    raise JobCanceled
        if proc.wait() != 0:
            message = tail.decode(errors="replace").strip().splitlines()[-3:]
            raise RuntimeError(f"rubberband failed ({proc.returncode}): {' / '.join(message)}")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stderr.close()
    if sf.info(str(target)).frames != sf.info(str(source)).frames:
        raise RuntimeError("rubberband changed the instrumental's length")
