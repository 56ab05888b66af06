"""Non-local and simplified non-local, the "NL [35]" and "SNL [5]" comparators of RGA Table 2.

NL: Wang, Girshick, Gupta & He, "Non-local Neural Networks", CVPR 2018, embedded Gaussian:

* Eq. (1): ``y_i = 1 / C(x) * sum_j f(x_i, x_j) g(x_j)``;
* Eq. (3): ``f(x_i, x_j) = exp(theta(x_i)^T phi(x_j))``, ``C(x) = sum_j f(x_i, x_j)``, i.e. a
  softmax over the source positions j (no 1/sqrt(d) scaling: that is not in the paper);
* Eq. (6): ``z_i = W_z y_i + x_i``; theta, phi, g are 1x1 convs to C/2 channels, W_z a 1x1 conv
  back to C followed by BN whose scale is initialised to zero, "so that the initial state of the
  entire non-local block is an identity mapping" (Wang et al., implementation details).

SNL: Cao, Xu, Lin, Wei & Hu, "GCNet: Non-local Networks Meet Squeeze-Excitation Networks and
Beyond", arXiv:1904.11492, "Simplifying the Non-local Block":

* Eq. (2): ``z_i = x_i + sum_j [exp(W_k x_j) / sum_m exp(W_k x_m)] W_v x_j`` -- the attention
  weights depend on the source position only, so they are shared by every query position;
* Eq. (3): W_v moved out of the sum (same function, less compute):
  ``z_i = x_i + W_v sum_j alpha_j x_j`` with ``alpha = softmax_j(W_k x_j)``.

We implement Eq. (3): W_k is a 1x1 conv C -> 1, W_v a single 1x1 conv C -> C. This is the
*simplified NL*, not GCNet's GC block (Eq. (4)), which replaces W_v by a bottleneck
``W_v2 ReLU(LN(W_v1 .))``; RGA compares against SNL, so there is no bottleneck and no LayerNorm.
RGA (Secs. 2.2 and 4.2) stresses exactly this property: the aggregated vector added to every
position is the same for all target positions.

Choices the papers leave open, as options:

* NL ``reduction`` = 2: the inner width C/2 of Wang et al. (``max(1, C // reduction)``).
* NL ``subsample`` = False: Wang et al.'s optional max pooling (2x2) after phi and g, which cuts
  the pairwise cost by 4. Off by default because re-ID maps are small (N <= 64 x 32) and RGA
  does not mention it. When on, the source set has ``floor(H/2) * floor(W/2)`` positions.
* NL biases: theta and g carry biases; phi does not, because ``theta_i^T b_phi`` is constant
  over j and cancels in the softmax (a parameter that could never learn). W_z has no bias since
  the BN right after it has its own shift.
* SNL ``zero_init`` = True: W_v (weight and bias) starts at zero so SNL, like NL, starts as the
  identity when dropped into a pretrained backbone (a fair comparison with NL; GCNet's released
  code likewise zero-initialises the last layer of its transform). The GCNet equations say
  nothing about initialisation. W_k has no bias: the softmax over positions is shift-invariant.
"""

from __future__ import annotations

import torch
from torch import nn

from reid_core.models.attention.base import SizedModule, register_attention
from reid_core.models.attention.se import reduced_channels


class NonLocalBlock(SizedModule):
    """Embedded-Gaussian non-local block with a zero-initialised output BN (Wang et al.).

    Shapes (N = H W source/target positions, N' = N or the subsampled count, C' = C / reduction):
    theta (B, C', N), phi and g (B, C', N'), affinity softmax_j (B, N, N'), y (B, C', H, W),
    ``z = x + BN(W_z y)`` (B, C, H, W).
    """

    def __init__(self, channels: int, height: int, width: int, reduction: int = 2,
                 subsample: bool = False) -> None:
        super().__init__(channels, height, width)
        if subsample and (height < 2 or width < 2):
            raise ValueError(f"subsample=True needs H, W >= 2 for 2x2 max pooling, "
                             f"got H x W = {height} x {width}")
        inner = reduced_channels(channels, reduction)
        self.theta = nn.Conv2d(channels, inner, 1)
        self.phi = nn.Conv2d(channels, inner, 1, bias=False)  # bias would cancel in softmax_j
        self.g = nn.Conv2d(channels, inner, 1)
        self.pool: nn.Module = nn.MaxPool2d(2) if subsample else nn.Identity()
        self.w_z = nn.Conv2d(inner, channels, 1, bias=False)  # the BN below supplies the shift
        self.bn = nn.BatchNorm2d(channels)
        # Zero BN scale (and shift) => BN(W_z y) == 0 => z == x at initialisation.
        nn.init.zeros_(self.bn.weight)
        nn.init.zeros_(self.bn.bias)

    def _affinity_and_values(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        theta = self.theta(x).flatten(2)  # (B, C', N) targets i
        phi = self.pool(self.phi(x)).flatten(2)  # (B, C', N') sources j
        g = self.pool(self.g(x)).flatten(2)  # (B, C', N')
        # f(x_i, x_j) / C(x) = softmax over j of theta_i . phi_j, Eqs. (1) and (3).
        affinity = torch.softmax(theta.transpose(1, 2) @ phi, dim=-1)  # (B, N, N')
        return affinity, g

    def affinity(self, x: torch.Tensor) -> torch.Tensor:
        """Normalised pairwise weights ``f(x_i, x_j) / C(x)``, shape (B, N, N'); rows sum to 1."""
        self.check_input(x)
        return self._affinity_and_values(x)[0]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.check_input(x)
        b, _, h, w = x.shape
        affinity, g = self._affinity_and_values(x)
        y = (g @ affinity.transpose(1, 2)).view(b, -1, h, w)  # y_i = sum_j a_ij g_j: (B, C', H, W)
        return x + self.bn(self.w_z(y))  # Eq. (6)


class SimplifiedNonLocal(SizedModule):
    """GCNet's simplified NL, Eq. (3): ``z_i = x_i + W_v sum_j softmax_j(W_k x_j) x_j``.

    Shapes: weights (B, 1, N) -> context (B, C, 1, 1) -> W_v (B, C, 1, 1) -> broadcast add to
    every position of x (B, C, H, W).
    """

    def __init__(self, channels: int, height: int, width: int, zero_init: bool = True) -> None:
        super().__init__(channels, height, width)
        self.key = nn.Conv2d(channels, 1, 1, bias=False)  # W_k; a bias cancels in the softmax
        self.transform = nn.Conv2d(channels, channels, 1)  # W_v, single 1x1 conv, no bottleneck
        if zero_init:
            nn.init.zeros_(self.transform.weight)
            nn.init.zeros_(self.transform.bias)

    def _weights(self, x: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.key(x).flatten(2), dim=-1)  # (B, 1, N), softmax over positions

    def attention_weights(self, x: torch.Tensor) -> torch.Tensor:
        """The query-independent pooling weights ``alpha_j``, shape (B, 1, N); they sum to 1."""
        self.check_input(x)
        return self._weights(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.check_input(x)
        b, c = x.shape[:2]
        alpha = self._weights(x)  # (B, 1, N)
        context = (x.flatten(2) @ alpha.transpose(1, 2)).view(b, c, 1, 1)  # sum_j alpha_j x_j
        return x + self.transform(context)  # same vector added at every position


@register_attention("nl")
def build_nl(channels: int, height: int, width: int, *, reduction: int = 2,
             subsample: bool = False) -> NonLocalBlock:
    """Embedded-Gaussian non-local block; ``reduction`` = 2 (inner width C/2), no subsampling."""
    return NonLocalBlock(channels, height, width, reduction=reduction, subsample=subsample)


@register_attention("snl")
def build_snl(channels: int, height: int, width: int, *,
              zero_init: bool = True) -> SimplifiedNonLocal:
    """GCNet's simplified non-local block; ``zero_init`` = True (W_v starts at zero)."""
    return SimplifiedNonLocal(channels, height, width, zero_init=zero_init)
