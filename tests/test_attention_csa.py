"""SA / SA-SDPA / CSA attention (reid_core.models.attention.sa, .csa) and the memory and timing
helpers (reid_core.utils.memory).

The central checks: CSA's forward (E = V B^T, then Y = E W) equals plain self-attention, Eq. (1),
applied with the explicitly reconstructed N x N map of Eq. (4); SA equals a per-group loop
written from Eq. (2); "sa" and "sa_sdpa" are the same function; and CSA never holds an N x N
tensor while SA does.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves

from reid_core.models.attention import available_attention, build_attention
from reid_core.models.attention.csa import CompressedSelfAttention
from reid_core.models.attention.sa import SelfAttention, SelfAttentionSDPA
from reid_core.utils.memory import peak_memory_bytes, time_calls

C, H, W = 16, 6, 4  # N = 24 positions
N = H * W
NAMES = ("sa", "sa_sdpa", "csa")


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    # Tiny tensors gain nothing from intra-op threads, and on a shared machine idle OpenMP
    # workers spinning for a busy core make these tests 10x slower.
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def make(name: str, channels: int = C, height: int = H, width: int = W, **options) -> nn.Module:
    torch.manual_seed(0)
    return build_attention(name, channels, height, width, **options)


def features(batch: int = 2, channels: int = C, height: int = H, width: int = W,
             dtype: torch.dtype = torch.float32) -> torch.Tensor:
    # Scaled up so that the softmaxes are far from uniform (a uniform map hides index mix-ups).
    torch.manual_seed(1)
    return 3 * torch.randn(batch, channels, height, width, dtype=dtype)


# ---------------------------------------------------------------------------------------------
# Registry, defaults, shapes, errors


def test_registered_names() -> None:
    assert set(NAMES) <= set(available_attention())


def test_csa_defaults_are_the_papers_reid_setting() -> None:
    m = make("csa", channels=64)
    assert isinstance(m, CompressedSelfAttention)
    assert (m.num_bases, m.groups, m.shared_map, m.weight_conv) == (32, 2, True, None)
    assert m.map_conv.out_channels == 2 * 32 and m.map_conv.groups == 2  # D per group
    assert isinstance(m.value, nn.Conv2d) and m.value.out_channels == 64
    assert isinstance(m.alpha, nn.Parameter) and m.alpha.item() == 0.0


def test_sa_defaults() -> None:
    m = make("sa", channels=64)
    assert isinstance(m, SelfAttention) and not isinstance(m, SelfAttentionSDPA)
    assert m.query.out_channels == m.key.out_channels == 64 // 8 and m.groups == 1
    assert m.value.out_channels == 64 and m.key.bias is None and m.query.bias is None
    assert isinstance(make("sa_sdpa"), SelfAttentionSDPA)


CSA_OPTIONS = [
    {},
    {"groups": 1, "num_bases": 5},
    {"groups": 4, "num_bases": 3},
    {"groups": 2, "num_bases": 3, "shared_map": False},
    {"groups": 2, "num_bases": 3, "value": "identity"},
    {"groups": 4, "num_bases": 3, "grouped_convs": False},
    {"groups": 2, "num_bases": 7, "bias": True, "shared_map": False, "grouped_convs": False},
    {"groups": 2, "num_bases": 3, "bias": True},
]
SA_OPTIONS = [{}, {"groups": 2}, {"reduction": 2, "groups": 4, "bias": True}]


@pytest.mark.parametrize("name", NAMES)
def test_shape_is_kept(name: str) -> None:
    assert make(name)(features()).shape == (2, C, H, W)


@pytest.mark.parametrize("name", NAMES)
def test_wrong_input_size_is_a_clear_error(name: str) -> None:
    m = make(name)
    with pytest.raises(ValueError, match=r"built for inputs of shape \(B, 16, 6, 4\)"):
        m(features(height=8))
    with pytest.raises(ValueError, match="built for"):
        m(features()[0])  # no batch dimension


@pytest.mark.parametrize("name", NAMES)
def test_default_alpha_zero_starts_as_identity(name: str) -> None:
    x = features()
    assert torch.equal(make(name)(x), x)


@pytest.mark.parametrize(("name", "options", "match"), [
    ("csa", {"groups": 3}, "must divide C"),
    ("csa", {"num_bases": 0}, "num_bases must be a positive integer"),
    ("csa", {"value": "linear"}, "value must be one of conv, identity"),
    ("csa", {"alpha_learnable": False}, "fixed alpha of 0"),
    ("sa", {"groups": 3}, "must divide both"),
    ("sa", {"reduction": 0}, "reduction must be a positive integer"),
    ("sa_sdpa", {"groups": 4, "reduction": 8}, "must divide both"),  # C' = 2
    ("sa", {"alpha_learnable": False, "alpha_init": 0.0}, "fixed alpha of 0"),
])
def test_invalid_options_are_value_errors(name: str, options: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        make(name, **options)


@pytest.mark.parametrize("name", NAMES)
def test_unknown_option_is_a_type_error(name: str) -> None:
    with pytest.raises(TypeError):
        make(name, heads=2)
    if name != "sa_sdpa":
        with pytest.raises(TypeError):
            make(name, match_head_dims=True)


@pytest.mark.parametrize("name", NAMES)
def test_fixed_alpha_is_a_buffer_under_the_same_key(name: str) -> None:
    fixed, learnt = make(name, alpha_init=0.5, alpha_learnable=False), make(name)
    assert "alpha" not in dict(fixed.named_parameters()) and fixed.alpha.item() == 0.5
    assert set(fixed.state_dict()) == set(learnt.state_dict())
    fixed.load_state_dict(learnt.state_dict())  # checkpoints load across the two settings
    assert fixed.alpha.item() == 0.0


# ---------------------------------------------------------------------------------------------
# Independent references: per-group loops written from the equations, float64


def conv_rows(conv: nn.Module, x: torch.Tensor, group: int, groups: int) -> torch.Tensor:
    """Group ``group``'s share of a 1x1 conv's output, (B, out/G, N), from x (B, C, N): the
    conv is either grouped by ``groups`` (rows see only their group's input channels) or full."""
    assert isinstance(conv, nn.Conv2d) and conv.groups in (1, groups)
    weight = conv.weight[:, :, 0, 0]
    rows = slice(group * conv.out_channels // groups, (group + 1) * conv.out_channels // groups)
    inputs = x
    if conv.groups == groups and groups > 1:
        width = conv.in_channels // groups
        inputs = x[:, group * width:(group + 1) * width]
    out = torch.einsum("oc,bcn->bon", weight[rows], inputs)
    return out if conv.bias is None else out + conv.bias[rows, None]


def csa_reference(m: CompressedSelfAttention, x: torch.Tensor) -> tuple[torch.Tensor, list]:
    """Build A = B^T W (the paper's Fig. 3 product, A[j, i] = f_a(I_i, I_j), Eq. (4)) and apply
    Eq. (1) as plain self-attention: Y = V A, output x + alpha Y."""
    g_count, xf = m.groups, x.flatten(2)
    width = x.shape[1] // g_count
    ys, maps = [], []
    for g in range(g_count):
        logits = conv_rows(m.map_conv, xf, g, g_count)  # M: (B, D, N)
        bases = torch.softmax(logits, dim=2)  # Eq. (3), over positions
        if m.weight_conv is not None:
            logits = conv_rows(m.weight_conv, xf, g, g_count)
        weights = torch.softmax(logits, dim=1)  # Eq. (4)'s w, over the D bases
        attention = bases.transpose(1, 2) @ weights  # (B, N_j, N_i)
        if isinstance(m.value, nn.Identity):
            v = xf[:, g * width:(g + 1) * width]
        else:
            v = conv_rows(m.value, xf, g, g_count)
        ys.append(v @ attention)  # Eq. (1): Y_i = sum_j f_a(I_i, I_j) V_j
        maps.append(attention)
    return x + m.alpha * torch.cat(ys, dim=1).view_as(x), maps


def sa_reference(m: SelfAttention, x: torch.Tensor) -> torch.Tensor:
    """Eqs. (1)-(2) group by group with explicit loops over the target positions."""
    xf, g_count = x.flatten(2), m.groups
    ys = []
    for g in range(g_count):
        q = conv_rows(m.query, xf, g, g_count)
        k = conv_rows(m.key, xf, g, g_count)
        v = conv_rows(m.value, xf, g, g_count)
        columns = []
        for i in range(xf.shape[2]):
            f = torch.softmax(torch.einsum("bc,bcj->bj", q[:, :, i], k), dim=1)  # Eq. (2)
            columns.append(torch.einsum("bj,bcj->bc", f, v))  # Eq. (1)
        ys.append(torch.stack(columns, dim=2))
    return x + m.alpha * torch.cat(ys, dim=1).view_as(x)


@pytest.mark.parametrize("options", CSA_OPTIONS, ids=lambda o: "-".join(map(str, o.values())) or
                         "default")
def test_csa_equals_self_attention_with_the_reconstructed_map(options: dict) -> None:
    m = make("csa", alpha_init=0.7, **options).double()
    with torch.no_grad():  # non-zero biases, so that a dropped bias would show
        for p in m.parameters():
            if p.dim() == 1:
                p.normal_()
    x = features(dtype=torch.float64)
    out = m(x)
    expected, maps = csa_reference(m, x)
    assert (out - x).abs().max() > 0.1  # the attention term is not negligible
    torch.testing.assert_close(out, expected, rtol=1e-10, atol=1e-10)
    full = m.attention_map(x)  # (B, G, N_i, N_j)
    assert full.shape == (2, m.groups, N, N)
    torch.testing.assert_close(full, torch.stack(maps, 1).transpose(-1, -2), rtol=0, atol=1e-12)
    torch.testing.assert_close(full.sum(-1), torch.ones(2, m.groups, N, dtype=torch.float64))


def test_csa_maps_are_normalised_along_the_papers_axes() -> None:
    m = make("csa", groups=2, num_bases=5)
    bases, weights = m.bases_and_weights(features())
    assert bases.shape == weights.shape == (2, 2, 5, N)
    torch.testing.assert_close(bases.sum(-1), torch.ones(2, 2, 5))  # over space
    torch.testing.assert_close(weights.sum(2), torch.ones(2, 2, N))  # over the bases


def test_csa_shared_map_ties_b_and_w_to_one_logit_tensor() -> None:
    m = make("csa", groups=1, num_bases=5)
    bases, weights = m.bases_and_weights(features())
    logits = m.map_conv(features()).flatten(2)[:, None]
    torch.testing.assert_close(bases, torch.softmax(logits, -1))
    torch.testing.assert_close(weights, torch.softmax(logits, 2))


@pytest.mark.parametrize("name", ("sa", "sa_sdpa"))
@pytest.mark.parametrize("options", SA_OPTIONS, ids=lambda o: "-".join(map(str, o.values())) or
                         "default")
def test_sa_equals_an_explicit_loop_over_targets(name: str, options: dict) -> None:
    m = make(name, alpha_init=0.7, **options).double()
    x = features(dtype=torch.float64)
    out = m(x)
    assert (out - x).abs().max() > 0.1
    torch.testing.assert_close(out, sa_reference(m, x), rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("options", [{}, {"groups": 2}, {"reduction": 2, "bias": True},
                                     {"match_head_dims": False}])
def test_sa_and_sa_sdpa_are_the_same_function_with_the_same_weights(options: dict) -> None:
    sdpa = make("sa_sdpa", alpha_init=0.5, **options)
    options.pop("match_head_dims", None)
    torch.manual_seed(5)  # different initial weights, then copied over
    plain = SelfAttention(C, H, W, alpha_init=-1.0, **options)
    assert set(plain.state_dict()) == set(sdpa.state_dict())
    plain.load_state_dict(sdpa.state_dict(), strict=True)
    x = features()
    assert (plain(x) - x).abs().max() > 0.1
    torch.testing.assert_close(sdpa(x), plain(x), rtol=1e-5, atol=1e-5)
    # Gradients in float64: in float32 the kernels' different summation orders differ by ~1e-4.
    plain, sdpa, x = plain.double(), sdpa.double(), x.double().requires_grad_()
    grad_plain = torch.autograd.grad(plain(x).square().sum(), [x, plain.query.weight])
    grad_sdpa = torch.autograd.grad(sdpa(x).square().sum(), [x, sdpa.query.weight])
    for a, b in zip(grad_sdpa, grad_plain):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-9)


def test_sa_attention_map_rows_are_distributions() -> None:
    a = make("sa", groups=2).attention_map(features())
    assert a.shape == (2, 2, N, N)
    torch.testing.assert_close(a.sum(-1), torch.ones(2, 2, N))


# ---------------------------------------------------------------------------------------------
# Gradients


@pytest.mark.parametrize(("name", "options"), [
    ("sa", {}), ("sa_sdpa", {"groups": 2}), ("csa", {}),
    ("csa", {"shared_map": False, "bias": True, "groups": 4, "num_bases": 3})])
def test_gradient_reaches_every_parameter_and_the_input(name: str, options: dict) -> None:
    m = make(name, alpha_init=0.5, **options)
    x = features().requires_grad_()
    m(x).square().mean().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    for pname, p in m.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), pname
        assert p.grad.abs().sum() > 0, f"{name}: no gradient reaches {pname}"


@pytest.mark.parametrize("name", NAMES)
def test_alpha_learns_from_zero(name: str) -> None:
    m = make(name)
    m(features()).square().mean().backward()
    assert m.alpha.grad is not None and m.alpha.grad.abs() > 0


# ---------------------------------------------------------------------------------------------
# CSA never holds an N x N tensor; SA does (the probe sees every ATen op's outputs)


class LargestOutput(TorchDispatchMode):
    """Records the largest tensor (in elements) that any dispatched op produces."""

    def __init__(self) -> None:
        super().__init__()
        self.numel, self.op = 0, ""

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in tree_leaves(out):
            if isinstance(t, torch.Tensor) and t.numel() > self.numel:
                self.numel, self.op = t.numel(), str(func)
        return out


PROBE = {"channels": 16, "height": 32, "width": 32}  # N = 1024, N^2 = 1M >> C N = 16K


def largest_tensor(name: str, backward: bool = False, **options) -> tuple[int, str]:
    m = make(name, alpha_init=0.5, **PROBE, **options)
    x = features(batch=1, channels=16, height=32, width=32).requires_grad_()
    with LargestOutput() as probe:
        out = m(x)
        if backward:
            out.sum().backward()
    return probe.numel, probe.op


@pytest.mark.parametrize("options", [{"groups": 2, "num_bases": 8},
                                     {"groups": 4, "num_bases": 4, "shared_map": False}])
def test_csa_forward_and_backward_stay_linear_in_n(options: dict) -> None:
    n = 32 * 32
    numel, op = largest_tensor("csa", backward=True, **options)
    bound = max(16, options["groups"] * options["num_bases"]) * n  # O(N (C + G D)), batch 1
    assert numel <= bound, f"csa produced a {numel}-element tensor in {op} (bound {bound})"


def test_the_probe_sees_sas_n_by_n_attention() -> None:
    numel, _ = largest_tensor("sa")
    assert numel >= (32 * 32) ** 2
    numel, _ = largest_tensor("sa_sdpa", match_head_dims=False)  # SDPA's unfused math path
    assert numel >= (32 * 32) ** 2


def test_sa_sdpa_with_padded_heads_uses_a_fused_kernel_without_n_by_n() -> None:
    numel, op = largest_tensor("sa_sdpa")
    assert numel < (32 * 32) ** 2, f"sa_sdpa materialised {numel} elements in {op}"


def test_peak_memory_grows_linearly_for_csa_and_quadratically_for_sa() -> None:
    def peak(name: str, side: int) -> int:
        m = make(name, channels=16, height=side, width=side, groups=2, alpha_init=0.5,
                 **({"num_bases": 8} if name == "csa" else {}))
        x = features(batch=2, channels=16, height=side, width=side)
        with torch.no_grad():
            return peak_memory_bytes(lambda: m(x))

    csa_ratio = peak("csa", 32) / peak("csa", 16)  # N x 4
    sa_ratio = peak("sa", 32) / peak("sa", 16)
    assert 3.0 < csa_ratio < 6.0, csa_ratio
    assert sa_ratio > 10.0, sa_ratio


# ---------------------------------------------------------------------------------------------
# reid_core.utils.memory


def test_peak_memory_of_a_known_tensor() -> None:
    def allocate() -> torch.Tensor:
        return torch.empty(25_000_000, dtype=torch.float32).fill_(1.0)  # 100 MB

    assert peak_memory_bytes(allocate, "cpu") == pytest.approx(100e6, rel=0.01)


def test_peak_memory_is_the_maximum_not_the_end_state() -> None:
    existing = torch.ones(1_000_000)  # allocated before: not counted, even when freed inside

    def churn() -> None:
        nonlocal existing
        del existing
        a = torch.empty(12_500_000)  # 50 MB
        b = torch.empty(12_500_000)  # +50 MB = 100 MB peak
        del a, b
        torch.empty(5_000_000)  # 20 MB, freed at once

    assert peak_memory_bytes(churn) == pytest.approx(100e6, rel=0.01)


def test_peak_memory_rejects_other_devices() -> None:
    with pytest.raises(ValueError, match="cpu or cuda"):
        peak_memory_bytes(lambda: None, "meta")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_peak_memory_cuda() -> None:
    def allocate() -> torch.Tensor:
        return torch.empty(25_000_000, device="cuda")

    assert peak_memory_bytes(allocate, "cuda") == pytest.approx(100e6, rel=0.01)


def test_time_calls_returns_every_repeat_after_warmup() -> None:
    calls = []
    times = time_calls(lambda: calls.append(1), warmup=2, repeats=3)
    assert len(calls) == 5 and len(times) == 3 and all(t >= 0 for t in times)
    with pytest.raises(ValueError, match="repeats >= 1"):
        time_calls(lambda: None, repeats=0)
