"""Making a trained language model cheaper to serve (chapter 16): quantise, prune, distil.

Four ways to shrink the story model, measured on the same three axes (``measure``):

* ``dynamic_int8``: torch's own dynamic quantisation (``torch.ao.quantization.quantize_dynamic``):
  int8 weights and int8 matrix products, activations quantised on the fly;
* ``quantize_weights``: weight-only int8 written out: ``quantize_rows`` keeps one scale per
  output row, ``Int8Linear`` stores the int8 matrix and dequantises it at every call;
* ``prune_model``: magnitude pruning, the smallest ``share`` of each matrix's weights set to 0
  (``magnitude_prune``); without sparse storage and kernels this saves neither bytes nor time;
* ``distill``: a smaller student trained on the teacher's soft targets (Hinton, Vinyals and
  Dean, 2015, "Distilling the knowledge in a neural network"), ``distillation_loss``.

Only the Linear layers inside the Transformer blocks are compressed: the output layer shares
its matrix with the token embedding (tied weights) and stays in float32.

    small = quantize_weights(run.model)                 # a copy; run.model is unchanged
    measure(small, val_ids)                            # {"bytes": ..., "ms_per_token": ..., "val_loss": ...}
"""
from __future__ import annotations

import copy
import io
import time

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["quantize_rows", "dequantize_rows", "Int8Linear", "quantize_weights", "dynamic_int8",
           "magnitude_prune", "prune_model", "distillation_loss", "distill", "model_bytes",
           "ms_per_token", "peak_memory_mb", "measure"]


# --- weight-only quantisation, written out --------------------------------------------------------

def quantize_rows(weight: torch.Tensor, bits: int = 8) -> tuple[torch.Tensor, torch.Tensor]:
    """Symmetric per-row quantisation of a matrix.

    1. qmax = 2^(bits-1) - 1 (127 for 8 bits);
    2. each row's scale = max |w| of the row / qmax (a row of zeros gets scale 1);
    3. q = round(w / scale), clamped to [-qmax, qmax], stored as int8.

    Args:
        weight: (out, in) float matrix.
        bits: 2 to 8.
    Returns:
        q (out, in) int8 and scale (out, 1) float32, with ``q * scale`` close to ``weight``.
    """
    if weight.dim() != 2:
        raise ValueError(f"weight must be a (out, in) matrix, got shape {tuple(weight.shape)}")
    if not isinstance(bits, int) or not 2 <= bits <= 8:
        raise ValueError(f"bits must be an int from 2 to 8, got {bits!r}")
    qmax = 2 ** (bits - 1) - 1
    w = weight.detach().float()
    amax = w.abs().amax(dim=1, keepdim=True)                                  # (out, 1)
    scale = torch.where(amax > 0, amax / qmax, torch.ones_like(amax))         # (out, 1)
    q = torch.round(w / scale).clamp(-qmax, qmax).to(torch.int8)              # (out, in)
    return q, scale


def dequantize_rows(q: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """(out, in) int8 and (out, 1) scales -> the (out, in) float32 matrix they stand for."""
    return q.float() * scale


class Int8Linear(nn.Module):
    """A Linear layer stored as int8 weights with one scale per output row.

    The matrix is dequantised on the fly at every call (weight-only quantisation: the
    bytes shrink four-fold, the arithmetic stays float32).
    """

    def __init__(self, linear: nn.Linear, bits: int = 8):
        super().__init__()
        q, scale = quantize_rows(linear.weight, bits)
        self.register_buffer("q", q)                                          # (out, in) int8
        self.register_buffer("scale", scale)                                  # (out, 1)
        self.bias = None if linear.bias is None else nn.Parameter(linear.bias.detach().clone())
        self.bits = bits

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, dequantize_rows(self.q, self.scale), self.bias)     # (..., out)

    def extra_repr(self) -> str:
        return f"in={self.q.shape[1]}, out={self.q.shape[0]}, bits={self.bits}"


def _block_linears(model: nn.Module):
    """(parent, attribute name, Linear) for every Linear inside ``model.blocks``."""
    blocks = getattr(model, "blocks", None)
    if blocks is None:
        raise TypeError("expected a coursekit GPT (a model with .blocks)")
    for parent in blocks.modules():
        for name, child in parent.named_children():
            if isinstance(child, nn.Linear):
                yield parent, name, child


def quantize_weights(model: nn.Module, bits: int = 8) -> nn.Module:
    """A copy of a GPT whose block Linears are ``Int8Linear`` (``bits`` per weight)."""
    out = copy.deepcopy(model).eval()
    for parent, name, linear in list(_block_linears(out)):
        setattr(parent, name, Int8Linear(linear, bits))
    return out


def dynamic_int8(model: nn.Module) -> nn.Module:
    """A copy of a GPT whose block Linears run torch's dynamic int8 quantisation."""
    import warnings
    from torch.ao.quantization import quantize_dynamic
    out = copy.deepcopy(model).eval()
    with warnings.catch_warnings():          # torch marks torch.ao as deprecated in favour of torchao
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", UserWarning)
        for block in out.blocks:
            quantize_dynamic(block, {nn.Linear}, dtype=torch.qint8, inplace=True)
    return out


# --- pruning ------------------------------------------------------------------------------

def magnitude_prune(weight: torch.Tensor, share: float) -> torch.Tensor:
    """A copy of ``weight`` with its ``round(share * numel)`` smallest-magnitude entries set to 0.

    Ties at the threshold are broken by position (the earlier entry is pruned first), so
    exactly that many entries become zero.
    """
    if not 0.0 <= share <= 1.0:
        raise ValueError(f"share must be in [0, 1], got {share}")
    flat = weight.detach().reshape(-1)
    k = int(round(share * flat.numel()))
    out = flat.clone()
    if k:
        order = torch.sort(flat.abs(), stable=True).indices                   # smallest first
        out[order[:k]] = 0
    return out.reshape(weight.shape)


def prune_model(model: nn.Module, share: float) -> nn.Module:
    """A copy of a GPT with ``share`` of each block Linear's weights zeroed (layer by layer)."""
    out = copy.deepcopy(model).eval()
    with torch.no_grad():
        for _, _, linear in _block_linears(out):
            linear.weight.copy_(magnitude_prune(linear.weight, share))
    return out


# --- distillation -----------------------------------------------------------------------------

def distillation_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, T: float = 2.0) -> torch.Tensor:
    """Hinton et al.'s soft-target loss: T^2 KL(teacher_T || student_T), averaged over positions.

    Args:
        student_logits, teacher_logits: (..., V) logits of the same positions.
        T: temperature (> 0) applied to both before the softmax; T^2 keeps the gradient's
            size independent of T.
    Returns:
        A 0-d tensor.
    """
    if T <= 0:
        raise ValueError(f"T must be positive, got {T}")
    V = student_logits.shape[-1]
    s = F.log_softmax(student_logits.reshape(-1, V) / T, dim=-1)              # (N, V)
    t = F.log_softmax(teacher_logits.reshape(-1, V).detach() / T, dim=-1)     # (N, V)
    return T * T * (t.exp() * (t - s)).sum(-1).mean()


def distill(teacher: nn.Module, student_cfg, data, n_steps: int, *, T: float = 2.0, alpha: float = 0.9,
            batch_size: int = 16, lr: float = 6e-3, seed: int = 0, progress: bool = True):
    """Train a new GPT(student_cfg) on ``alpha`` soft-target loss + ``1 - alpha`` next-token loss.

    Args:
        teacher: the trained GPT (kept in eval mode, not changed).
        student_cfg: the student's ``GPTConfig`` (same vocabulary).
        data: an ``LMData`` (the teacher's training text).
        n_steps: optimisation steps; T, alpha: the loss's temperature and mix.
    Returns:
        An ``LMRun`` of the student (history "loss"), the global random state untouched.
    """
    from coursekit.data.text import get_batch
    from coursekit.lm import LMRun
    from coursekit.models.gpt import GPT
    from coursekit.train import train
    if student_cfg.vocab_size != teacher.config.vocab_size:
        raise ValueError("the student must use the teacher's vocabulary")
    teacher.eval()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        student = GPT(student_cfg)
        student.train()
        opt = student.configure_optimizer(lr=lr, weight_decay=0.1)
        gen = torch.Generator().manual_seed(seed)

        def step(i: int) -> dict:
            for group in opt.param_groups:
                group["lr"] = lr * min(1.0, (i + 1) / 20) * (1 - i / n_steps)
            x, y = get_batch(data.train, student_cfg.block_size, batch_size, generator=gen)   # (B, T)
            with torch.no_grad():
                t_logits, _ = teacher(x)                                                     # (B, T, V)
            s_logits, ce = student(x, y)
            loss = alpha * distillation_loss(s_logits, t_logits, T) + (1 - alpha) * ce
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(student.parameters(), 1.0)
            opt.step()
            return {"loss": loss.item(), "ce": ce.item()}

        start = time.perf_counter()
        history = train(step, n_steps, desc="distilling the student", show=progress)
        seconds = time.perf_counter() - start
    student.eval()
    return LMRun(student, history, student_cfg, seconds, tokenizer=data.tokenizer)


# --- measuring ------------------------------------------------------------------------------

def model_bytes(model: nn.Module) -> int:
    """Bytes of the model's saved state_dict (``torch.save``; a tied matrix is stored once)."""
    buf = io.BytesIO()
    torch.save(model.state_dict(), buf)
    return buf.getbuffer().nbytes


@torch.no_grad()
def ms_per_token(model: nn.Module, prompt: torch.Tensor, n_tokens: int = 40, repeats: int = 3) -> float:
    """Milliseconds per generated token, greedy with the key-value cache, on one CPU thread.

    The best of ``repeats`` timings (the least disturbed by other work on the machine).
    """
    from coursekit.sampling import generate
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        model.eval()
        generate(model, prompt, 2, temperature=0.0)                            # warm-up
        best = float("inf")
        for _ in range(repeats):
            start = time.perf_counter()
            generate(model, prompt, n_tokens, temperature=0.0)
            best = min(best, time.perf_counter() - start)
    finally:
        torch.set_num_threads(threads)
    return 1000 * best / n_tokens


def peak_memory_mb() -> float:
    """The largest resident memory this process has used so far, in MB (2^20 bytes).

    Linux reports ``ru_maxrss`` in KiB, macOS in bytes; Windows has no ``resource``
    module, and psutil's peak working set stands in.
    """
    import sys
    try:
        import resource
    except ImportError:                                    # Windows
        import psutil
        return psutil.Process().memory_info().peak_wset / 2 ** 20
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2 ** 20 if sys.platform == "darwin" else peak / 2 ** 10


def measure(model: nn.Module, val_ids: torch.Tensor, prompt: torch.Tensor | None = None,
            n_tokens: int = 40) -> dict:
    """Size (bytes), latency (ms per token, 1 thread) and quality (validation loss, nats per char)."""
    from coursekit.lm import lm_loss
    prompt = val_ids[:16][None] if prompt is None else prompt                   # (1, T0)
    return {"bytes": model_bytes(model), "ms_per_token": ms_per_token(model, prompt, n_tokens),
            "val_loss": lm_loss(model, val_ids)}
