"""Int8 inference for a loaded :class:`CurvePFN`: the transformer blocks' linear layers in int8.

Applied when a checkpoint is loaded (the checkpoint itself stays float32 safetensors). Weights are
quantised once, symmetrically per output channel; activations are quantised symmetrically per token
at every call (dynamic quantisation), and the product runs as an int8 x int8 -> int32 matrix
multiply (``torch._int_mm``, VNNI on x86) — the scheme of torchao's int8 dynamic-activation /
int8-weight quantisation, without the dependency. Per-token scales keep a trial's tokens on their
own scale, so its forecast does not move with the other trials in the batch.

The token embeddings (one input feature: a curve value quantised to 1/255 would be coarser than
the prior's noise) and the 1,000-bucket head (read only for the query tokens, so cheap) stay
float32.

Why not ``torch.ao.quantization.quantize_dynamic``: in torch 2.13 it warns that it is deprecated
(its replacement is torchao, not a dependency here) and it builds on quantized tensor types that
are deprecated too. It scales whole tensors: a trial's stopping probability then moves by up to
0.027 with the rest of its batch, and the prior likelihood drops by up to 0.0065 (this path:
0.001); see ``benchmarks/pfn_inference.py``. Its one fused kernel is 5-10% faster.
"""

from __future__ import annotations

import logging
import threading

import torch
from torch import nn

from foreseer.predictors.pfn.model import CurvePFN

__all__ = ["Int8Linear", "int8_supported", "quantize_int8"]

logger = logging.getLogger(__name__)

# Per-thread buffers for the quantised activations and the int32 products, grown to the largest
# call and reused, so that a layer makes one fresh (M, N) buffer per call, as a float32 layer does.
# With fresh ones glibc kept returning memory to the OS and faulting it back in: thousands of page
# faults per 32-trial call, and int8 was slower than float32 at 50 epochs. Calls above
# _SCRATCH_MAX elements (batch evaluations) get fresh buffers, so a thread keeps at most 36 MB
# (about 9 MB for 32 trials with 100 epochs each).
_scratch = threading.local()
_SCRATCH_MAX = 1 << 22


def _buffer(name: str, numel: int, dtype: torch.dtype) -> torch.Tensor:
    if numel > _SCRATCH_MAX:
        return torch.empty(numel, dtype=dtype)
    buf = getattr(_scratch, name, None)
    if buf is None or buf.numel() < numel:
        with torch.inference_mode(False):  # a normal tensor: usable as out= in and out of inference mode
            buf = torch.empty(numel, dtype=dtype)
        setattr(_scratch, name, buf)
    return buf[:numel]


def int8_supported() -> bool:
    """Whether this torch has the int8 matrix multiply the quantised path needs."""
    return hasattr(torch, "_int_mm")


class Int8Linear(nn.Module):
    """A frozen :class:`~torch.nn.Linear` computed in int8 with per-token activation scales.

    Inference only: no gradient flows through it.

    Args:
        linear: the float layer to copy and quantise.
    """

    def __init__(self, linear: nn.Linear) -> None:
        super().__init__()
        w = linear.weight.detach().float()  # (N, K)
        scale = w.abs().amax(dim=1).clamp(min=1e-12) / 127  # (N,)
        self.in_features, self.out_features = linear.in_features, linear.out_features
        self.register_buffer("weight_q", torch.round(w / scale[:, None]).to(torch.int8).t().contiguous())
        self.register_buffer("weight_scale", scale)  # (N,)
        bias = linear.bias.detach().float().clone() if linear.bias is not None else torch.zeros(len(scale))
        self.register_buffer("bias", bias)  # (N,)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shape = x.shape
        x2 = x.detach().reshape(-1, shape[-1])  # (M, K)
        M, K = x2.shape
        # max |x| per row without an (M, K) temporary
        absmax = torch.maximum(x2.amax(dim=-1, keepdim=True), x2.amin(dim=-1, keepdim=True).neg_())
        scale = absmax.clamp_(min=1e-12).div_(127)  # (M, 1)
        N = self.out_features
        xf = torch.div(x2, scale, out=_buffer("f32", M * K, torch.float32).view(M, K)).round_()
        xq = _buffer("i8", M * K, torch.int8).view(M, K).copy_(xf)  # exact: integers in [-127, 127]
        acc = torch._int_mm(xq, self.weight_q, out=_buffer("i32", M * N, torch.int32).view(M, N))  # exact
        # (M, N) float32: the only fresh buffer, as for a float32 layer (an int32 x float32 product
        # would first cast acc into a second one)
        y = acc.float().mul_(scale)
        y = torch.addcmul(self.bias, y, self.weight_scale, out=y)
        return y.view(*shape[:-1], N)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, int8"


def quantize_int8(model: CurvePFN) -> CurvePFN:
    """Replace the blocks' linear layers of ``model`` (in place) by :class:`Int8Linear`.

    Returns the model; unchanged, with a warning, where this torch lacks ``torch._int_mm``.
    """
    if not int8_supported():
        logger.warning("torch %s has no torch._int_mm; the PFN stays in float32.", torch.__version__)
        return model
    for block in [*model.blocks, *model.job_blocks]:
        for parent in (block.attn, block.ff):
            for name, child in list(parent.named_children()):
                if isinstance(child, nn.Linear):
                    setattr(parent, name, Int8Linear(child))
    return model
