"""Seconds from text to files for a 50- and a 500-character line, through `gpu.text.speak`
(base voice, pitch, conversion, loudness, WAV and MP3, similarity), warm (a first line loads
the engine, ContentVec, the voice and Resemblyzer and is not counted), with the voice model
at the real architecture size and random weights (bench/gpu_weights.py: the seconds depend
on the sizes, not the values; the audio out is noise, so similarities mean nothing here).

    .venv/bin/python -m bench.text                    # GPU if there is one; Piper offline
    .venv/bin/python -m bench.text --small            # tiny sizes on a CPU (the suite's)
    .venv/bin/python -m bench.text --engine kokoro    # with Kokoro's files in the cache
    .venv/bin/python -m bench.text --record DIR       # Piper's speech for every line, saved
    python -m bench.text --recorded DIR --f0-method rmvpe   # a GPU machine without Piper

`--record` times Piper alone on this CPU and saves what it said; `--recorded` replays it (a
machine where the Piper voice cannot travel), so the two runs' seconds add up to the whole.

The issue's goal is at most 3 s for 100 characters on a warm GPU.
"""

import argparse
import hashlib
import json
import logging
import tempfile
import time
from pathlib import Path

LINES = {
    50: "Hello! This is my own voice, reading a short line.",
    100: "Hello! This is my own voice, reading a line that I typed a moment ago, "
    "to hear how it sounds today.",
}
LINES[500] = " ".join([LINES[100]] * 5)[:500].rsplit(" ", 1)[0] + "."


class RecordedEngine:
    """Piper's speech saved by `--record`, replayed under Piper's name and voice."""

    name = "piper"

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def voices(self, language: str) -> list[str]:
        return ["en_US-joe-medium"] if language == "en-us" else []

    def speak(self, text: str, voice: str, language: str):
        import soundfile as sf

        from gpu.text.engines import Speech

        audio, rate = sf.read(self.folder / recording_name(text), dtype="float32")
        return Speech(audio, rate)


def recording_name(text: str) -> str:
    return hashlib.sha1(text.encode()).hexdigest()[:16] + ".wav"  # noqa: S324 - a file name


def record(folder: Path) -> dict:
    """Every line (and the chooser's probe) spoken by Piper and saved; Piper's warm seconds."""
    import soundfile as sf

    from gpu.text.chooser import PROBES
    from gpu.text.engines import PiperEngine

    folder.mkdir(parents=True, exist_ok=True)
    piper = PiperEngine()
    piper.speak(LINES[50], piper.voice_name, "en-us")  # loads the voice
    seconds = {}
    for key, text in [*LINES.items(), ("probe", PROBES["en-us"])]:
        started = time.perf_counter()
        speech = piper.speak(text, piper.voice_name, "en-us")
        seconds[str(key)] = round(time.perf_counter() - started, 3)
        sf.write(folder / recording_name(text), speech.audio, speech.rate, subtype="FLOAT")
    return {"piper_cpu_seconds": seconds}


def write_voice(folder: Path, small: bool) -> tuple[Path, Path]:
    """A randomly initialised generator of the 4.0v1 template (or the tiny preset), saved as
    the training exports one."""
    import torch
    from so_vits_svc_fork.modules.synthesizers import SynthesizerTrn
    from so_vits_svc_fork.preprocessing.config_templates import __file__ as templates

    from gpu.training import presets

    config = json.loads((Path(templates).parent / f"{presets.TEMPLATE}.json").read_text())
    if small:
        for section, values in presets.TINY.overrides.items():
            config[section].update(values)
    config["spk"] = {"voice": 0}
    config["model"].pop("pretrained", None)
    config["model"]["n_speakers"] = 1
    torch.manual_seed(0)
    data = config["data"]
    net = SynthesizerTrn(
        data["filter_length"] // 2 + 1,
        config["train"]["segment_size"] // data["hop_length"],
        **config["model"],
    )
    folder.mkdir(parents=True, exist_ok=True)
    model, config_path = folder / "model.pth", folder / "config.json"
    state = {"model": net.state_dict(), "iteration": 0, "learning_rate": 0.0, "optimizer": None}
    torch.save(state, model)
    config_path.write_text(json.dumps(config))
    return model, config_path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--small", action="store_true", help="tiny sizes, on the CPU")
    parser.add_argument("--engine", default="piper", choices=("piper", "kokoro", "espeak"))
    parser.add_argument("--f0-method", default="fcpe")
    parser.add_argument("--repeat", type=int, default=3, help="warm runs per line; best kept")
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--record", type=Path, help="save Piper's speech of every line here")
    parser.add_argument("--recorded", type=Path, help="replay speech saved by --record")
    args = parser.parse_args()
    logging.disable(logging.WARNING)
    if args.record:
        found = record(args.record)
        print(json.dumps(found))
        (args.record / "piper.json").write_text(json.dumps(found))
        return
    with tempfile.TemporaryDirectory() as tmp:
        out = run(Path(tmp), args)
    for chars in (50, 100, 500):
        row = out["lines"][str(chars)]
        print(
            f"{chars:>4} characters: {row['seconds']:.2f} s for {row['audio_seconds']:.1f} s "
            f"of speech (base voice {row['base_voice']})"
        )
    print(f"device {out['device']}, engine {out['engine']}, small {out['small']}")
    if args.json:
        args.json.write_text(json.dumps(out, indent=2))


def run(root: Path, args: argparse.Namespace) -> dict:
    from gpu.weights import use_cache

    cache = root / "models"
    use_cache(cache, offline=True)  # before the fork is imported
    import torch

    from bench.gpu_weights import write_contentvec, write_rmvpe
    from gpu.conversion.inference import load_svc
    from gpu.conversion.model_cache import share_contentvec
    from gpu.measures import f0
    from gpu.measures.quality import embedding
    from gpu.text.engines import make_engine
    from gpu.text.speak import speak, trained_target
    from schemas.text import TextOptions

    device = "cuda" if torch.cuda.is_available() and not args.small else "cpu"
    write_contentvec(cache, args.small)
    if args.f0_method == "rmvpe":
        write_rmvpe(cache, args.small)
    f0.install(cache)
    share_contentvec()
    model, config = write_voice(root / "voice", args.small)
    svc = load_svc(model, config, device)
    if args.recorded:
        engine = RecordedEngine(args.recorded)
    else:
        kokoro = cache / "kokoro"
        engine = make_engine(args.engine, kokoro / "kokoro-v1.0.onnx", kokoro / "voices-v1.0.bin")
    probe = engine.speak(LINES[50], engine.voices("en-us")[0], "en-us")
    target = trained_target(svc, None, embedding(probe.audio, probe.rate))
    options = TextOptions(pitch="shift", f0_method=args.f0_method)
    speak(LINES[50], "en-us", options, [engine], target, root)  # warm-up, not counted
    lines = {}
    for chars, text in LINES.items():
        best, report = float("inf"), None
        for _ in range(args.repeat):
            started = time.perf_counter()
            report = speak(text, "en-us", options, [engine], target, root).report
            if device == "cuda":
                torch.cuda.synchronize()
            best = min(best, time.perf_counter() - started)
        lines[str(chars)] = {
            "chars": len(text),
            "seconds": round(best, 3),
            "audio_seconds": report.seconds,
            "base_voice": report.base_voice.voice,
        }
    return {
        "device": torch.cuda.get_device_name(0) if device == "cuda" else "cpu",
        "engine": "piper (recorded)" if args.recorded else args.engine,
        "small": args.small,
        "lines": lines,
    }


if __name__ == "__main__":
    main()
