"""RMVPE, the pitch tracker so-vits-svc 4.1 and RVC use for singing: a U-Net over a log-mel
spectrogram (16 kHz, 10 ms hop) and a bidirectional GRU giving a 360-bin salience per frame
(20 cents a bin), decoded by a local weighted average around the peak.

The module names follow the published `rmvpe.pt` state dict, so the real weights load as they
are. Production bakes those weights into the GPU image (`python -m gpu models`); offline,
`python -m gpu models --offline` writes a tiny randomly initialised network of the same
architecture with its sizes next to it, so the same loading and tracking code runs in tests
(its pitch is noise: it exercises the path, not the accuracy).
"""

import json
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn import functional

SAMPLE_RATE = 16000
HOP = 160
N_FFT = 1024
N_MELS = 128
N_BINS = 360
CENTS_OFFSET = 1997.3794084376191  # the cents of bin 0 (about 31.7 Hz), relative to 10 Hz
WEIGHTS_NAME = "rmvpe.pt"
SIZES_NAME = "rmvpe.json"
REAL_SIZES = {
    "n_blocks": 4,
    "n_gru": 1,
    "kernel": 2,
    "en_de_layers": 5,
    "inter_layers": 4,
    "channels": 16,
}
TINY_SIZES = {
    "n_blocks": 1,
    "n_gru": 1,
    "kernel": 2,
    "en_de_layers": 5,
    "inter_layers": 1,
    "channels": 4,
}


class ConvBlockRes(nn.Module):
    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.conv = nn.Sequential(
            nn.Conv2d(cin, cout, 3, padding=1, bias=False),
            nn.BatchNorm2d(cout, momentum=0.01),
            nn.ReLU(),
            nn.Conv2d(cout, cout, 3, padding=1, bias=False),
            nn.BatchNorm2d(cout, momentum=0.01),
            nn.ReLU(),
        )
        self.shortcut = nn.Conv2d(cin, cout, 1) if cin != cout else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x) + (x if self.shortcut is None else self.shortcut(x))


class ResEncoderBlock(nn.Module):
    def __init__(self, cin: int, cout: int, kernel: int | None, n_blocks: int) -> None:
        super().__init__()
        self.conv = nn.ModuleList(
            [ConvBlockRes(cin, cout)] + [ConvBlockRes(cout, cout) for _ in range(n_blocks - 1)]
        )
        self.pool = nn.AvgPool2d(kernel) if kernel is not None else None

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        for block in self.conv:
            x = block(x)
        return x, (x if self.pool is None else self.pool(x))


class Encoder(nn.Module):
    def __init__(self, layers: int, kernel: int, n_blocks: int, channels: int) -> None:
        super().__init__()
        self.bn = nn.BatchNorm2d(1, momentum=0.01)
        self.layers = nn.ModuleList()
        cin = 1
        for _ in range(layers):
            self.layers.append(ResEncoderBlock(cin, channels, kernel, n_blocks))
            cin, channels = channels, channels * 2
        self.out_channels = channels

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        skips = []
        x = self.bn(x)
        for layer in self.layers:
            skip, x = layer(x)
            skips.append(skip)
        return x, skips


class Intermediate(nn.Module):
    def __init__(self, cin: int, cout: int, layers: int, n_blocks: int) -> None:
        super().__init__()
        self.layers = nn.ModuleList(
            [ResEncoderBlock(cin, cout, None, n_blocks)]
            + [ResEncoderBlock(cout, cout, None, n_blocks) for _ in range(layers - 1)]
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            x, _ = layer(x)
        return x


class ResDecoderBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int, n_blocks: int) -> None:
        super().__init__()
        self.conv1 = nn.Sequential(
            nn.ConvTranspose2d(
                cin, cout, 3, stride=stride, padding=1, output_padding=1, bias=False
            ),
            nn.BatchNorm2d(cout, momentum=0.01),
            nn.ReLU(),
        )
        self.conv2 = nn.ModuleList(
            [ConvBlockRes(cout * 2, cout)] + [ConvBlockRes(cout, cout) for _ in range(n_blocks - 1)]
        )

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        x = torch.cat((self.conv1(x), skip), dim=1)
        for block in self.conv2:
            x = block(x)
        return x


class Decoder(nn.Module):
    def __init__(self, cin: int, layers: int, stride: int, n_blocks: int) -> None:
        super().__init__()
        self.layers = nn.ModuleList()
        for _ in range(layers):
            self.layers.append(ResDecoderBlock(cin, cin // 2, stride, n_blocks))
            cin //= 2

    def forward(self, x: torch.Tensor, skips: list[torch.Tensor]) -> torch.Tensor:
        for layer, skip in zip(self.layers, reversed(skips), strict=True):
            x = layer(x, skip)
        return x


class DeepUnet(nn.Module):
    def __init__(
        self, kernel: int, n_blocks: int, en_de_layers: int, inter_layers: int, channels: int
    ) -> None:
        super().__init__()
        self.encoder = Encoder(en_de_layers, kernel, n_blocks, channels)
        top = self.encoder.out_channels
        self.intermediate = Intermediate(top // 2, top, inter_layers, n_blocks)
        self.decoder = Decoder(top, en_de_layers, kernel, n_blocks)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x, skips = self.encoder(x)
        return self.decoder(self.intermediate(x), skips)


class BiGRU(nn.Module):
    def __init__(self, features: int, hidden: int, layers: int) -> None:
        super().__init__()
        self.gru = nn.GRU(features, hidden, num_layers=layers, batch_first=True, bidirectional=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.gru(x)[0]


class E2E(nn.Module):
    """log-mel (B, 128, T) → salience (B, T, 360)."""

    def __init__(
        self,
        n_blocks: int,
        n_gru: int,
        kernel: int,
        en_de_layers: int,
        inter_layers: int,
        channels: int,
    ) -> None:
        super().__init__()
        self.unet = DeepUnet(kernel, n_blocks, en_de_layers, inter_layers, channels)
        self.cnn = nn.Conv2d(channels, 3, 3, padding=1)
        self.fc = nn.Sequential(
            BiGRU(3 * N_MELS, 256, n_gru), nn.Linear(512, N_BINS), nn.Dropout(0.25), nn.Sigmoid()
        )

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        x = self.cnn(self.unet(mel.transpose(-1, -2).unsqueeze(1)))
        return self.fc(x.transpose(1, 2).flatten(-2))


class Rmvpe:
    """A loaded network with its mel front end; `f0(audio16k)` gives Hz per 10 ms, 0 unvoiced."""

    def __init__(self, model: E2E, device: str) -> None:
        import librosa

        self.model, self.device = model.to(device).eval(), device
        basis = librosa.filters.mel(
            sr=SAMPLE_RATE, n_fft=N_FFT, n_mels=N_MELS, fmin=30, fmax=SAMPLE_RATE // 2, htk=True
        )
        self.mel_basis = torch.from_numpy(basis).float().to(device)
        self.window = torch.hann_window(N_FFT, device=device)
        cents = 20 * np.arange(N_BINS) + CENTS_OFFSET
        self.cents = np.pad(cents, (4, 4))

    def mel(self, audio: torch.Tensor) -> torch.Tensor:
        spec = torch.stft(audio, N_FFT, HOP, N_FFT, self.window, center=True, return_complex=True)
        return torch.log(torch.clamp(self.mel_basis @ spec.abs(), min=1e-5))

    @torch.no_grad()
    def salience(self, audio: np.ndarray) -> np.ndarray:
        mel = self.mel(torch.from_numpy(audio).float().to(self.device).unsqueeze(0))
        frames = mel.shape[-1]
        mel = functional.pad(mel, (0, -frames % 32))  # five poolings by 2 need a multiple of 32
        return self.model(mel)[0, :frames].float().cpu().numpy()

    def f0(self, audio: np.ndarray, threshold: float = 0.03) -> np.ndarray:
        salience = self.salience(audio)
        center = np.argmax(salience, axis=1) + 4
        padded = np.pad(salience, ((0, 0), (4, 4)))
        window = center[:, None] + np.arange(-4, 5)[None, :]
        weights = np.take_along_axis(padded, window, axis=1)
        cents = (weights * self.cents[window]).sum(1) / np.maximum(weights.sum(1), 1e-9)
        f0 = 10 * 2 ** (cents / 1200)
        f0[padded.max(axis=1) <= threshold] = 0
        return f0


def write_tiny(target: Path) -> Path:
    """A randomly initialised network of the real architecture, smaller, with its sizes."""
    target.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    torch.save(E2E(**TINY_SIZES).state_dict(), target / WEIGHTS_NAME)
    (target / SIZES_NAME).write_text(json.dumps(TINY_SIZES))
    return target / WEIGHTS_NAME


def load(folder: Path, device: str) -> Rmvpe:
    """The weights in `folder` (the real `rmvpe.pt`, or a tiny one with `rmvpe.json`)."""
    sizes_path = folder / SIZES_NAME
    sizes = json.loads(sizes_path.read_text()) if sizes_path.exists() else REAL_SIZES
    model = E2E(**sizes)
    model.load_state_dict(torch.load(folder / WEIGHTS_NAME, map_location="cpu", weights_only=True))
    return Rmvpe(model, device)
