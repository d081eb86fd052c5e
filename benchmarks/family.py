"""The model family of the sharpness benchmark (issue 14): seeded models, data and training.

Every problem is a ``torch.nn.Module``, a criterion (``F.mse_loss`` or ``F.cross_entropy``,
mean reduction) and a fixed full batch, built from one seed, at initialisation or after a
fixed number of full-batch Adam steps. The family spans two MLP sizes with tanh and ReLU,
MSE and cross-entropy, a small CNN and a small transformer block, in float32 and float64;
it contains the two cases reported in the issue (a ~4k-parameter tanh MLP on 1.5k samples in
float32, and a small ReLU network with cross-entropy).
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["Problem", "SPECS", "make", "family"]


@dataclass
class Problem:
    """One benchmark problem: a model at a point, its criterion and its fixed batch."""

    name: str
    point: str  # "init" or "trained"
    model: nn.Module
    criterion: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
    x: torch.Tensor
    y: torch.Tensor
    final_loss: float

    @property
    def dtype(self) -> torch.dtype:
        return self.x.dtype

    @property
    def n(self) -> int:
        return sum(p.numel() for p in self.model.parameters())

    @property
    def label(self) -> str:
        return f"{self.name} ({self.point})"

    def to(self, dtype: torch.dtype, device="cpu") -> "Problem":
        """A copy in another dtype/device (the float64 copy gives the reference)."""
        model = copy.deepcopy(self.model).to(dtype=dtype, device=device)
        y = self.y.to(device=device, dtype=dtype if self.y.is_floating_point() else self.y.dtype)
        return Problem(self.name, self.point, model, self.criterion, self.x.to(device=device, dtype=dtype), y,
                       self.final_loss)


def _init_(module: nn.Module, g: torch.Generator) -> nn.Module:
    """PyTorch's default uniform(-1/sqrt(fan_in), 1/sqrt(fan_in)) init, from generator ``g``."""
    with torch.no_grad():
        for m in module.modules():
            if isinstance(m, (nn.Linear, nn.Conv2d)):
                fan_in = m.weight[0].numel()
                bound = 1 / math.sqrt(fan_in)
                m.weight.uniform_(-bound, bound, generator=g)
                if m.bias is not None:
                    m.bias.uniform_(-bound, bound, generator=g)
            elif isinstance(m, nn.LayerNorm):
                m.weight.fill_(1.0)
                m.bias.zero_()
    return module


def mlp(sizes, act: type[nn.Module]) -> nn.Sequential:
    layers: list[nn.Module] = []
    for a, b in zip(sizes[:-1], sizes[1:]):
        layers += [nn.Linear(a, b), act()]
    return nn.Sequential(*layers[:-1])


class SmallCNN(nn.Module):
    """conv 3x3 (1->6), ReLU, conv 3x3 (6->8), ReLU, 2x2 max-pool, linear to 10 classes."""

    def __init__(self, side: int = 12, classes: int = 10):
        super().__init__()
        self.c1 = nn.Conv2d(1, 6, 3)
        self.c2 = nn.Conv2d(6, 8, 3)
        self.fc = nn.Linear(8 * ((side - 4) // 2) ** 2, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.max_pool2d(torch.relu(self.c2(torch.relu(self.c1(x)))), 2)
        return self.fc(h.flatten(1))


class TransformerBlock(nn.Module):
    """Embedding, one pre-norm block (2-head self-attention, GELU MLP), mean-pool, linear head.

    Attention is written with plain tensor operations (no fused kernels), so that every
    product path (double backward, forward-over-reverse) is defined.
    """

    def __init__(self, d_in: int = 8, d: int = 16, heads: int = 2, seq: int = 8, classes: int = 4):
        super().__init__()
        self.heads = heads
        self.embed = nn.Linear(d_in, d)
        self.pos = nn.Parameter(torch.zeros(seq, d))
        self.ln1, self.ln2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.qkv = nn.Linear(d, 3 * d)
        self.proj = nn.Linear(d, d)
        self.fc1, self.fc2 = nn.Linear(d, 2 * d), nn.Linear(2 * d, d)
        self.head = nn.Linear(d, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, s, _ = x.shape
        h = self.embed(x) + self.pos
        q, k, v = self.qkv(self.ln1(h)).reshape(b, s, 3, self.heads, -1).permute(2, 0, 3, 1, 4)
        att = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1]), dim=-1)
        h = h + self.proj((att @ v).transpose(1, 2).reshape(b, s, -1))
        h = h + self.fc2(F.gelu(self.fc1(self.ln2(h))))
        return self.head(h.mean(1))


@dataclass(frozen=True)
class Spec:
    name: str
    build: Callable[[], nn.Module]
    input_shape: tuple
    samples: int
    loss: str  # "mse" or "ce"
    outputs: int
    dtype: torch.dtype
    lr: float  # Adam learning rate of the "trained" point


# the two cases come first
SPECS: tuple[Spec, ...] = (
    Spec("tanh MLP 24-64-32-8, MSE, 1536 samples, f32 (issue case)",
         lambda: mlp((24, 64, 32, 8), nn.Tanh), (24,), 1536, "mse", 8, torch.float32, 3e-3),
    Spec("ReLU MLP 16-32-32-4, CE, 512 samples, f32 (issue case)",
         lambda: mlp((16, 32, 32, 4), nn.ReLU), (16,), 512, "ce", 4, torch.float32, 3e-3),
    Spec("tanh MLP 32-64-64-10, MSE, 2048 samples, f64",
         lambda: mlp((32, 64, 64, 10), nn.Tanh), (32,), 2048, "mse", 10, torch.float64, 3e-3),
    Spec("ReLU MLP 32-128-128-10, CE, 2048 samples, f64",
         lambda: mlp((32, 128, 128, 10), nn.ReLU), (32,), 2048, "ce", 10, torch.float64, 1e-3),
    Spec("ReLU MLP 16-32-32-4, MSE, 512 samples, f64",
         lambda: mlp((16, 32, 32, 4), nn.ReLU), (16,), 512, "mse", 4, torch.float64, 3e-3),
    Spec("CNN 1x12x12 (conv 6, conv 8, pool, fc), CE, 512 samples, f32",
         SmallCNN, (1, 12, 12), 512, "ce", 10, torch.float32, 3e-3),
    Spec("transformer block d=16 2 heads seq 8, CE, 256 samples, f64",
         TransformerBlock, (8, 8), 256, "ce", 4, torch.float64, 3e-3),
)


def make(spec: Spec, seed: int, point: str = "init", steps: int = 200) -> Problem:
    """The problem of ``spec`` built from ``seed``, at ``point`` ``"init"`` or ``"trained"``.

    Everything is drawn in float64 (whatever the default dtype) and then cast to
    ``spec.dtype``, so a problem depends on ``spec`` and ``seed`` only.

    Targets come from a random teacher of the same architecture (a different seed):
    its outputs, scaled to unit variance, for MSE; its argmax for cross-entropy.
    ``"trained"`` runs ``steps`` full-batch Adam steps from the initialisation.
    """
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)  # the same draws whatever the caller's default dtype
    try:
        g = torch.Generator().manual_seed(seed)
        x = torch.randn(spec.samples, *spec.input_shape, generator=g)
        teacher = _init_(spec.build(), g)
        model = _init_(spec.build(), g)
        with torch.no_grad():
            out = teacher(x)
    finally:
        torch.set_default_dtype(old)
    if spec.loss == "mse":
        y = out / out.std()
        criterion = F.mse_loss
    else:
        y = out.argmax(1)
        criterion = F.cross_entropy
    model = model.to(spec.dtype)
    x = x.to(spec.dtype)
    if y.is_floating_point():
        y = y.to(spec.dtype)
    if point == "trained":
        opt = torch.optim.Adam(model.parameters(), lr=spec.lr)
        for _ in range(steps):
            opt.zero_grad(set_to_none=True)
            criterion(model(x), y).backward()
            opt.step()
        for p in model.parameters():
            p.grad = None
    elif point != "init":
        raise ValueError(f"point must be 'init' or 'trained', got {point!r}")
    with torch.no_grad():
        final = float(criterion(model(x), y))
    return Problem(spec.name, point, model, criterion, x, y, final)


def family(seed: int, points=("init", "trained"), specs=SPECS, steps: int = 200) -> list[Problem]:
    """Every problem of the family, model by model, each at each of ``points``."""
    return [make(s, seed + i, p, steps) for i, s in enumerate(specs) for p in points]
