"""The CC-ST-AE network: encoder, K-sparse classifier, affine head and the dictionary of bases.

Shapes: patterns ``(B, 1, Q, Q)`` (preprocessed, see :mod:`ccstae.data`); the encoder sees them
average-pooled to ``(B, 1, E, E)``; the affine acts on the full ``Q x Q`` grid.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from .affine import compose


ENCODER_CHANNELS = (8, 16, 32)  # per residual stage of the encoder; each stage halves the size


class ResidualBlock(nn.Module):
    """Two 3x3 convolutions with group normalisation and a skip connection; shape-preserving."""

    def __init__(self, channels: int, groups: int = 4):
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.norm1 = nn.GroupNorm(groups, channels)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.norm2 = nn.GroupNorm(groups, channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.leaky_relu(self.norm1(self.conv1(x)), 0.1)
        y = self.norm2(self.conv2(y))
        return F.leaky_relu(x + y, 0.1)


class Encoder(nn.Module):
    """Residual convolutional stages with max-pooling, then fully connected layers.

    ``(B, 1, E, E) -> (B, features)``; ``E`` must be divisible by ``2 ** len(channels)``.
    """

    def __init__(self, input_size: int, channels: tuple[int, ...] = ENCODER_CHANNELS, features: int = 64):
        super().__init__()
        layers: list[nn.Module] = []
        c_in = 1
        for c in channels:
            layers += [nn.Conv2d(c_in, c, 3, padding=1), nn.GroupNorm(4, c), nn.LeakyReLU(0.1), ResidualBlock(c), nn.MaxPool2d(2)]
            c_in = c
        self.stages = nn.Sequential(*layers)
        side = input_size // 2 ** len(channels)
        self.squeeze = nn.Conv2d(c_in, 8, 1)
        self.fc = nn.Sequential(nn.Linear(8 * side * side, 128), nn.LeakyReLU(0.1), nn.Linear(128, features), nn.LeakyReLU(0.1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.flatten(self.squeeze(self.stages(x)), 1))


class KSparse(nn.Module):
    """K-sparse layer with K = 1: a one-hot of the top soft value, trained through the soft values.

    Forward value: the one-hot vector; gradient: that of the softmax (straight-through).
    """

    def __init__(self, features: int, num_bases: int):
        super().__init__()
        self.logits = nn.Linear(features, num_bases)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        soft = torch.softmax(self.logits(h), dim=-1)
        hard = F.one_hot(soft.argmax(dim=-1), soft.shape[-1]).to(soft)
        return hard + (soft - soft.detach())  # exactly the one-hot forwards


@dataclass(frozen=True)
class AffineLimits:
    """Bounds of the affine parameters (tanh-scaled): strain, shear, translation (fraction of the half-width)."""

    strain: float = 0.05
    shear: float = 0.05
    translation: float = 0.1


class AffineHead(nn.Module):
    """Affine parameters from the features and the class: bounded strain and shear, free rotation.

    Rotation is predicted as a 2-vector whose angle is taken, so any angle in 0..360 degrees is
    reachable without a discontinuity. Returns ``A (B, 2, 2)``, ``t (B, 2)`` and the raw
    ``(scale_x, scale_y, shear)``.
    """

    def __init__(self, features: int, num_bases: int, limits: AffineLimits):
        super().__init__()
        self.limits = limits
        self.linear = nn.Linear(features + num_bases, 7)
        nn.init.zeros_(self.linear.weight)
        with torch.no_grad():
            self.linear.bias.copy_(torch.tensor([0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0]))

    def forward(self, h: torch.Tensor, onehot: torch.Tensor, freeze_strain: bool = False):
        p = self.linear(torch.cat([h, onehot], dim=-1))
        sx = self.limits.strain * torch.tanh(p[:, 0])
        sy = self.limits.strain * torch.tanh(p[:, 1])
        sh = self.limits.shear * torch.tanh(p[:, 2])
        if freeze_strain:
            sx, sy, sh = sx * 0, sy * 0, sh * 0
        angle = torch.atan2(p[:, 4], p[:, 3])
        t = self.limits.translation * torch.tanh(p[:, 5:7])
        return compose(sx, sy, sh, angle), t, torch.stack([sx, sy, sh], -1)


class CCSTAE(nn.Module):
    """Encoder + K-sparse classifier + affine head + dictionary of learned bases.

    ``forward(x_small)`` returns the affine ``(A, t)``, the selected base ``(B, 1, Q, Q)`` and the
    strain/shear parameters (for the regulariser).
    """

    def __init__(
        self,
        pattern_size: int,
        encoder_size: int,
        num_bases: int = 1,
        limits: AffineLimits = AffineLimits(),
        init_base: torch.Tensor | None = None,
        channels: tuple[int, ...] = ENCODER_CHANNELS,
    ):
        super().__init__()
        self.encoder = Encoder(encoder_size, channels)
        self.ksparse = KSparse(64, num_bases)
        self.affine = AffineHead(64, num_bases, limits)
        base = torch.zeros(num_bases, pattern_size, pattern_size)
        if init_base is not None:
            base[:] = init_base
        # the dictionary: bases kept non-negative by a softplus of free parameters, initialised by
        # the inverse softplus x + log(1 - exp(-x)) (log(expm1(x)) overflows float32 above x = 88:
        # a bright direct beam over a dark detector reaches that after the Anscombe transform)
        base = base.clamp_min(1e-4)
        self.base_logits = nn.Parameter(base + torch.log(-torch.expm1(-base)))

    def bases(self) -> torch.Tensor:
        return F.softplus(self.base_logits)

    def forward(self, x_small: torch.Tensor, freeze_strain: bool = False):
        h = self.encoder(x_small)
        onehot = self.ksparse(h)
        A, t, params = self.affine(h, onehot, freeze_strain)
        base = torch.einsum("bk,khw->bhw", onehot, self.bases()).unsqueeze(1)
        return A, t, base, params


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
