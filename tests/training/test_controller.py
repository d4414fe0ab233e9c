"""Controller: output shapes, hard one-hot gates, straight-through gradients, temperature."""
import numpy as np
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


def _labels_numpy(ce, cost, static, C, lam):
    u = ce[:, None, :] / C + lam * cost[None]                      # [N, C, len(B)]
    lab = u.argmin(-1)
    spent = cost[np.arange(cost.shape[0])[None, :], lab].sum(-1).mean() + static
    return lab, spent


@pytest.mark.parametrize("budget", [0.05, 0.2, 0.35, 0.6, 1.0])
def test_budget_labels_are_the_cheapest_multiplier_within_budget(budget):
    """The labels are argmin_b ce_i(b)/C + lam cost_c(b) at the smallest lam of the grid whose
    labels keep the batch's mean cost within the budget (recomputed in numpy, float64)."""
    from training.train import _LAM_GRID, budget_labels
    g = np.random.default_rng(3)
    N, C, B = 40, 3, (2, 4, 6, 8)
    ce = np.sort(g.exponential(1.0, (N, len(B))), axis=1)[:, ::-1].copy()  # falls with b
    macs = np.array([0.45, 0.45, 0.02])
    cost = macs[:, None] * (np.array(B) / 8.0)[None, :] ** 2
    static = 0.03
    lab, lam = budget_labels(torch.from_numpy(ce), torch.from_numpy(cost), static, C, budget)
    grid = _LAM_GRID.numpy()
    ok = [k for k, l in enumerate(grid) if _labels_numpy(ce, cost, static, C, l)[1] <= budget + 1e-12]
    k = ok[0] if ok else len(grid) - 1
    assert float(lam) == pytest.approx(grid[k])
    want, spent = _labels_numpy(ce, cost, static, C, grid[k])
    np.testing.assert_array_equal(lab.numpy(), want)
    if ok:
        assert spent <= budget + 1e-12
        if k > 0:  # one step less of the multiplier would overspend
            assert _labels_numpy(ce, cost, static, C, grid[k - 1])[1] > budget
    # inputs whose loss gains more from bits keep more: rank by the 2 -> 8 loss gap
    gap = ce[:, 0] - ce[:, -1]
    bits = np.array(B)[want].sum(-1)
    assert bits.min() == bits.max() or np.corrcoef(gap, bits)[0, 1] > 0


def test_budget_loss_is_the_label_cross_entropy():
    from types import SimpleNamespace

    import torch.nn.functional as F

    from training.train import Recipe, _budget_loss, budget_labels
    B = (2, 4, 6, 8)
    model = SimpleNamespace(cfg=SimpleNamespace(B=B, n=8), macs={"a": 10, "b": 100, "c": 100, "d": 5},
                            qlayers=["a", "b", "c", "d"], controlled=["b", "c", "d"],
                            static_bits={"a": 8, "b": 8, "c": 8, "d": 8})
    g = torch.Generator().manual_seed(2)
    logits = torch.randn(6, 3, 4, generator=g, requires_grad=True)
    ce = {b: torch.rand(6, generator=g) * (10 - b) for b in B}
    r = Recipe(dataset="digits-graded", ctrl_loss="budget", budget=0.4)
    j, lam = _budget_loss(model, r, {"logits": logits}, ce)
    tot = 215 * 64
    cost = torch.tensor([[m * b * b / tot for b in B] for m in (100, 100, 5)])
    lab, lam2 = budget_labels(torch.stack([ce[b] for b in B], -1), cost, 10 * 64 / tot, 3, 0.4)
    assert float(lam) == pytest.approx(float(lam2))
    assert float(j.detach()) == pytest.approx(float(F.cross_entropy(logits.detach().reshape(-1, 4), lab.reshape(-1))))
    j.backward()
    assert logits.grad.abs().sum() > 0


@pytest.mark.parametrize("kw, msg", [
    (dict(ctrl_loss="budget"), "ctrl_loss 'budget' needs a budget"),
    (dict(ctrl_loss="expected", budget=0.3), "budget=0.3 is used by ctrl_loss 'budget' only"),
    (dict(ctrl_loss="budget", budget=1.5), "budget=1.5 is outside the allowed range (0, 1]"),
    (dict(ctrl_loss="budget", budget=0), "budget=0 is outside the allowed range (0, 1]"),
])
def test_recipe_rejects_bad_budgets(kw, msg):
    from golden.formats import DQTValueError
    from training.train import Recipe
    with pytest.raises(DQTValueError) as e:
        Recipe(dataset="digits-graded", **kw)
    assert msg in str(e.value)
