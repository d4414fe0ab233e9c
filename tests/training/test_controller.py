"""Controller: output shapes, hard one-hot gates, straight-through gradients, temperature."""
import pytest
import torch

from golden.formats import DQTValueError
from training.controller import Controller, TauSchedule
from training.models import digits_cnn
from training.quant import QuantConfig


@pytest.mark.parametrize("B", [(2, 4, 6, 8), (3, 8), (8,)])
def test_logits_and_gate_shapes(B):
    cfg = QuantConfig(8, B)
    c = Controller(cfg, in_features=16, n_controlled=3)
    feat = torch.rand(7, 16) * 5
    z = c.logits(feat, torch.tensor(5 / 255))
    assert z.shape == (7, 3, len(B))
    assert c.fc2.weight.shape[0] == 3 * len(B)
    for sample in (True, False):
        g = c.gates(z, tau=0.7, sample=sample)
        assert g.shape == (7, 3, len(B))
        assert torch.all((g == 0) | (g == 1))
        assert torch.all(g.sum(-1) == 1)


def test_argmax_gates_pick_the_largest_logit():
    c = Controller(QuantConfig(), 4, 2)
    z = torch.tensor([[[0.1, 0.9, 0.3, -1.0], [2.0, 2.0, 1.0, 0.0]]])
    g = c.gates(z, sample=False)
    assert g[0, 0].argmax().item() == 1
    assert g[0, 1].argmax().item() == 0  # tie: the first index, as numpy.argmax in golden


def test_hard_gumbel_gates_pass_gradients_to_every_logit():
    torch.manual_seed(0)
    c = Controller(QuantConfig(), 4, 2)
    z = torch.randn(5, 2, 4, requires_grad=True)
    g = c.gates(z, tau=1.0, sample=True)
    (g * torch.randn(5, 2, 4)).sum().backward()
    assert torch.all(z.grad.abs().sum(-1) > 0)


def test_gumbel_samples_follow_the_logits():
    torch.manual_seed(1)
    c = Controller(QuantConfig(), 4, 1)
    z = torch.tensor([[[0.0, 3.0, 0.0, 0.0]]]).expand(4000, 1, 4)
    freq = c.gates(z, tau=1.0, sample=True).mean(0)[0]
    want = torch.softmax(z[0, 0], -1)
    torch.testing.assert_close(freq, want, atol=0.03, rtol=0)


def test_dynamic_model_uses_one_width_per_input_and_layer():
    torch.manual_seed(0)
    m = digits_cnn(QuantConfig(), width=4)
    x = torch.rand(6, 1, 8, 8) * 16
    m.train()
    y, info = m(x, "dynamic", tau=1.0)
    assert y.shape == (6, 10)
    assert info["gates"].shape == (6, 3, 4)
    # a hard gate selects exactly the static output of that width
    m.eval()
    y, info = m(x, "dynamic")
    B = torch.tensor(m.cfg.B)
    chosen = B[info["gates"].argmax(-1)]
    for i in range(6):
        bits = {q: int(b) for q, b in zip(m.controlled, chosen[i])}
        yi, _ = m(x[i:i + 1], bits)
        torch.testing.assert_close(y[i:i + 1], yi)


def test_expected_cost_is_differentiable():
    m = digits_cnn(QuantConfig(), width=4)
    m.train()
    _, info = m(torch.rand(3, 1, 8, 8) * 16, "dynamic")
    info["exp_bits"].backward()
    assert m.controller.fc2.bias.grad.abs().sum() > 0
    assert 2 <= float(info["exp_bits"].detach()) <= 8 and 0 < float(info["exp_bitops"].detach()) <= 1


def test_tau_schedule():
    t = TauSchedule(2.0, 0.5, "exp")
    assert t(0) == pytest.approx(2.0) and t(1) == pytest.approx(0.5)
    assert t(0.5) == pytest.approx(1.0)
    assert TauSchedule(2.0, 0.5, "linear")(0.5) == pytest.approx(1.25)
    with pytest.raises(DQTValueError, match="tau start=0"):
        TauSchedule(0, 1)
    with pytest.raises(DQTValueError, match="schedule kind 'cosine'"):
        TauSchedule(1, 1, "cosine")


def test_bad_controller_config():
    with pytest.raises(DQTValueError, match="n_controlled=0"):
        Controller(QuantConfig(), 4, 0)
    with pytest.raises(DQTValueError, match="bits=5 is not in the candidate set"):
        digits_cnn(QuantConfig(), width=4)(torch.zeros(1, 1, 8, 8), 5)
    with pytest.raises(DQTValueError, match="needs a model with a controller"):
        digits_cnn(QuantConfig(), width=4, controller=False)(torch.zeros(1, 1, 8, 8), "dynamic")


@pytest.mark.parametrize("balance", [0.0, 0.3])
def test_ctrl_loss_balance_term_is_the_usage_entropy(balance):
    """J_ctrl = mean_i [E_p CE_i + lam E_p BitOPs_i] - balance * mean_c H2(mean_i p_ic),
    recomputed here in numpy from the same probabilities."""
    from types import SimpleNamespace

    import numpy as np

    from training.train import Recipe, _ctrl_loss
    B = (2, 4, 6, 8)
    g = torch.Generator().manual_seed(1)
    p = torch.softmax(torch.randn(5, 3, 4, generator=g), -1)
    ce = {b: torch.rand(5, generator=g) for b in B}
    bitops = torch.rand(5, generator=g)
    r = Recipe(dataset="digits-graded", lam=0.7, balance=balance)
    got = float(_ctrl_loss(SimpleNamespace(cfg=SimpleNamespace(B=B)), r,
                           {"probs": p, "exp_bitops_per_input": bitops}, ce))
    P, C = p.numpy().astype(np.float64), np.stack([ce[b].numpy() for b in B], -1)
    task = (P * C[:, None, :]).sum(-1).mean(-1)
    usage = P.mean(0)
    h = -(usage * np.log2(usage)).sum(-1).mean()
    want = (task + 0.7 * bitops.numpy()).mean() - balance * h
    assert got == pytest.approx(want, rel=1e-5)
    assert balance == 0 or h > 0.5   # the term is not vanishingly small here
