"""Self-attention (SA), the baseline of CSA Tables 1, 6, 7, 8 ("PCB + SA").

Chen et al., "Compressed Self-Attention for Deep Metric Learning", AAAI 2020, Sec. "Review of
Self-Attention" (the SA of SAGAN, Zhang et al. 2018, and of DANet's position attention, Fu et
al. 2019, both cited there):

* Eq. (1): ``O_i = sum_j f(I_i, I_j) g(I_j)`` over all N = H W positions j;
* Eq. (2): ``f(I_i, I_j) = softmax_j(I_i^T W_theta^T W_phi I_j)`` -- query ``Q = W_theta I`` and
  key ``K = W_phi I`` are 1x1 convs C -> C', a softmax over the key positions j, and *no*
  ``1 / sqrt(C')`` temperature;
* ``g(I_j) = W_g I_j`` with ``W_g in R^{C x C}``: the value V is a 1x1 conv C -> C (unlike the
  non-local block's C/2 value and W_z projection, :mod:`.nonlocal_block`);
* output ``x + alpha * Y``: Eq. (1) alone has no residual, but the SA baseline is a drop-in
  for CSA ("we just replace CSA with SA in the framework"), so it gets CSA's output form,
  Eq. (7), which is also SAGAN's and DANet's.

Choices the paper leaves open, as options:

* ``reduction`` = 8: C' = C / 8, as in SAGAN and DANet, whose C x C value the paper's W_g
  matches (the non-local block's C/2 comes with a reduced value, which the paper does not use).
* ``groups`` = 1: Table 6 lists "PCB + SA" with "Group Num 1", and Sec. "Implementation
  Details" says channel grouping is not included in SA (too costly for SA). With ``groups`` = G
  the channels are split into G groups, each an independent SA (own Q, K of C'/G and V of C/G
  channels from its own C/G inputs: grouped 1x1 convs), like CSA's groups; i.e. G heads.
* ``alpha_init`` = 0 and ``alpha_learnable`` = True: the paper says only "a learnable or fixed
  parameter alpha"; SAGAN and DANet learn it from 0, so the block starts as the identity when
  dropped into a pretrained backbone. A fixed alpha must be non-zero (else the block is dead).
* ``bias`` = False: Eq. (2) and ``g(I) = W_g I`` carry no biases. ``bias=True`` adds them to the
  query and value convs. The key never gets one: ``theta_i^T b_phi`` is constant over j and
  cancels in the softmax.

Two registered implementations of the same function with the same parameters and state-dict
keys: ``"sa"`` materialises the (B, G, N, N) attention (what SA costs in the paper, O(N^2)
memory), ``"sa_sdpa"`` calls ``torch.nn.functional.scaled_dot_product_attention`` with
``scale=1.0`` (Eq. (2) has no temperature; SDPA's default would divide by ``sqrt(C'/G)``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from reid_core.models.attention.base import SizedModule, register_attention


def check_positive_int(owner: str, name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{owner}: {name} must be a positive integer, got {value!r}")
    return value


def make_alpha(module: nn.Module, owner: str, alpha_init: float, alpha_learnable: bool) -> None:
    """Register ``module.alpha`` (a 0-d tensor): a Parameter if learnable, else a buffer.

    Both land under the state-dict key ``alpha``, so checkpoints load across the two settings.
    """
    if not alpha_learnable and alpha_init == 0:
        raise ValueError(f"{owner}: a fixed alpha of 0 makes the block the identity forever; "
                         f"set alpha_init != 0 or alpha_learnable=True")
    alpha = torch.tensor(float(alpha_init))
    if alpha_learnable:
        module.alpha = nn.Parameter(alpha)
    else:
        module.register_buffer("alpha", alpha)


class SelfAttention(SizedModule):
    """SA (Eqs. (1), (2)), explicit: ``x + alpha * Y``, ``Y_i = sum_j softmax_j(q_i . k_j) v_j``.

    Shapes (N = H W, G groups, C' = C / reduction): q, k (B, G, C'/G, N), v (B, G, C/G, N),
    attention (B, G, N, N) with rows (targets i) summing to 1, Y (B, C, H, W).
    """

    def __init__(self, channels: int, height: int, width: int, *, reduction: int = 8,
                 groups: int = 1, bias: bool = False, alpha_init: float = 0.0,
                 alpha_learnable: bool = True) -> None:
        super().__init__(channels, height, width)
        name = type(self).__name__
        check_positive_int(name, "reduction", reduction)
        check_positive_int(name, "groups", groups)
        inner = max(1, channels // reduction)
        if channels % groups or inner % groups:
            raise ValueError(f"{name}: groups = {groups} must divide both C = {channels} and "
                             f"C' = C // reduction = {inner}")
        self.groups = groups
        self.query = nn.Conv2d(channels, inner, 1, groups=groups, bias=bias)
        self.key = nn.Conv2d(channels, inner, 1, groups=groups, bias=False)  # cancels in softmax
        self.value = nn.Conv2d(channels, channels, 1, groups=groups, bias=bias)
        make_alpha(self, name, alpha_init, alpha_learnable)

    def _qkv(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        b, g, n = x.shape[0], self.groups, x.shape[2] * x.shape[3]
        q = self.query(x).view(b, g, -1, n)
        k = self.key(x).view(b, g, -1, n)
        v = self.value(x).view(b, g, -1, n)
        return q, k, v

    def _attend(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """(B, G, C'/G, N) x 2, (B, G, C/G, N) -> Y (B, G, C/G, N)."""
        attention = torch.softmax(q.transpose(-1, -2) @ k, dim=-1)  # Eq. (2): (B, G, N, N)
        return v @ attention.transpose(-1, -2)  # Eq. (1): Y_i = sum_j a_ij v_j

    def attention_map(self, x: torch.Tensor) -> torch.Tensor:
        """``f(I_i, I_j)`` of Eq. (2), shape (B, G, N, N), row i = the map of target i."""
        self.check_input(x)
        q, k, _ = self._qkv(x)
        return torch.softmax(q.transpose(-1, -2) @ k, dim=-1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.check_input(x)
        y = self._attend(*self._qkv(x))
        return x + self.alpha * y.reshape(x.shape)

    def extra_repr(self) -> str:
        return f"groups={self.groups}, in_shape={self.in_shape}"


class SelfAttentionSDPA(SelfAttention):
    """The same SA through ``F.scaled_dot_product_attention`` (same parameters and state dict).

    PyTorch picks a fused kernel when it can. Fused kernels need each position's channels
    contiguous (stride 1), so q, k, v are copied to (B, G, N, channels) layout (O(N C) memory);
    the CPU flash kernel (and CUDA flash) also needs q, k and v to share their last dimension,
    but SA's q, k have C'/G channels and v has C/G. With
    ``match_head_dims`` = True, q and k are zero-padded to C/G channels: the padded dot products
    ``q_i . k_j`` are unchanged, the fused kernel becomes eligible, and the N x N matrix is never
    stored (memory O(N C) instead of O(N^2)), at the price of computing the scores over C/G
    instead of C'/G channels. ``False`` passes them as they are (then, on CPU, SDPA falls back
    to its unfused "math" path, which materialises the attention like ``"sa"``).
    """

    def __init__(self, channels: int, height: int, width: int, *,
                 match_head_dims: bool = True, **options) -> None:
        super().__init__(channels, height, width, **options)
        self.match_head_dims = match_head_dims

    def _attend(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        # Fused kernels need channels-last rows (stride 1 in the last dim): (B, G, N, .) copies.
        q, k, v = (t.transpose(-1, -2).contiguous() for t in (q, k, v))
        pad = v.shape[-1] - q.shape[-1]
        if self.match_head_dims and pad > 0:
            q, k = F.pad(q, (0, pad)), F.pad(k, (0, pad))
        y = F.scaled_dot_product_attention(q, k, v, scale=1.0)  # Eq. (2) has no 1/sqrt(d)
        return y.transpose(-1, -2)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, match_head_dims={self.match_head_dims}"


@register_attention("sa")
def build_sa(channels: int, height: int, width: int, *, reduction: int = 8, groups: int = 1,
             bias: bool = False, alpha_init: float = 0.0,
             alpha_learnable: bool = True) -> SelfAttention:
    """SA of the CSA paper, explicit N x N attention; defaults: C' = C/8, 1 group, no biases,
    alpha learnable from 0."""
    return SelfAttention(channels, height, width, reduction=reduction, groups=groups, bias=bias,
                         alpha_init=alpha_init, alpha_learnable=alpha_learnable)


@register_attention("sa_sdpa")
def build_sa_sdpa(channels: int, height: int, width: int, *, reduction: int = 8,
                  groups: int = 1, bias: bool = False, alpha_init: float = 0.0,
                  alpha_learnable: bool = True,
                  match_head_dims: bool = True) -> SelfAttentionSDPA:
    """``"sa"`` computed by ``scaled_dot_product_attention`` (same options, same state dict),
    plus ``match_head_dims`` (default True: zero-pad q, k so fused kernels apply)."""
    return SelfAttentionSDPA(channels, height, width, reduction=reduction, groups=groups,
                             bias=bias, alpha_init=alpha_init, alpha_learnable=alpha_learnable,
                             match_head_dims=match_head_dims)
