"""A conversion of a whole song: separate → convert the vocal → mix it back.

`convert_song` runs inside `ConversionRun` after the input was fetched and probed: phase
`separate` (Demucs, gpu/separation/separate.py), then the vocal stem goes through the same pitch
measurement and window-by-window conversion a sung stem does (`load_model`, `pitch`,
`convert`), then phase `mix` (gpu/conversion/mix.py), then the three results are uploaded beside the
conversion's input: the mix as its output, the converted vocal and the instrumental as its
parts (pipeline/keys.py). Every phase reports progress through the heartbeat, so a cancel
stops the job within one chunk or window; a failure takes the conversion's own fail path.
"""

from pathlib import Path
from typing import TYPE_CHECKING

import soundfile as sf

from gpu.conversion.audio_io import to_mono
from gpu.conversion.mix import mix
from pipeline import keys
from schemas.jobs import ConversionJobRow, ConversionParams

if TYPE_CHECKING:
    from gpu.conversion.job import ConversionRun


def convert_song(
    run: "ConversionRun", job: ConversionJobRow, params: ConversionParams, source: Path
) -> None:
    from gpu.runtime import device

    tmp = run.scratch
    vocals, instrumental = tmp / "song-vocals.wav", tmp / "song-instrumental.wav"
    run.phase("separate", percent=0, eta_s=None)
    run.separator(
        source,
        vocals,
        instrumental,
        cache_dir=Path(run.settings.model_cache_dir),
        device=device(),
        progress=run.progress("separate"),
    )

    version = run.repo.conversion_model(run.job_id)
    run.phase("load_model", percent=0, eta_s=None)
    svc = run.cache.get(version)
    mono, converted = tmp / "song-vocals-mono.wav", tmp / "song-converted.wav"
    frames = to_mono(vocals, mono, svc.target_sample)
    run.record_pitch(mono, params, version)
    run.infer(svc, mono, converted, frames, params)

    run.phase("mix", percent=0, eta_s=None)
    outputs = {part: tmp / f"out-{part}.wav" for part in ("mix", "vocal", "instrumental")}
    mix(
        converted,
        vocals,
        instrumental,
        outputs,
        shift_semitones=params.instrumental_shift(),
        loudness=params.loudness,
        progress=run.progress("mix"),
    )

    run.phase("upload", percent=100, eta_s=None)
    for part in ("vocal", "instrumental", "mix"):  # the output last: it marks the set complete
        key = keys.conversion_part_key(job.user_id, job.profile_id, run.job_id, part)
        run.storage.upload_file(outputs[part], key, "audio/wav")
    info = sf.info(str(source))
    output_key = keys.conversion_output_key(job.user_id, job.profile_id, run.job_id)
    run.finish(output_key, info.frames / info.samplerate)
