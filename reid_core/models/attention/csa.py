"""Compressed Self-Attention (CSA; Chen, Gong, Xu, Wang, Zhang & Du, "Compressed Self-Attention
for Deep Metric Learning", AAAI 2020).

No official code exists (``shared/reference/implementation-notes.md`` Sec. 4); this is written
from the paper's text and equations, whose numbering survived the extraction intact.

SA (Eq. (1)) gives every target position i its own attention map over the N = H W sources j.
CSA replaces the N maps by D *base* maps and a per-position mixture of them:

* Eq. (3): base attention map k over the sources, ``f_b(v_k, I_j) = softmax_j(v_k^T I_j)``,
  with D learnable base feature vectors ``v_k`` (a 1x1 conv C -> D giving the logits M);
* Eq. (4): the reconstructed map of target i, ``f_a(I_i, I_j) = sum_k f_b(v_k, I_j) w(v_k, I_i)``
  with adaptive weights ``w(v_k, I_i) = softmax_k(v_k^T I_i)`` (the extracted text prints the
  denominator as ``sum_k' exp(v_k^T I_i)``, a typo -- of the paper or of the extraction --
  for ``v_k'``: as printed every weight would be 1/D);
* Eq. (5): putting (4) into (1) and summing over j first, ``O_i = sum_k w(v_k, I_i) E_k``;
* Eq. (6): elementary outputs ``E_k = sum_j V_j softmax_j(M_kj)``, i.e. E = V B^T (C x D);
* Eq. (7): ``O_i = alpha * sum_k E_k softmax_k(M_ki) + I_i``, i.e. ``x + alpha * E W``.

The explicit N x N map A of Eq. (4) is never formed in :meth:`forward`: it stores M, B, W
(D x N each), V and Y (C x N) and E (C x D) per group, O(N (C + G D)) memory, and costs
O(N C D) multiply-adds instead of SA's O(N^2 C). :meth:`attention_map` builds A for inspection.

Grouping (Sec. "Implementation of CSA module", last paragraph): the channels are split into G
groups and "CSA [is performed] within each group independently"; D is the number of base maps
*in each group* (Sec. "Implementation Details": "the number of base attention maps in each group
to 32 and the number of groups to 2"; Tables 2 and 3).

Options (the open choices of the implementation notes, Sec. 4), defaults from the paper where it
says so:

* ``num_bases`` = 32: D per group (paper; Table 2 tries 8-64). The same D at every stage, as
  the paper uses one setting for all three CSA modules; it does not scale with resolution.
* ``groups`` = 2: G (paper; Table 3 tries 1, 2, 4, 8). Must divide C.
* ``shared_map`` = True: B and W are the spatial and the channel softmax of *one* conv output M
  (paper step (ii): "two softmax operations are performed on the spatial and channel dimensions
  of M"; Eqs. (3) and (4) use the same ``v_k``). False: a second 1x1 conv gives W's logits.
* ``value`` = ``"conv"``: V = 1x1 conv C -> C (paper step (i), ``g(I) = W_g I``); ``"identity"``
  uses x itself (no value parameters).
* ``grouped_convs`` = True: group g's M, W and V are computed from its own C/G input channels
  only (grouped 1x1 convs; our reading of "within each group independently"). False: they are
  computed from all C channels and only the attention is split by group.
* ``bias`` = False: Eqs. (3), (4) and ``g`` have no biases. True adds them to the convs whose
  bias does not cancel: W's logits and V. A bias of B's logits never matters (constant over j in
  the spatial softmax), so a separate B conv never gets one.
* ``alpha_init`` = 0, ``alpha_learnable`` = True: the paper says "a learnable or fixed parameter
  alpha"; we follow SAGAN/DANet (learnt, starts at 0: the block starts as the identity). A fixed
  alpha must be non-zero.

Deep supervision (Eq. (8)) and where the modules go (after stages 1-3) belong to the model, not
to this block.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn

from reid_core.models.attention.base import SizedModule, register_attention
from reid_core.models.attention.sa import check_positive_int, make_alpha

Value = Literal["conv", "identity"]
VALUES: tuple[str, ...] = ("conv", "identity")


class CompressedSelfAttention(SizedModule):
    """CSA block, Eq. (7): ``x + alpha * (V B^T) W`` per channel group.

    Shapes (N = H W, G groups, D base maps per group): logits M and the maps B (softmax over N,
    Eq. (3)) and W (softmax over D, Eq. (4)) (B, G, D, N); V (B, G, C/G, N); elementary outputs
    E (B, G, C/G, D), Eq. (6); Y = E W (B, G, C/G, N) -> (B, C, H, W), Eq. (7).
    """

    def __init__(self, channels: int, height: int, width: int, *, num_bases: int = 32,
                 groups: int = 2, shared_map: bool = True, value: Value = "conv",
                 grouped_convs: bool = True, bias: bool = False, alpha_init: float = 0.0,
                 alpha_learnable: bool = True) -> None:
        super().__init__(channels, height, width)
        name = type(self).__name__
        check_positive_int(name, "num_bases", num_bases)
        check_positive_int(name, "groups", groups)
        if channels % groups:
            raise ValueError(f"{name}: groups = {groups} must divide C = {channels}")
        if value not in VALUES:
            raise ValueError(f"{name}: value must be one of {', '.join(VALUES)}; got {value!r}")
        self.num_bases, self.groups = num_bases, groups
        self.shared_map, self.grouped_convs = shared_map, grouped_convs
        conv_groups = groups if grouped_convs else 1
        maps = groups * num_bases
        # The base vectors v_k of Eqs. (3)-(4), D per group. Its bias only reaches W (it cancels
        # in B's spatial softmax), so it is wanted only when this conv also feeds W.
        self.map_conv = nn.Conv2d(channels, maps, 1, groups=conv_groups,
                                  bias=bias and shared_map)
        self.weight_conv: nn.Conv2d | None = None
        if not shared_map:
            self.weight_conv = nn.Conv2d(channels, maps, 1, groups=conv_groups, bias=bias)
        self.value: nn.Module = (
            nn.Conv2d(channels, channels, 1, groups=conv_groups, bias=bias)
            if value == "conv" else nn.Identity())
        make_alpha(self, name, alpha_init, alpha_learnable)

    def _maps(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        b, n = x.shape[0], x.shape[2] * x.shape[3]
        logits = self.map_conv(x).view(b, self.groups, self.num_bases, n)  # M
        bases = torch.softmax(logits, dim=-1)  # Eq. (3): each base map sums to 1 over space
        if self.weight_conv is not None:
            logits = self.weight_conv(x).view(b, self.groups, self.num_bases, n)
        weights = torch.softmax(logits, dim=2)  # Eq. (4)'s w: sums to 1 over the D bases
        return bases, weights

    def bases_and_weights(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Base attention maps B (Eq. (3)) and adaptive weights W (Eq. (4)), each (B, G, D, N):
        ``B[.., k, j] = f_b(v_k, I_j)``, ``W[.., k, i] = w(v_k, I_i)`` (paper Fig. 5 shows B)."""
        self.check_input(x)
        return self._maps(x)

    def attention_map(self, x: torch.Tensor) -> torch.Tensor:
        """The full map of Eq. (4), ``A[.., i, j] = f_a(I_i, I_j) = sum_k W[k, i] B[k, j]``,
        shape (B, G, N, N), row i = the map of target i (rows sum to 1). This is the transpose
        of the paper's ``B^T W`` (Fig. 3 multiplies ``V (B^T W)``). O(N^2) memory: inspection
        only, :meth:`forward` never builds it."""
        bases, weights = self.bases_and_weights(x)
        return weights.transpose(-1, -2) @ bases

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.check_input(x)
        b, n = x.shape[0], x.shape[2] * x.shape[3]
        bases, weights = self._maps(x)
        v = self.value(x).reshape(b, self.groups, -1, n)  # (B, G, C/G, N)
        elementary = v @ bases.transpose(-1, -2)  # Eq. (6): E = V B^T, (B, G, C/G, D)
        y = elementary @ weights  # Eqs. (5)/(7): Y_i = sum_k w(v_k, I_i) E_k, (B, G, C/G, N)
        return x + self.alpha * y.reshape(x.shape)

    def extra_repr(self) -> str:
        return (f"num_bases={self.num_bases}, groups={self.groups}, "
                f"shared_map={self.shared_map}, grouped_convs={self.grouped_convs}, "
                f"in_shape={self.in_shape}")


@register_attention("csa")
def build_csa(channels: int, height: int, width: int, *, num_bases: int = 32, groups: int = 2,
              shared_map: bool = True, value: Value = "conv", grouped_convs: bool = True,
              bias: bool = False, alpha_init: float = 0.0,
              alpha_learnable: bool = True) -> CompressedSelfAttention:
    """CSA for (B, channels, height, width) inputs. Defaults are the paper's re-ID setting
    (D = 32 base maps per group, 2 groups, one shared map conv, conv value) and, where the paper
    is silent, ours (grouped convs, no biases, alpha learnt from 0); see the module docstring.

    Raises:
        ValueError: a non-positive count, ``groups`` not dividing C, an unknown ``value``, or a
            fixed ``alpha`` of 0.
    """
    return CompressedSelfAttention(
        channels, height, width, num_bases=num_bases, groups=groups, shared_map=shared_map,
        value=value, grouped_convs=grouped_convs, bias=bias, alpha_init=alpha_init,
        alpha_learnable=alpha_learnable)
