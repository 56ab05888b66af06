"""Relation-Aware Global Attention (RGA; Zhang et al., "Relation-Aware Global Attention for
Person Re-identification", CVPR 2020).

Written from the paper (Sec. 3, Eqs. 1-4; Sec. 4, Tables 1, 3, 4) and from the description of the
official code (microsoft/Relation-Aware-Global-Attention-Networks, ``RGA_Module``) in
``shared/reference/implementation-notes.md`` Sec. 1.1. No code was copied.

How one branch computes its attention mask (the same for the spatial and the channel branch; only
what counts as a "node" and as a node's "feature" differs):

* Eq. (1)/(4): embeddings theta, phi (1x1 conv without bias + BN + ReLU, ``D -> D // s1``);
  relation matrix ``R = theta^T phi`` of raw inner products (official code: no softmax, no scaling).
* Relation vector of node i: ``r_i = [R(i, :), R(:, i)]`` (2 x num_nodes values), laid out as a
  2*num_nodes-channel map over the node grid (:func:`stack_relations`).
* Eq. (2): ``y_i = [pool_c(psi(x_i)), varphi(r_i)]``: the unary embedding ``psi`` (``gx``,
  ``D -> D // s1``) averaged over its channels to 1 channel, then the relation embedding ``varphi``
  (``gg``, ``2 * num_nodes -> num_nodes // s1``); ``1 + num_nodes // s1`` channels in all.
* Eq. (3): ``a_i = sigmoid(W2 ReLU(W1 y_i))``; official code: ``W1`` = 1x1 conv to
  ``(1 + num_nodes // s1) // s2`` channels + BN, ``W2`` = 1x1 conv to 1 channel + BN(1). No biases.
* The input is multiplied by the mask.

RGA-S (Sec. 3.2): nodes = the N = H*W positions, node feature = the C-vector; the mask is one value
per position, shared by all channels. RGA-C (Sec. 3.3): nodes = the C channels, node feature = the
N-vector (the official "positions as channels" layout: x viewed as (B, N, C, 1)); the mask is one
value per channel, shared by all positions. Every layer sees ``N`` or ``C`` as a channel count,
hence a module is tied to the (C, H, W) it was built for.

Initialisation: PyTorch's default (the official code defines ``weights_init_kaiming`` but never
applies it to the RGA modules).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal, cast

import torch
from torch import nn

from reid_core.models.attention.base import SizedModule, register_attention

Mode = Literal["s", "c", "sc", "cs", "s_par_c"]
Embedding = Literal["asymmetric", "symmetric", "none"]
Fusion = Literal["multiply", "mean", "logit_sum"]

MODES: tuple[str, ...] = ("s", "c", "sc", "cs", "s_par_c")
EMBEDDINGS: tuple[str, ...] = ("asymmetric", "symmetric", "none")
FUSIONS: tuple[str, ...] = ("multiply", "mean", "logit_sum")


def count_parameters(module: nn.Module, trainable_only: bool = False) -> int:
    """Number of parameter values in ``module`` (shared parameters counted once).

    ``trainable_only=False`` also counts frozen parameters such as BNNeck's fixed BN bias, which
    is what ``sum(p.numel() for p in model.parameters())`` (the usual way to report a model's
    size) counts.
    """
    return sum(p.numel() for p in module.parameters() if p.requires_grad or not trainable_only)


def embedding_block(in_channels: int, out_channels: int) -> nn.Sequential:
    """The official code's embedding: 1x1 conv (no bias) -> BN -> ReLU (Eqs. 1 and 2)."""
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, kernel_size=1, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
    )


def relation_matrix(theta: torch.Tensor, phi: torch.Tensor) -> torch.Tensor:
    """Eq. (1)/(4): ``R[b, i, j] = <theta_i, phi_j>``, raw inner products (no softmax/scaling).

    Args:
        theta, phi: (B, D, n) node embeddings (D features per node, n nodes).
    Returns:
        (B, n, n) relation (affinity) matrix.
    """
    return torch.bmm(theta.transpose(1, 2), phi)


def stack_relations(relation: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
    """Lay out every node's relation vector ``r_i = [R(i, :), R(:, i)]`` as channels at node i.

    Args:
        relation: (B, n, n) relation matrix R.
        grid: (h, w) node grid with ``h * w == n`` (H x W for RGA-S, C x 1 for RGA-C).
    Returns:
        (B, 2n, h, w) map whose channel ``j`` at node i is ``R[i, j]`` (the i-th row) and channel
        ``n + j`` is ``R[j, i]`` (the i-th column), nodes in raster-scan order.
    """
    b, n, _ = relation.shape
    # As a (channel j, node i) table the row part is R^T and the column part is R itself.
    stacked = torch.cat((relation.transpose(1, 2), relation), dim=1)  # (B, 2n, n)
    return stacked.reshape(b, 2 * n, *grid)


class RelationAttentionMask(nn.Module):
    """The shared core of both branches: node features -> attention logits (Eqs. 1-3, pre-sigmoid).

    Input is laid out as a conv map (B, D, h, w): D features per node, nodes on an h x w grid
    (n = h*w nodes). The output is (B, 1, h, w) logits; apply a sigmoid to get the mask.

    Args:
        features: D, the feature size of a node (C for RGA-S, N for RGA-C).
        num_nodes: n (N for RGA-S, C for RGA-C).
        s1: embedding reduction ratio (theta/phi/psi: D -> D // s1; relation: 2n -> n // s1).
        s2: reduction ratio of ``W1`` (the hidden width of Eq. 3).
        embedding: ``"asymmetric"`` (theta != phi), ``"symmetric"`` (one shared embedding, so
            R is symmetric), ``"none"`` (relations from the raw features).
        use_relation: include the relation term ``varphi(r_i)`` in Eq. (2) (False = "w/o Rel.").
        use_original: include the unary term ``pool_c(psi(x_i))`` in Eq. (2) (False = "w/o Ori.").
    """

    def __init__(self, features: int, num_nodes: int, *, s1: int, s2: int,
                 embedding: Embedding, use_relation: bool, use_original: bool) -> None:
        super().__init__()
        self.use_relation, self.use_original, self.embedding = use_relation, use_original, embedding
        reduced_features = features // s1
        reduced_nodes = num_nodes // s1
        # theta/phi (Eq. 1) exist only when relations are used and embedded; "symmetric" keeps one
        # module so that the tie is structural (a single set of weights), not a copy.
        self.theta: nn.Module | None = None
        self.phi: nn.Module | None = None
        self.gg: nn.Module | None = None  # varphi in Eq. (2), the relation embedding
        self.gx: nn.Module | None = None  # psi in Eq. (2), the unary embedding
        width = 0  # channels of y_i (Eq. 2)
        if use_relation:
            if embedding != "none":
                self.theta = embedding_block(features, reduced_features)
                if embedding == "asymmetric":
                    self.phi = embedding_block(features, reduced_features)
            self.gg = embedding_block(2 * num_nodes, reduced_nodes)
            width += reduced_nodes
        if use_original:
            self.gx = embedding_block(features, reduced_features)
            width += 1  # pool_c reduces the unary embedding to 1 channel
        # Official: hidden = (1 + n // s1) // s2, i.e. (input width) // s2. Clamped to >= 1:
        # the 1-channel "w/o Rel." input (1 // 8 = 0) and tiny maps would not build otherwise.
        # For the full block and "w/o Ori." at the paper's four sizes the clamp never applies
        # (and n // s1 // s2 == (1 + n // s1) // s2 there, so "w/o Ori." keeps W1's width).
        hidden = max(1, width // s2)
        self.W = nn.Sequential(  # Eq. (3): W1 (+BN, ReLU), W2 (+BN); no biases (official code)
            nn.Conv2d(width, hidden, kernel_size=1, bias=False),
            nn.BatchNorm2d(hidden),
            nn.ReLU(inplace=True),
            nn.Conv2d(hidden, 1, kernel_size=1, bias=False),
            nn.BatchNorm2d(1),
        )

    def relations(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, D, h, w) -> (R: (B, n, n), stacked relations: (B, 2n, h, w))."""
        b, _, h, w = x.shape
        if self.theta is None:  # embedding="none": raw features
            theta = phi = x.reshape(b, -1, h * w)
        else:
            theta = self.theta(x).reshape(b, -1, h * w)  # (B, D/s1, n)
            phi = theta if self.phi is None else self.phi(x).reshape(b, -1, h * w)
        relation = relation_matrix(theta, phi)
        return relation, stack_relations(relation, (h, w))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        parts: list[torch.Tensor] = []
        if self.gx is not None:
            parts.append(self.gx(x).mean(dim=1, keepdim=True))  # pool_c: (B, 1, h, w)
        if self.gg is not None:
            parts.append(self.gg(self.relations(x)[1]))  # (B, n/s1, h, w)
        y = parts[0] if len(parts) == 1 else torch.cat(parts, dim=1)  # [unary, relation]
        return self.W(y)  # (B, 1, h, w) logits


class SpatialRGA(SizedModule):
    """RGA-S (Sec. 3.2): one attention value per position, shared by the C channels.

    Nodes are the N = H*W positions, each with its C-vector as feature; theta/phi/psi: C -> C/s1,
    relation embedding 2N -> N/s1. Keyword options as in :class:`RelationAttentionMask`.
    """

    def __init__(self, channels: int, height: int, width: int, **options) -> None:
        super().__init__(channels, height, width)
        self.core = RelationAttentionMask(channels, height * width, **options)

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) -> (B, 1, H, W) pre-sigmoid mask."""
        self.check_input(x)
        return self.core(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.sigmoid(self.logits(x))  # broadcast over channels


class ChannelRGA(SizedModule):
    """RGA-C (Sec. 3.3): one attention value per channel, shared by the N positions.

    Nodes are the C channels, each with its N = H*W spatial map as feature. Official layout: x is
    viewed as (B, N, C, 1) so that positions act as conv channels; theta/phi/psi: N -> N/s1,
    relation embedding 2C -> C/s1. Keyword options as in :class:`RelationAttentionMask`.
    """

    def __init__(self, channels: int, height: int, width: int, **options) -> None:
        super().__init__(channels, height, width)
        self.core = RelationAttentionMask(height * width, channels, **options)

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) -> (B, C, 1, 1) pre-sigmoid mask."""
        self.check_input(x)
        b, c, h, w = x.shape
        nodes = x.reshape(b, c, h * w).transpose(1, 2).unsqueeze(-1)  # (B, N, C, 1)
        return self.core(nodes).reshape(b, c, 1, 1)  # (B, 1, C, 1) -> (B, C, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.sigmoid(self.logits(x))  # broadcast over positions


class RGAModule(SizedModule):
    """An RGA attention block (one of the paper's schemes), (B, C, H, W) -> (B, C, H, W).

    ``mode``: ``"s"`` RGA-S; ``"c"`` RGA-C; ``"sc"`` RGA-C applied to the output of RGA-S (RGA-SC,
    the official model); ``"cs"`` the reverse (RGA-CS); ``"s_par_c"`` RGA-S//C, both branches
    computed from the same input and fused by ``fusion`` (see :func:`build_rga`).
    Submodules: ``spatial`` (:class:`SpatialRGA`) and/or ``channel`` (:class:`ChannelRGA`).
    """

    def __init__(self, channels: int, height: int, width: int, *, mode: Mode, fusion: Fusion,
                 **options) -> None:
        super().__init__(channels, height, width)
        self.mode, self.fusion = mode, fusion
        self.spatial: SpatialRGA | None = (
            SpatialRGA(channels, height, width, **options) if "s" in mode else None)
        self.channel: ChannelRGA | None = (
            ChannelRGA(channels, height, width, **options) if "c" in mode else None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.check_input(x)
        spatial, channel = self.spatial, self.channel
        if channel is None:  # "s"
            assert spatial is not None
            return spatial(x)
        if spatial is None:  # "c"
            return channel(x)
        if self.mode == "sc":
            return channel(spatial(x))
        if self.mode == "cs":
            return spatial(channel(x))
        # s_par_c: both masks from the same x.
        zs, zc = spatial.logits(x), channel.logits(x)  # (B, 1, H, W), (B, C, 1, 1)
        if self.fusion == "multiply":
            return x * torch.sigmoid(zs) * torch.sigmoid(zc)
        if self.fusion == "mean":
            return 0.5 * (x * torch.sigmoid(zs) + x * torch.sigmoid(zc))
        return x * torch.sigmoid(zs + zc)  # logit_sum: one joint (C, H, W) mask


def _check_positive(name: str, value: object) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ValueError(f"rga: {name} must be a positive integer, got {value!r}")


def _check_reduction(what: str, size: int, s1: int) -> None:
    if size // s1 < 1:
        raise ValueError(f"rga: {what} = {size} is smaller than s1 = {s1}; an embedding would "
                         f"have {size} // {s1} = 0 channels")


@register_attention("rga")
def build_rga(channels: int, height: int, width: int, *, mode: Mode = "sc",
              use_relation: bool = True, use_original: bool = True,
              embedding: Embedding = "asymmetric", s1: int = 8, s2: int = 8,
              fusion: Fusion | None = None) -> RGAModule:
    """Build an RGA block for (B, C, H, W) = (B, channels, height, width) inputs.

    The defaults are the official RGA-SC (paper Sec. 4.1: s1 = s2 = 8).

    Args:
        mode: ``"sc"`` (default; RGA-SC, spatial then channel), ``"s"`` (RGA-S), ``"c"``
            (RGA-C), ``"cs"`` (RGA-CS, channel then spatial), ``"s_par_c"`` (RGA-S//C, parallel).
            Table 1.
        use_relation: feed the relation term to W (Eq. 2). ``False`` = Table 1's "w/o Rel.": W
            sees only the channel-pooled unary embedding (1 channel), W's hidden width is
            clamped to 1.
        use_original: feed the unary ("original feature") term to W (Eq. 2). ``False`` =
            Table 1's "w/o Ori.": W sees only the embedded relations (n // s1 channels).
        embedding: Table 4. ``"asymmetric"`` (default; separate theta and phi), ``"symmetric"``
            (theta = phi, one set of weights), ``"none"`` ("w/o Embedding": R from the raw node
            features). The unary embedding psi is kept in all three (Table 4 varies Eq. 1 only).
            With a symmetric R the row and column halves of r_i coincide; both are still stacked
            so that the rest of the block is unchanged.
        s1: embedding reduction ratio (default 8; the official ``cha_ratio`` = ``spa_ratio``):
            theta/phi/psi map D -> D // s1 and the relation embedding 2n -> n // s1
            (D, n = C, N for RGA-S and N, C for RGA-C).
        s2: reduction of W1 in Eq. (3) (default 8; the official ``down_ratio``): hidden width
            ``max(1, (1 + n // s1) // s2)``.
        fusion: only for ``mode="s_par_c"`` (the paper says "parallel with a fusion" without
            defining it): ``"multiply"`` (default; ``x * a_s * a_c``, i.e. both masks applied to
            the same input), ``"mean"`` (``(x * a_s + x * a_c) / 2``), ``"logit_sum"``
            (``x * sigmoid(z_s + z_c)``, one joint mask as in BAM). Must be left unset for the
            other modes.

    Raises:
        ValueError: an invalid option value, both terms disabled, or a reduction that leaves
            0 channels (D // s1 or n // s1 == 0).
    """
    for name, value in (("channels", channels), ("height", height), ("width", width),
                        ("s1", s1), ("s2", s2)):
        _check_positive(name, value)
    if mode not in MODES:
        raise ValueError(f"rga: mode must be one of {', '.join(MODES)}; got {mode!r}")
    if embedding not in EMBEDDINGS:
        raise ValueError(
            f"rga: embedding must be one of {', '.join(EMBEDDINGS)}; got {embedding!r}")
    if not (use_relation or use_original):
        raise ValueError("rga: use_relation and use_original cannot both be False "
                         "(the attention would have no input)")
    if mode == "s_par_c":
        fusion = "multiply" if fusion is None else fusion
        if fusion not in FUSIONS:
            raise ValueError(f"rga: fusion must be one of {', '.join(FUSIONS)}; got {fusion!r}")
    elif fusion is not None:
        raise ValueError(f"rga: fusion applies only to mode='s_par_c', not mode={mode!r}")
    # Every embedding that is built must keep >= 1 channel. Per branch, (node feature size D,
    # node count n) is (C, N) for RGA-S and (N, C) for RGA-C.
    sizes = {"channels C": channels, "positions N = H*W": height * width}
    branches = {"s": ("channels C", "positions N = H*W"), "c": ("positions N = H*W", "channels C")}
    for key, (feature, node) in branches.items():
        if key not in mode:
            continue
        if use_original or (use_relation and embedding != "none"):  # psi, theta/phi: D -> D // s1
            _check_reduction(feature, sizes[feature], s1)
        if use_relation:  # relation embedding: 2n -> n // s1
            _check_reduction(node, sizes[node], s1)
    return RGAModule(channels, height, width, mode=mode, fusion=fusion or "multiply", s1=s1,
                     s2=s2, embedding=embedding, use_relation=use_relation,
                     use_original=use_original)


def _preset(mode: Mode) -> Callable[..., RGAModule]:
    """A registered builder equal to :func:`build_rga` with ``mode`` fixed."""

    def builder(channels: int, height: int, width: int, **options) -> RGAModule:
        if "mode" in options:
            raise TypeError(f"rga_{mode}: mode is fixed to {mode!r}; use 'rga' to choose it")
        return build_rga(channels, height, width, mode=mode, **options)

    builder.__name__ = f"build_rga_{mode}"
    builder.__doc__ = f"RGA with ``mode={mode!r}``; other options as in :func:`build_rga`."
    return builder


for _mode in MODES:
    register_attention(f"rga_{_mode}")(_preset(cast(Mode, _mode)))
