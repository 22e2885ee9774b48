"""`torch.compile` for the parts of a training step, by name (`PARTS`), each by the lengths
it sees:

- "fixed": the discriminator, which sees fixed-length slices, and the generator's decoder
  (NSF-HiFiGAN, most of the generator's work), which turns a fixed number of frames into a
  slice of audio: compiled once each (the discriminator twice: with its parameters'
  gradients and without, as Lightning toggles them between the two optimizers); the training
  loader drops an epoch's last, smaller batch so no batch compiles anew;
- "any": the posterior encoder and the flow (WaveNet stacks, dozens of small kernels a layer),
  which see whole pieces: compiled with dynamic lengths, once. Their fork code slices by a
  tensor (`fused_add_tanh_sigmoid_multiply`), which splits the graph at each layer, so less
  fuses than in the fixed parts;
- "bucketed": the prior encoder and the F0 decoder, which recompile for every new length, so
  they compile only when the loader pads batches to a few lengths (`gpu.training.lengths`).
  Then the "any" parts compile for each of those lengths too, without symbolic shapes.

Each part is compiled only while training: validation and inference run the same networks on
pieces of any length. The networks keep their parameters and state dict, so checkpoints load
either way.

Three things in the fork's layers stop torch 2.8's compiler, each put in an equivalent form
first (`tests/test_compiled_training.py` compares outputs and gradients with the eager ones)."""

import os
import types
from collections.abc import Callable
from pathlib import Path
from typing import Any

from gpu.training.lengths import LONGEST

# name: (the module within the fork's Lightning module, the lengths it sees)
PARTS: dict[str, tuple[Callable[[Any], Any], str]] = {
    "discriminator": (lambda model: model.net_d, "fixed"),
    "decoder": (lambda model: model.net_g.dec, "fixed"),
    "posterior": (lambda model: model.net_g.enc_q, "any"),
    "flow": (lambda model: model.net_g.flow, "any"),
    "prior": (lambda model: model.net_g.enc_p, "bucketed"),
    "f0": (lambda model: model.net_g.f0_decoder, "bucketed"),
}
FIXED_SHAPES = ("discriminator", "decoder")


def compile_for_training(
    model: Any, parts: tuple[str, ...] = FIXED_SHAPES, mode: str = "default", bucket: int = 0
) -> None:
    """`model` is the fork's Lightning module (`net_g`, `net_d`); `mode` is torch.compile's;
    `bucket` the frames the loader pads batches to a multiple of (`gpu.training.lengths`; 0:
    lengths vary). With CUDA graphs ("reduce-overhead"), each batch starts a new graph
    generation and each compiled part's outputs are copied out of the graph's memory: the fork
    calls the discriminator again on the decoder's output after the generator's backward,
    which would otherwise start a generation that reuses that output's memory while it is
    still read."""
    import torch

    unknown = set(parts) - PARTS.keys()
    if unknown:
        raise ValueError(f"no such part to compile: {sorted(unknown)}; parts: {sorted(PARTS)}")
    if not bucket and (needs := [p for p in parts if PARTS[p][1] == "bucketed"]):
        raise ValueError(f"{needs} recompile for every length: compile them with length_bucket")
    lengths = -(-LONGEST // bucket) if bucket and any(PARTS[p][1] != "fixed" for p in parts) else 0
    if lengths > torch._dynamo.config.recompile_limit:  # past it a part would run eager
        raise ValueError(f"a length_bucket of {bucket} frames leaves {lengths} lengths to compile")
    graphs = mode == "reduce-overhead"
    for part in parts:
        module_of, lengths_seen = PARTS[part]
        net = module_of(model)
        _weight_norm_in_primitives(net)
        _plain_int_geometry(net)
        _one_channel_inputs_in_plain_layout(net)
        dynamic = lengths_seen == "any" and not bucket
        _compiled_while_training(net, mode, dynamic=dynamic, copy_out=graphs)
    if graphs:
        _a_graph_generation_per_batch(model)


def keep_compiled_in(folder: Path) -> None:
    """Inductor's caches (compiled graphs, their kernels, autotuning results) in `folder`, one
    per torch version. Its default is the container's /tmp, lost with it, so every training
    container would pay the compile again (tens of seconds a part); on the work volume only the
    first training after a deploy pays it. Another torch version's cache is of no use to this
    one and goes (at worst a container still on that version compiles again). A cache dir set
    in the environment is kept and left alone; so is one torch already chose, since a process
    that compiled before reads its cache there."""
    import shutil

    import torch

    if "TORCHINDUCTOR_CACHE_DIR" in os.environ:
        return
    target = folder / f"torch-{torch.__version__}"
    for other in folder.glob("torch-*"):
        if other != target:
            shutil.rmtree(other, ignore_errors=True)
    target.mkdir(parents=True, exist_ok=True)
    os.environ["TORCHINDUCTOR_CACHE_DIR"] = str(target)


def _compiled_while_training(net: Any, mode: str, dynamic: bool, copy_out: bool) -> None:
    import torch
    from torch.utils._pytree import tree_map

    eager = net.forward
    compiled = torch.compile(eager, dynamic=dynamic, mode=mode)

    def forward(*args: Any, **kwargs: Any) -> Any:
        if not net.training:
            return eager(*args, **kwargs)
        out = compiled(*args, **kwargs)
        return tree_map(lambda t: t.clone() if torch.is_tensor(t) else t, out) if copy_out else out

    net.forward = forward


def _a_graph_generation_per_batch(model: Any) -> None:
    import torch

    before = model.on_train_batch_start

    def on_train_batch_start(*args: Any, **kwargs: Any) -> Any:
        torch.compiler.cudagraph_mark_step_begin()
        return before(*args, **kwargs)

    model.on_train_batch_start = on_train_batch_start


def _weight_norm_in_primitives(net: Any) -> None:
    """The fork's layers use the old `weight_norm` hook, which calls the fused
    `_weight_norm_interface`; torch 2.8's inductor falls back to its backward kernel without
    making the saved weight contiguous, and the compiled step fails ("saved_v must be
    contiguous", pytorch#165749, fixed in 2.10). The same weight in primitive ops,
    g * v / ||v|| over every dim but `dim`, compiles and fuses."""
    import torch
    from torch.nn.utils.weight_norm import WeightNorm

    def compute_weight(hook: WeightNorm, module: Any) -> torch.Tensor:
        if not torch.compiler.is_compiling():  # eager (validation) keeps the fused kernel
            return WeightNorm.compute_weight(hook, module)
        g = getattr(module, hook.name + "_g")
        v = getattr(module, hook.name + "_v")
        return v * (g / torch.norm_except_dim(v, 2, hook.dim))

    for module in net.modules():
        for hook in module._forward_pre_hooks.values():
            if isinstance(hook, WeightNorm):
                hook.compute_weight = types.MethodType(compute_weight, hook)


def _plain_int_geometry(net: Any) -> None:
    """The NSF decoder builds its noise convolutions' stride and padding with `np.prod`, so
    they are numpy integers; traced, they become tensors, and inductor cannot lower a
    convolution whose stride is a tensor. The same numbers as Python ints."""
    import torch

    for module in net.modules():
        if isinstance(module, torch.nn.modules.conv._ConvNd):
            for name in ("stride", "padding", "dilation", "kernel_size", "output_padding"):
                value = getattr(module, name)
                if isinstance(value, tuple):
                    setattr(module, name, tuple(int(v) for v in value))


def _one_channel_inputs_in_plain_layout(net: Any) -> None:
    """The NSF decoder feeds its noise convolutions a transposed one-channel signal, strides
    (T, 1, 1): as valid a channels-last layout as a contiguous one. The eager kernel answers
    channels-last, inductor's shape model expected contiguous, and the compiled forward
    asserts. A copy in the plain layout (B x T samples) before each one-channel
    convolution settles it."""
    import torch

    def plain(_: Any, args: tuple) -> tuple | None:
        if not torch.compiler.is_compiling():  # eager runs need no copy
            return None
        return (args[0].clone(memory_format=torch.contiguous_format), *args[1:])

    for module in net.modules():
        if isinstance(module, torch.nn.Conv1d) and module.in_channels == 1:
            module.register_forward_pre_hook(plain)
