"""The bar distribution, the masked transformer, checkpoints and a seconds-long training run."""

import numpy as np
import pytest
import torch

from foreseer.predictors.pfn.bar import BarDistribution, equal_mass_borders
from foreseer.predictors.pfn.checkpoint import load_checkpoint, save_checkpoint
from foreseer.predictors.pfn.model import CurvePFN, PFNConfig, attention_mask
from foreseer.predictors.pfn.train import TrainConfig, evaluate_prior, export_run, train

TINY = PFNConfig(n_layer=1, n_embd=16, n_head=2, n_hidden=32, n_buckets=50)


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture
def bar():
    borders = torch.from_numpy(equal_mass_borders(np.random.default_rng(0).uniform(0, 1, 5000), 20))
    return BarDistribution(borders)


def test_bar_density_integrates_to_one_and_matches_the_cdf(bar):
    logits = torch.randn(3, 20)
    y = torch.linspace(-1, 2, 30001)
    density = bar.log_prob(logits[:, None].expand(-1, y.numel(), -1), y.expand(3, -1)).exp()
    total = torch.trapezoid(density, y, dim=-1)
    assert torch.allclose(total, torch.ones(3), atol=2e-3)
    for x in (0.1, 0.5, 0.93):
        mask = y <= x
        integral = torch.trapezoid(density[:, mask], y[mask], dim=-1)
        assert torch.allclose(bar.cdf(logits, torch.tensor(x)), integral, atol=2e-3)


def test_bar_quantile_inverts_the_cdf_and_mean_is_inside(bar):
    logits = torch.randn(4, 20)
    q = torch.tensor([0.01, 0.05, 0.5, 0.95, 0.99])
    values = bar.quantile(logits, q)  # (4, 5)
    back = torch.stack([bar.cdf(logits, values[:, i]) for i in range(5)], dim=1)
    assert torch.allclose(back, q.expand(4, -1), atol=1e-4)
    mean = bar.mean(logits)
    assert ((mean > values[:, 0]) & (mean < values[:, -1])).all()


def test_queries_are_independent_and_padding_changes_nothing():
    torch.manual_seed(0)
    model = CurvePFN(TINY, torch.linspace(0, 1, 51)).eval()
    ctx_t, ctx_y = torch.arange(1, 6.0)[None], torch.rand(1, 5)
    q = torch.tensor([[10.0, 50.0, 100.0]])
    full = model(ctx_t, ctx_y, q)
    alone = model(ctx_t, ctx_y, q[:, 2:])
    assert torch.allclose(full[:, 2], alone[:, 0], atol=1e-5)
    padded = model(
        torch.cat([ctx_t, torch.zeros(1, 3)], 1),
        torch.cat([ctx_y, torch.ones(1, 3)], 1),
        q,
        torch.tensor([5]),
    )
    assert torch.allclose(full, padded, atol=1e-5)


def test_config_errors_say_what_to_fix():
    with pytest.raises(ValueError, match="multiple of n_head"):
        PFNConfig(n_embd=10, n_head=3)
    with pytest.raises(ValueError, match="n_buckets \\+ 1"):
        CurvePFN(TINY, torch.linspace(0, 1, 10))


def test_checkpoint_round_trip_is_safetensors_with_config(tmp_path):
    model = CurvePFN(TINY, torch.linspace(0, 1, 51))
    save_checkpoint(model, tmp_path / "m.safetensors", {"prior": "reference"})
    loaded, meta = load_checkpoint(tmp_path / "m.safetensors")
    assert loaded.config == TINY and meta == {"prior": "reference"}
    for k, v in model.state_dict().items():
        assert torch.equal(v, loaded.state_dict()[k])


def test_seconds_long_training_learns_and_resumes(tmp_path):
    torch.manual_seed(0)
    config = TrainConfig(
        curves=64 * 60, batch_size=64, n_targets=10, lr=3e-3, save_every=30, eval_every=10**9
    )
    model = train(tmp_path / "a", TINY, config)
    after = evaluate_prior(model, n_curves=300, cutoffs=(40,))
    untrained = evaluate_prior(CurvePFN(TINY, model.bar.borders), n_curves=300, cutoffs=(40,))
    assert after[40] > untrained[40] + 0.1
    # resuming a finished run changes nothing; an exported state loads like a checkpoint
    again = train(tmp_path / "a", TINY, config)
    assert all(torch.equal(v, again.state_dict()[k]) for k, v in model.state_dict().items())
    meta = export_run(tmp_path / "a", tmp_path / "x.safetensors")
    assert meta["curves_seen"] == 64 * 60
    with pytest.raises(ValueError, match="other settings"):
        train(tmp_path / "a", TINY, TrainConfig(curves=128, batch_size=64))


def test_last_block_computes_only_the_query_rows_and_matches_the_full_pass():
    torch.manual_seed(1)
    model = CurvePFN(
        PFNConfig(n_layer=2, n_embd=16, n_head=2, n_hidden=32, n_buckets=50), torch.linspace(0, 1, 51)
    )
    model.eval()
    ctx_t, ctx_y = torch.arange(1, 8.0).expand(3, -1), torch.rand(3, 7)
    q, ctx_len = torch.tensor([[20.0, 100.0]]).expand(3, -1), torch.tensor([7, 4, 1])
    with torch.no_grad():
        x = torch.cat([model.embed.context(ctx_t, ctx_y, None), model.embed.query(q)], dim=1)
        mask = attention_mask(ctx_len, 7, 2)
        for block in model.blocks:
            x = block(x, mask)  # every row, as before the shortcut
        full = model.head(model.ln_f(x[:, 7:]))
        assert model.blocks[-1](x, mask, start=7).shape == (3, 2, 16)
        torch.testing.assert_close(model(ctx_t, ctx_y, q, ctx_len), full, atol=1e-5, rtol=0)
