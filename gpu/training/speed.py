"""How a training step runs on the device: the levers `bench/gpu.py --levers` measures side by
side on a GPU (precision, TF32 matrix products, pinned host memory for the loader's batches,
compiled networks, batches of a few lengths with cuDNN's autotuning, a fused optimizer).

They live apart from the schedule (what is done between steps) because they change how fast a
step is, never what it computes beyond rounding (bucketed lengths: beyond the F0 predictor's
view of padding, `gpu.training.lengths`); `Speed()` is what training uses, chosen by
that measurement on an H200 (docs/architecture.md, "Training speed"): TF32 products and
pinned batches (each 3-13 % off a step, the held-out loss at equal steps within run-to-run
noise); bf16-mixed made the step 8 % slower, so precision stays fp32. On a CPU precision,
TF32 and pinning are inert (compiling is not)."""

from dataclasses import dataclass
from pathlib import Path
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
    # pad each batch to a whole number of this many frames (`gpu.training.lengths`; 0: to its
    # longest piece, as the fork does): a few shapes, so what is paid per shape is paid once
    length_bucket: int = 0
    # cuDNN's benchmark mode: autotunes each new shape, so only with `length_bucket`
    cudnn_benchmark: bool = False
    # AdamW's fused kernel: the whole update of every parameter in a few launches a step,
    # instead of a launch per operation over the list of tensors (`foreach`, the fork's default)
    fused_optimizer: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.compile, tuple):  # Speed(compile=True) would compile nothing
            raise TypeError(f"compile names parts (a tuple), not {self.compile!r}")
        if self.length_bucket < 0:
            raise ValueError(f"length_bucket is a number of frames, not {self.length_bucket}")
        if self.cudnn_benchmark and not self.length_bucket:
            raise ValueError(
                "cuDNN's benchmark mode autotunes every new shape: it needs length_bucket "
                "(with the fork's lengths it took 137 GiB and 53 s before the first step)"
            )

    def apply(self) -> None:
        """Through the new API only: torch >= 2.9 refuses a mix of it and `allow_tf32`. A CPU
        keeps full precision (there "high" may mean bf16 products)."""
        import torch

        tf32 = self.tf32 and device() == "cuda"
        torch.set_float32_matmul_precision("high" if tf32 else "highest")

    def applied_to(self, model: Any, compile_cache: Path | None = None) -> Any:
        """The Lightning module with the levers that act on it: its fixed-shape networks
        compiled for training (`gpu.training.compiled`; their kernels kept in `compile_cache`
        for the next process), its optimizers fused."""
        if self.compile:
            from gpu.training.compiled import compile_for_training, keep_compiled_in

            if compile_cache:
                keep_compiled_in(compile_cache)
            compile_for_training(model, self.compile, self.compile_mode, self.length_bucket)
        _optimizers_as_asked(model, self.fused_optimizer)
        return model

    def trainer_options(self) -> dict[str, Any]:
        """Lightning's precision and cuDNN benchmark mode."""
        return {
            "precision": self.precision if device() == "cuda" else "32-true",
            "benchmark": self.cudnn_benchmark,
        }

    def datamodule(self, hparams: Any) -> Any:
        """The fork's `VCDataModule`, its training loader pinned, sized, of bucketed lengths
        and (when compiling) of equal batches as asked."""
        from multiprocessing import cpu_count

        from so_vits_svc_fork.train import VCDataModule
        from torch.utils.data import DataLoader

        from gpu.training.lengths import BucketedCollate

        speed, hop = self, hparams.data.hop_length

        class Loader(VCDataModule):
            def train_dataloader(self) -> DataLoader:
                workers = speed.workers or hparams.train.get("num_workers", 8)
                equal_batches = bool(speed.compile) and len(self.train_dataset) > self.batch_size
                return DataLoader(
                    self.train_dataset,
                    num_workers=max(1, min(cpu_count(), workers)),
                    batch_size=self.batch_size,
                    collate_fn=BucketedCollate(self.collate_fn, speed.length_bucket, hop)
                    if speed.length_bucket
                    else self.collate_fn,
                    persistent_workers=True,
                    pin_memory=speed.pin_memory and device() == "cuda",
                    # compiled parts are compiled for the batch's size: an epoch's last, smaller
                    # batch would compile them again. It is dropped, and the loader shuffles
                    # every epoch so each epoch drops other pieces (the fork's dataset shuffles
                    # once, so its fixed order would drop the same pieces every epoch)
                    drop_last=equal_batches,
                    shuffle=equal_batches,
                )

        return Loader(hparams)


def _optimizers_as_asked(model: Any, fused: bool) -> None:
    """AdamW fused or not, as this run asks. The fork builds its optimizers before it loads a
    checkpoint's optimizer state, and loading brings back the saved flags (a job resumed with
    the lever switched off would stay fused); Lightning asks for them once the model is on its
    device and every checkpoint is loaded, so they are set there. The fused kernel keeps each
    step count as a float on the parameter's device: a loaded one is moved there (Lightning
    leaves step counts where they were). It computes AdamW's update as the others do (to
    rounding)."""
    import torch

    before = model.configure_optimizers

    def configure_optimizers() -> Any:
        optimizers, schedulers = before()
        for optimizer in optimizers:
            for group in optimizer.param_groups:
                group.update(fused=fused or None, foreach=None)  # None: torch's default
            for param, state in optimizer.state.items():
                if fused and torch.is_tensor(state.get("step")):
                    state["step"] = state["step"].to(param.device, torch.float32)
        return optimizers, schedulers

    model.configure_optimizers = configure_optimizers
