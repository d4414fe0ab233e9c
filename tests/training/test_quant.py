"""Nested quantizers: agreement with golden.ops.nested_shift, nested scales, STE gradients."""
import numpy as np
import pytest
import torch

from golden.formats import DQTValueError
from golden.ops import nested_shift
from training.quant import ActQuantizer, QuantConfig, WeightQuantizer, fake_nested, nested_codes

MODES = ["floor", "round"]


@pytest.mark.parametrize("n", [4, 8])
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("signed", [False, True])
def test_nested_codes_equal_golden_exhaustive(n, mode, signed):
    lo, hi = (-(1 << (n - 1)), (1 << (n - 1)) - 1) if signed else (0, (1 << n) - 1)
    q = np.arange(lo, hi + 1, dtype=np.int64)
    for bits in range(1, n + 1):
        want = nested_shift(q, n, bits, mode, signed)
        got_i = nested_codes(torch.from_numpy(q), n, bits, mode, signed).numpy()
        got_f = nested_codes(torch.from_numpy(q).float(), n, bits, mode, signed).numpy()
        np.testing.assert_array_equal(got_i, want, err_msg=f"int64 n={n} b={bits} {mode}")
        np.testing.assert_array_equal(got_f.astype(np.int64), want, err_msg=f"float n={n} b={bits}")


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("per_channel", [True, False])
def test_weight_scales_are_nested(mode, per_channel):
    cfg = QuantConfig(8, (2, 4, 6, 8), mode)
    torch.manual_seed(0)
    w = torch.randn(6, 3, 3, 3) * torch.linspace(0.1, 2.0, 6).reshape(-1, 1, 1, 1)
    wq = WeightQuantizer(cfg, per_channel)
    s8 = wq.scale(w)
    codes = wq.codes(w).to(torch.int64).numpy()
    for b in cfg.B:
        step = wq.scale_at(w, b)
        # Δ_b = Δ_n · 2^(n-b): the same origin, a power-of-two coarser step
        torch.testing.assert_close(step, s8 * 2.0 ** (8 - b), rtol=0, atol=0)
        fq = wq(w, b)
        want = torch.from_numpy(nested_shift(codes, 8, b, mode, signed=True)).float() \
            * step.reshape(-1, 1, 1, 1)
        torch.testing.assert_close(fq, want, rtol=1e-6, atol=0)
        # every fake weight is an integer multiple of its b-bit step
        r = (fq / step.reshape(-1, 1, 1, 1)).detach()
        torch.testing.assert_close(r, torch.round(r), rtol=0, atol=1e-4)


@pytest.mark.parametrize("mode", MODES)
def test_fake_nested_activations_match_golden(mode):
    s = 0.037
    q = np.arange(0, 256, dtype=np.int64)
    x = torch.from_numpy(q).double() * s
    for b in (2, 4, 6, 8):
        got = fake_nested(x, s, 8, b, mode, signed=False)
        want = nested_shift(q, 8, b, mode, signed=False) * float(1 << (8 - b)) * s
        np.testing.assert_allclose(got.numpy(), want, rtol=1e-12)


def test_weight_ste_gradient_is_identity():
    cfg = QuantConfig()
    w = torch.randn(4, 5, requires_grad=True)
    g = torch.randn(4, 5)
    (WeightQuantizer(cfg)(w, 4) * g).sum().backward()
    torch.testing.assert_close(w.grad, g)


def _aq(alpha):
    aq = ActQuantizer(QuantConfig()).double()
    with torch.no_grad():
        aq.alpha.fill_(alpha)
    return aq


def test_pact_alpha_gradient_matches_finite_differences():
    """d y / d alpha where the rounding does not jump: autograd == central differences."""
    alpha, eps = 3.0, 1e-7
    aq = _aq(alpha)
    s = alpha / 255
    # points well inside rounding cells (v = q + 0.25) and above the clip
    x = torch.tensor([0.25, 10.25, 100.25, 200.25, 254.25], dtype=torch.float64) * s
    x = torch.cat([x, torch.tensor([3.5, 7.0], dtype=torch.float64)])
    y = aq(x)
    grads = []
    for i in range(len(x)):
        aq.alpha.grad = None
        aq(x)[i].backward()
        grads.append(float(aq.alpha.grad))
    fd = (_aq(alpha + eps)(x) - _aq(alpha - eps)(x)) / (2 * eps)
    np.testing.assert_allclose(grads, fd.detach().numpy(), rtol=1e-6, atol=1e-9)
    assert y[-1].item() == pytest.approx(alpha)  # clipped to alpha exactly


def test_pact_input_gradient_is_ste_of_the_clip():
    """d y / d x is the straight-through gradient: the finite-difference slope of
    clamp(x, 0, alpha) (1 inside, 0 below 0 and above alpha)."""
    alpha, eps = 2.0, 1e-6
    aq = _aq(alpha)
    x = torch.tensor([-1.0, -0.1, 0.3, 1.0, 1.9, 2.5, 4.0], dtype=torch.float64, requires_grad=True)
    aq(x).sum().backward()
    xd = x.detach()
    fd = (torch.clamp(xd + eps, 0, alpha) - torch.clamp(xd - eps, 0, alpha)) / (2 * eps)
    np.testing.assert_allclose(x.grad.numpy(), fd.numpy(), atol=1e-6)
    # outside the range the quantized output is flat: finite differences of y itself are 0
    out = torch.tensor([0, 1, 5, 6])
    fy = (aq(xd + 1e-3) - aq(xd - 1e-3))[out]
    assert torch.all(fy == 0) and torch.all(x.grad[out] == 0)


def test_pact_output_codes_round_half_up():
    aq = _aq(255.0)  # step 1: codes equal the rounded input
    x = torch.tensor([0.5, 1.5, 2.49, 254.5, 300.0, -3.0], dtype=torch.float64)
    np.testing.assert_array_equal(aq(x).detach().numpy(), [1, 2, 2, 255, 255, 0])


def test_pact_ema_initialisation():
    aq = ActQuantizer(QuantConfig(), ema_decay=0.5)
    aq.observe(torch.full((100,), 2.0))
    aq.observe(torch.full((100,), 4.0))
    aq.init_from_ema()
    assert float(aq.alpha.detach()) == pytest.approx(3.0)


@pytest.mark.parametrize("kw, msg", [
    (dict(n=1), "n=1 is outside the allowed range [2, 16]"),
    (dict(n=17), "n=17 is outside the allowed range [2, 16]"),
    (dict(n=8, B=(2, 9)), "bit-width 9 in B=[2, 9] is outside the allowed range [1, n=8]"),
    (dict(n=8, B=(4, 4)), "duplicates"),
    (dict(n=8, B=()), "empty"),
    (dict(mode="ceil"), "nested mode 'ceil'"),
])
def test_quant_config_rejects_bad_values(kw, msg):
    with pytest.raises(DQTValueError, match=msg.replace("[", r"\[").replace("]", r"\]")):
        QuantConfig(**kw)


def test_bits_outside_B_are_rejected():
    cfg = QuantConfig(8, (2, 4, 8))
    with pytest.raises(DQTValueError, match=r"bits=6 is not in the candidate set B=\[2, 4, 8\]"):
        cfg.check_bits(6)
    with pytest.raises(DQTValueError, match="not in the candidate set"):
        WeightQuantizer(cfg).scale_at(torch.ones(2, 2), 3)
