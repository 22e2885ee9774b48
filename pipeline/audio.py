"""Audio measurement in one streaming pass: format sniffing, decoding with soundfile, and the
numbers the probe reports (peak, BS.1770 loudness, clipping, silence, the noise under the
voice, voice activity, low-frequency energy).

Memory stays small whatever the length: samples are read in blocks of whole 50 ms frames and
reduced to two energies per frame (plain and K-weighted, from which the BS.1770 gating is
computed), the power spectra of a bounded subset of frames (`pipeline.noise`), and the few
short stretches the voice detector may listen to (`pipeline.vad`). Everything stays float32;
the one FFT per frame and channel is shared by the silence and the noise. The loudness is
K-weighted in the time domain, with the filter state carried across blocks: weighting each
50 ms frame's spectrum instead misses what the high-pass lets through at a step (a DC step
reads 24 dB too quiet) and leaks rumble below 38 Hz into the pass band (a 15 Hz tone reads
7 dB too loud), as a frame that short cannot resolve the filter's edge.
"""

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from pipeline import noise
from pipeline.vad import VoiceCollector

CLIP_LEVEL = 0.999
SILENCE_DBFS = -60.0
BLOCK_FRAMES = 65536


class AudioError(Exception):
    """The bytes are not audio we can use; the code says why."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class AudioStats:
    format: str
    sample_rate: int
    channels: int
    frames: int
    duration_sec: float
    peak_dbfs: float | None
    loudness_lufs: float | None
    clipping_ratio: float
    silence_ratio: float
    snr_db: float | None  # vocal over the steady noise under it (`pipeline.noise`)
    voice_ratio: float | None  # share heard as voice by Silero VAD (`pipeline.vad`)
    low_band_ratio: float | None  # share of power below 70 Hz: bass and drums underneath


def sniff_format(head: bytes) -> str | None:
    """The container from its magic bytes; the extension is never trusted."""
    if len(head) >= 12 and head[:4] in (b"RIFF", b"RF64") and head[8:12] == b"WAVE":
        return "wav"
    if head[:4] == b"fLaC":
        return "flac"
    if head[:3] == b"ID3":
        return "mp3"
    if len(head) >= 2 and head[0] == 0xFF and (head[1] & 0xE0) == 0xE0 and (head[1] & 0x06):
        return "mp3"  # an MPEG audio frame sync with a layer set
    return None


def _k_weighting(rate: int) -> np.ndarray:
    """The BS.1770 pre-filter (high shelf + high pass) as second-order sections, designed
    with pyloudnorm's coefficients so the numbers agree with it."""
    from pyloudnorm.iirfilter import IIRfilter
    from scipy.signal import tf2sos

    shelf = IIRfilter(4.0, 1 / np.sqrt(2), 1500.0, rate, "high_shelf")
    high_pass = IIRfilter(0.0, 0.5, 38.0, rate, "high_pass")
    return np.vstack([tf2sos(shelf.b, shelf.a), tf2sos(high_pass.b, high_pass.a)])


def _parseval_weights(frame: int) -> np.ndarray:
    """(bands,): what turns one frame's power spectrum (|rfft|², rectangular window) into its
    sum of squares (Parseval)."""
    bands = frame // 2 + 1
    parseval = np.full(bands, 2.0 / frame)
    parseval[0] = 1.0 / frame
    if frame % 2 == 0:
        parseval[-1] = 1.0 / frame
    return parseval.astype(np.float32)


def _channel_weights(channels: int) -> np.ndarray:
    weights = np.ones(channels)
    if channels >= 5:
        weights[3:5] = 1.41  # surround channels of a 5.x layout
    return weights


def gated_loudness(block_energy: np.ndarray) -> float | None:
    """Integrated loudness (LUFS) from per-400 ms-block weighted mean squares."""
    with np.errstate(divide="ignore"):
        block_lufs = -0.691 + 10 * np.log10(block_energy)
    above_abs = block_energy[block_lufs >= -70.0]
    if above_abs.size == 0:
        return None
    relative = -0.691 + 10 * np.log10(above_abs.mean()) - 10.0
    gated = block_energy[(block_lufs > relative) & (block_lufs >= -70.0)]
    if gated.size == 0:
        return None
    return float(-0.691 + 10 * np.log10(gated.mean()))


class _Accumulator:
    """Folds decoded blocks into per-frame energies and sample statistics.

    One FFT per 50 ms frame and channel (rectangular window, float32) carries the frame's
    plain sum of squares (Parseval) and, for a bounded subset of frames, the Hann-windowed
    mono spectrum the noise estimate reads (`pipeline.noise`). The K-weighted sum of squares
    comes from the BS.1770 pre-filter run over the samples (float32 second-order sections,
    its state carried from block to block), so steps, rumble and sub-bass weigh what they
    weigh for ffmpeg's `ebur128` and pyloudnorm. Blocks are whole frames, so nothing else is
    carried or copied between them."""

    def __init__(self, rate: int, channels: int, expected_frames: int = 0) -> None:
        from scipy import fft, signal

        self._rfft = fft.rfft
        self._sosfilt = signal.sosfilt
        self.k_sos = _k_weighting(rate).astype(np.float32)
        self.k_state = np.zeros((self.k_sos.shape[0], 2, channels), np.float32)
        self.frame = noise.frame_length(rate)
        self.segment = 2 * self.frame  # 100 ms: BS.1770 blocks are 4 of them, 100 ms apart
        self.block_frames = max(1, BLOCK_FRAMES // self.frame) * self.frame
        self.band_weights = _parseval_weights(self.frame)
        self.channel_weights = _channel_weights(channels).astype(np.float32)
        self.energy: list[np.ndarray] = []  # (frames, 2): plain mean over channels, K-weighted
        self.frames = 0
        self.peak = 0.0
        self.clipped = 0
        self.spectrum = noise.SubsetSpectrum(rate, self.frame, expected_frames // self.frame)
        self.voice = VoiceCollector(expected_frames, rate)

    def add(self, block: np.ndarray) -> None:
        low, high = float(block.min(initial=0.0)), float(block.max(initial=0.0))
        self.peak = max(self.peak, -low, high)
        if -low >= CLIP_LEVEL or high >= CLIP_LEVEL:
            self.clipped += int(np.count_nonzero(np.abs(block) >= CLIP_LEVEL))
        self.voice.add(block)
        weighted, self.k_state = self._sosfilt(self.k_sos, block, axis=0, zi=self.k_state)
        start = self.frames // self.frame
        self.frames += block.shape[0]
        whole = block.shape[0] // self.frame
        if whole == 0:
            return  # the last partial frame: counted in the statistics above only
        frames = block[: whole * self.frame].reshape(whole, self.frame, block.shape[1])
        spectra = self._rfft(frames.transpose(2, 0, 1), axis=-1)  # (channels, frames, bands)
        power = spectra.real**2 + spectra.imag**2
        plain = (power @ self.band_weights).mean(axis=0)  # (frames,)
        k = weighted[: whole * self.frame].reshape(whole, self.frame, block.shape[1])
        k_sums = np.einsum("fsc,fsc->fc", k, k) @ self.channel_weights  # (frames,)
        self.energy.append(np.stack([plain, k_sums], axis=1))
        self.spectrum.add(start, spectra)

    def stats(self, fmt: str, rate: int, channels: int) -> AudioStats:
        energy = np.concatenate(self.energy) if self.energy else np.zeros((0, 2))
        pairs = energy.shape[0] // 2 * 2
        segments = energy[:pairs].reshape(-1, 2, 2).sum(axis=1).astype(np.float64)
        raw, k = segments[:, 0] / self.segment, segments[:, 1]
        blocks = np.lib.stride_tricks.sliding_window_view(k, 4).sum(axis=1) if k.size >= 4 else k
        loudness = gated_loudness(blocks / (4 * self.segment)) if blocks.size else None
        total = self.frames * channels
        spectrum = self.spectrum.spectrum()
        return AudioStats(
            format=fmt,
            sample_rate=rate,
            channels=channels,
            frames=self.frames,
            duration_sec=self.frames / rate,
            peak_dbfs=float(20 * np.log10(self.peak)) if self.peak > 0 else None,
            loudness_lufs=loudness,
            clipping_ratio=self.clipped / total if total else 0.0,
            silence_ratio=_silence_ratio(raw),
            snr_db=noise.snr_db(spectrum),
            voice_ratio=self.voice.voice_ratio(raw, self.segment),
            low_band_ratio=noise.low_band_share(spectrum),
        )


def warm_up() -> None:
    """Imports what the analysis uses and loads the voice model on this thread (it is one per
    thread), so the first upload's verdict does not wait for them: about a second in a cold
    process. Three seconds of faint noise make every stage run once."""
    rate = 16000
    noise_block = np.random.default_rng(0).standard_normal((3 * rate, 1)).astype(np.float32)
    acc = _Accumulator(rate, 1, noise_block.shape[0])
    acc.add(0.01 * noise_block)
    acc.stats("wav", rate, 1)


def _silence_ratio(segment_energy: np.ndarray) -> float:
    if segment_energy.size == 0:
        return 1.0
    threshold = 10 ** (SILENCE_DBFS / 10)
    return float(np.mean(segment_energy < threshold))


def measure(path: Path, max_seconds: float) -> AudioStats:
    """Decodes the whole file once; stops early with TOO_LONG past `max_seconds`."""
    with path.open("rb") as fh:
        fmt = sniff_format(fh.read(16))
    if fmt is None:
        raise AudioError("UNSUPPORTED_FORMAT", "This is not a WAV, FLAC or MP3 file.")
    try:
        with sf.SoundFile(path) as audio:
            rate, channels = audio.samplerate, audio.channels
            if rate <= 0 or channels <= 0:
                raise AudioError("CORRUPT_AUDIO", "The file's header is damaged.")
            acc = _Accumulator(rate, channels, min(audio.frames, int(max_seconds * rate) + 1))
            for block in audio.blocks(acc.block_frames, dtype="float32", always_2d=True):
                acc.add(block)
                if acc.frames > max_seconds * rate:
                    raise AudioError(
                        "TOO_LONG", f"Files can be at most {max_seconds / 60:g} minutes long."
                    )
    except (sf.LibsndfileError, RuntimeError, ValueError, EOFError) as exc:
        raise AudioError(
            "CORRUPT_AUDIO", "The audio could not be decoded; it may be damaged."
        ) from exc
    if acc.frames == 0:
        raise AudioError("CORRUPT_AUDIO", "The file contains no audio.")
    return acc.stats(fmt, rate, channels)
