"""How a training step runs on the device: the levers `bench/gpu.py --levers` measures side by
side on a GPU (precision, TF32 matrix products, pinned host memory for the loader's batches,
compiled networks).

They live apart from the schedule (what is done between steps) because they change how fast a
step is, never what it computes beyond rounding; `Speed()` is what training uses, chosen by
that measurement on an H200 (docs/architecture.md, "Training speed"): TF32 products and
pinned batches (each 3-13 % off a step, the held-out loss at equal steps within run-to-run
noise); bf16-mixed made the step 8 % slower, so precision stays fp32. On a CPU precision,
TF32 and pinning are inert (compiling is not)."""

from dataclasses import dataclass
from typing import Any

from gpu.runtime import device


@dataclass(frozen=True)
class Speed:
    # Lightning's precision: "32-true", or "bf16-mixed" (the fork's own `bf16_run`: autocast
    # around the models, the losses in fp32)
    precision: str = "32-true"
    # TF32 for matrix products (cuDNN's convolutions already use it by default)
    tf32: bool = True
    # the loader's batches in page-locked memory, so host-to-device copies are asynchronous
    pin_memory: bool = True
    # the loader's worker processes (the fork's default is the config's num_workers)
    workers: int | None = None
    # the parts of a step `torch.compile` compiles while they train (`gpu.training.compiled`'s
    # PARTS): fused kernels and fewer launches where the GPU waits on the host
    compile: tuple[str, ...] = ()
    # torch.compile's mode: "reduce-overhead" adds CUDA graphs (one launch for a whole
    # compiled part; inert on a CPU)
    compile_mode: str = "default"

    def __post_init__(self) -> None:
        if not isinstance(self.compile, tuple):  # Speed(compile=True) would compile nothing
            raise TypeError(f"compile names parts (a tuple), not {self.compile!r}")

    def apply(self) -> None:
        """Through the new API only: torch >= 2.9 refuses a mix of it and `allow_tf32`. A CPU
        keeps full precision (there "high" may mean bf16 products)."""
        import torch

        tf32 = self.tf32 and device() == "cuda"
        torch.set_float32_matmul_precision("high" if tf32 else "highest")

    def compiled(self, model: Any) -> Any:
        """The Lightning module, its fixed-shape networks compiled for training when asked
        (`gpu.training.compiled`)."""
        if self.compile:
            from gpu.training.compiled import compile_for_training

            compile_for_training(model, self.compile, self.compile_mode)
        return model

    def trainer_precision(self) -> str:
        return self.precision if device() == "cuda" else "32-true"

    def datamodule(self, hparams: Any) -> Any:
        """The fork's `VCDataModule`, its training loader pinned, sized and (when compiling)
        of equal batches as asked."""
        from multiprocessing import cpu_count

        from so_vits_svc_fork.train import VCDataModule
        from torch.utils.data import DataLoader

        speed = self

        class Loader(VCDataModule):
            def train_dataloader(self) -> DataLoader:
                workers = speed.workers or hparams.train.get("num_workers", 8)
                return DataLoader(
                    self.train_dataset,
                    num_workers=max(1, min(cpu_count(), workers)),
                    batch_size=self.batch_size,
                    collate_fn=self.collate_fn,
                    persistent_workers=True,
                    pin_memory=speed.pin_memory and device() == "cuda",
                    # compiled parts are compiled for the batch's size: an epoch's last, smaller
                    # batch would compile them again (its pieces train in the next epoch's
                    # shuffle)
                    drop_last=bool(speed.compile) and len(self.train_dataset) > self.batch_size,
                )

        return Loader(hparams)
