"""The RGA Table 2 comparators: CBAM-S/C/CS, SE, NL, SNL, FC-S/C/S//C.

Every module is built at a tiny size (C, H, W) = (32, 8, 4), N = 32 positions, so the whole file
runs in well under a second on a CPU.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from reid_core.models.attention import available_attention, build_attention

C, H, W = 32, 8, 4
N = H * W
NAMES = ["cbam_s", "cbam_c", "cbam_cs", "se", "nl", "snl", "fc_s", "fc_c", "fc_s_par_c"]
SPATIAL_GATES = ["cbam_s", "fc_s"]  # one mask value per position, shared by the channels
CHANNEL_GATES = ["cbam_c", "se", "fc_c"]  # one mask value per channel, shared by the positions


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


def _x(batch: int = 2, c: int = C, h: int = H, w: int = W) -> torch.Tensor:
    return torch.randn(batch, c, h, w)


def _n_params(m: nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


def test_all_comparators_registered() -> None:
    assert set(NAMES) <= set(available_attention())


@pytest.mark.parametrize("name", NAMES)
def test_output_shape_equals_input_shape(name: str) -> None:
    m = build_attention(name, C, H, W)
    assert m(_x()).shape == (2, C, H, W)
    m.eval()
    assert m(_x(batch=1)).shape == (1, C, H, W)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("shape", [(2, C, H + 2, W), (2, C, H, W + 1), (2, C // 2, H, W),
                                   (C, H, W)])
def test_wrong_input_size_fails_naming_the_built_size(name: str, shape: tuple[int, ...]) -> None:
    m = build_attention(name, C, H, W)
    with pytest.raises(ValueError, match=rf"built for inputs of shape \(B, {C}, {H}, {W}\)"):
        m(torch.randn(*shape))


@pytest.mark.parametrize("name", NAMES)
def test_gradients_reach_every_parameter(name: str) -> None:
    m = build_attention(name, C, H, W)
    # NL (zero BN) and SNL (zero W_v) start as the identity, which blocks the gradient to the
    # layers before their zeroed output layer; move those off zero to test the wiring.
    with torch.no_grad():
        for p in m.parameters():
            if not p.any():
                p.normal_(0.0, 0.5)
    x = _x().requires_grad_()
    (m(x) * torch.randn(2, C, H, W)).sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    for pname, p in m.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, f"{name}: no gradient to {pname}"


@pytest.mark.parametrize("name", ["nl", "snl"])
def test_identity_blocks_can_leave_the_identity(name: str) -> None:
    """At init only the zeroed output layer gets a gradient -- and it does get one."""
    m = build_attention(name, C, H, W)
    (m(_x()) * torch.randn(2, C, H, W)).sum().backward()
    last = m.bn if name == "nl" else m.transform
    assert last.weight.grad is not None and last.weight.grad.abs().sum() > 0


@pytest.mark.parametrize("name", SPATIAL_GATES)
def test_spatial_mask_in_unit_interval_one_value_per_position(name: str) -> None:
    m = build_attention(name, C, H, W)
    x = _x()
    mask = m.mask(x)
    assert mask.shape == (2, 1, H, W)  # broadcast over channels
    assert (mask > 0).all() and (mask < 1).all()
    torch.testing.assert_close(m(x), x * mask)


@pytest.mark.parametrize("name", CHANNEL_GATES)
def test_channel_mask_in_unit_interval_one_value_per_channel(name: str) -> None:
    m = build_attention(name, C, H, W)
    x = _x()
    mask = m.mask(x)
    assert mask.shape == (2, C, 1, 1)  # broadcast over positions
    assert (mask > 0).all() and (mask < 1).all()
    torch.testing.assert_close(m(x), x * mask)


def test_cbam_cs_applies_channel_before_spatial() -> None:
    m = build_attention("cbam_cs", C, H, W)
    calls: list[tuple[str, torch.Tensor, torch.Tensor]] = []
    for label in ("channel", "spatial"):
        getattr(m, label).register_forward_hook(
            lambda _mod, inp, out, label=label: calls.append((label, inp[0], out)))
    x = _x()
    out = m(x)
    assert [c[0] for c in calls] == ["channel", "spatial"]
    (_, ch_in, ch_out), (_, sp_in, sp_out) = calls
    assert ch_in is x
    torch.testing.assert_close(ch_out, x * m.channel.mask(x))
    torch.testing.assert_close(sp_in, ch_out)  # spatial mask computed on the refined map F'
    torch.testing.assert_close(out, ch_out * m.spatial.mask(ch_out))
    swapped = m.channel(m.spatial(x))
    assert not torch.allclose(out, swapped)  # the order is not a no-op


def test_fc_s_par_c_multiplies_two_masks_from_the_same_input() -> None:
    m = build_attention("fc_s_par_c", C, H, W)
    x = _x()
    ms, mc = m.spatial.mask(x), m.channel.mask(x)
    assert ms.shape == (2, 1, H, W) and mc.shape == (2, C, 1, 1)
    torch.testing.assert_close(m(x), x * ms * mc)


def test_fc_s_is_global_and_tied_to_the_size() -> None:
    m = build_attention("fc_s", C, H, W).eval()
    x = _x(batch=1)
    y = x.clone()
    y[..., 0, 0] += 5.0  # change one corner position
    changed = (m.mask(x) - m.mask(y)).abs()[0, 0]
    assert changed[-1, -1] > 0  # the opposite corner's gate sees it (an N x N FC, not a conv)
    assert m.fc.weight.shape == (N, N)
    bigger = build_attention("fc_s", C, 2 * H, 2 * W)
    assert bigger.fc.weight.shape == (4 * N, 4 * N)


def test_nl_starts_as_identity_and_affinity_rows_sum_to_one() -> None:
    m = build_attention("nl", C, H, W)
    x = _x()
    torch.testing.assert_close(m(x), x)  # zero-initialised BN after W_z, training mode
    m.eval()
    torch.testing.assert_close(m(x), x)
    a = m.affinity(x)
    assert a.shape == (2, N, N)
    torch.testing.assert_close(a.sum(dim=-1), torch.ones(2, N))


def test_nl_subsample_pools_the_sources() -> None:
    m = build_attention("nl", C, H, W, subsample=True)
    x = _x()
    assert m.affinity(x).shape == (2, N, (H // 2) * (W // 2))
    assert m(x).shape == x.shape


def test_snl_weights_sum_to_one_and_context_is_the_same_at_every_position() -> None:
    m = build_attention("snl", C, H, W)
    x = _x()
    torch.testing.assert_close(m(x), x)  # zero_init: identity at start
    alpha = m.attention_weights(x)
    assert alpha.shape == (2, 1, N) and (alpha > 0).all()
    torch.testing.assert_close(alpha.sum(dim=-1), torch.ones(2, 1))

    m = build_attention("snl", C, H, W, zero_init=False)
    delta = m(x) - x  # W_v sum_j alpha_j x_j, broadcast to all positions
    torch.testing.assert_close(delta, delta[:, :, :1, :1].expand_as(delta))
    context = (x.flatten(2) * m.attention_weights(x)).sum(-1)  # (B, C)
    torch.testing.assert_close(delta[:, :, 0, 0], m.transform(context[:, :, None, None])[:, :, 0, 0])


# Parameter counts at (C, H, W) = (32, 8, 4), N = 32, computed by hand:
EXPECTED_PARAMS = {
    # 7x7 conv over 2 maps -> 1 map: 2*7*7 weights + 1 bias
    "cbam_s": 2 * 49 + 1,  # 99
    # shared MLP 32 -> 32//16 = 2 -> 32, with biases: 32*2 + 2 + 2*32 + 32
    "cbam_c": 32 * 2 + 2 + 2 * 32 + 32,  # 162
    "cbam_cs": 162 + 99,  # 261
    # SE, same bottleneck as CBAM-C: 32*2 + 2 + 2*32 + 32
    "se": 32 * 2 + 2 + 2 * 32 + 32,  # 162
    # theta 32->16 (+16 bias), phi 32->16 (no bias), g 32->16 (+16 bias),
    # W_z 16->32 (no bias), BN(32) weight + bias
    "nl": (32 * 16 + 16) + 32 * 16 + (32 * 16 + 16) + 16 * 32 + 2 * 32,  # 2144
    # W_k 32->1 (no bias), W_v 32->32 (+32 bias)
    "snl": 32 * 1 + (32 * 32 + 32),  # 1088
    # embed 32->32//8 = 4 (no bias) + BN(4); FC N->N = 32->32 with bias
    "fc_s": 32 * 4 + 2 * 4 + (32 * 32 + 32),  # 1192
    # embed 32->4 (no bias) + BN(4); FC 4->32 with bias
    "fc_c": 32 * 4 + 2 * 4 + (4 * 32 + 32),  # 296
    "fc_s_par_c": 1192 + 296,  # 1488: two branches, separate embeddings
}


@pytest.mark.parametrize("name", NAMES)
def test_parameter_counts(name: str) -> None:
    assert _n_params(build_attention(name, C, H, W)) == EXPECTED_PARAMS[name]


def test_parameter_counts_with_options() -> None:
    # SE at C = 64, r = 16: 64*4 + 4 + 4*64 + 64 = 580
    assert _n_params(build_attention("se", 64, H, W)) == 64 * 4 + 4 + 4 * 64 + 64
    # CBAM-S with a 3x3 kernel: 2*9 + 1
    assert _n_params(build_attention("cbam_s", C, H, W, kernel_size=3)) == 2 * 9 + 1
    # FC-S with a hidden layer N // 4 = 8: embed 136 + (32*8 + 8) + (8*32 + 32)
    assert _n_params(build_attention("fc_s", C, H, W, hidden_reduction=4)) == \
        136 + (32 * 8 + 8) + (8 * 32 + 32)
    # NL at reduction 4 (inner 8): theta 264 + phi 256 + g 264 + W_z 256 + BN 64
    assert _n_params(build_attention("nl", C, H, W, reduction=4)) == 264 + 256 + 264 + 256 + 64
    # FC-S at a bigger map: the N x N FC grows with N^2 (N = 128): 136 + 128*128 + 128
    assert _n_params(build_attention("fc_s", C, 16, 8)) == 136 + 128 * 128 + 128


@pytest.mark.parametrize("name, options", [
    ("se", {"reduction": 0}), ("cbam_c", {"reduction": 1.5}), ("cbam_s", {"kernel_size": 4}),
    ("nl", {"reduction": -1}), ("fc_s", {"embed_reduction": 0}),
    ("fc_c", {"hidden_reduction": 0}),
])
def test_bad_option_values_fail(name: str, options: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        build_attention(name, C, H, W, **options)


def test_nl_subsample_needs_a_poolable_map() -> None:
    with pytest.raises(ValueError, match="subsample"):
        build_attention("nl", C, H, 1, subsample=True)


@pytest.mark.parametrize("name", NAMES)
def test_unknown_option_is_a_type_error(name: str) -> None:
    with pytest.raises(TypeError):
        build_attention(name, C, H, W, not_an_option=1)
