"""The in-context PFN: tokens that carry their configuration, job batches, a seconds-long training
run on the prior over jobs."""

import numpy as np
import pytest
import torch

from foreseer.predictors.pfn.checkpoint import load_checkpoint
from foreseer.predictors.pfn.evaluate import LCBENCH_FEATURES, lcbench_features
from foreseer.predictors.pfn.in_context import JobForecaster
from foreseer.predictors.pfn.job_prior import FEATURES
from foreseer.predictors.pfn.job_train import evaluate_jobs, job_batch
from foreseer.predictors.pfn.model import CurvePFN, PFNConfig
from foreseer.predictors.pfn.predictor import CurveForecaster
from foreseer.predictors.pfn.prior import HORIZON
from foreseer.predictors.pfn.train import TrainConfig, train

TINY_JOBS = PFNConfig(
    n_layer=2, n_embd=32, n_head=2, n_hidden=64, n_buckets=50, features=FEATURES, trial_code=4
)

pytestmark = pytest.mark.usefixtures("one_thread")


def test_a_batch_is_observations_of_each_job_and_later_queries_of_its_configurations():
    batch = job_batch(np.random.default_rng(0), batch_size=6, n_targets=12, max_tokens=200)
    assert batch.ctx_t.shape[0] == 6 and batch.qry_t.shape == (6, 12)
    assert batch.qry_x.shape == (6, 12, FEATURES)
    coded = job_batch(np.random.default_rng(0), batch_size=2, n_targets=5, max_tokens=50, trial_code=3)
    assert coded.ctx_x.shape[2] == coded.qry_x.shape[2] == FEATURES + 3
    assert int(batch.ctx_len.max()) <= 200 and batch.ctx_t.shape[1] == max(1, int(batch.ctx_len.max()))
    for b in range(6):
        n = int(batch.ctx_len[b])
        seen = {}  # configuration -> epochs observed
        for t, x in zip(batch.ctx_t[b, :n].tolist(), batch.ctx_x[b, :n], strict=True):
            seen.setdefault(tuple(x.tolist()), []).append(int(t))
        assert all(sorted(e) == list(range(1, len(e) + 1)) for e in seen.values()), "prefixes 1..k"
        for t, x in zip(batch.qry_t[b].tolist(), batch.qry_x[b], strict=True):
            assert len(seen.get(tuple(x.tolist()), [])) < t <= HORIZON, "a query lies past what was seen"


def test_a_token_is_told_its_configuration_and_the_model_refuses_to_go_without():
    torch.manual_seed(0)
    model = CurvePFN(TINY_JOBS, torch.linspace(0, 1, 51)).eval()
    t, y = torch.arange(1, 5.0)[None], torch.rand(1, 4)
    width = FEATURES + TINY_JOBS.trial_code  # features, then the trial's code
    x = torch.rand(1, 4, width)
    q, qx = torch.tensor([[50.0, 50.0]]), torch.stack([x[:, 0], torch.rand(1, width)], dim=1)
    with torch.no_grad():
        out = model(t, y, q, None, None, x, qx)
        assert not torch.allclose(out[:, 0], out[:, 1]), "same epoch, another configuration"
        empty = model(torch.zeros(1, 1), torch.zeros(1, 1), q, torch.tensor([0]), None, x[:, :1], qx)
        assert torch.isfinite(empty).all(), "a job with nothing observed yet still has a forecast"
    with pytest.raises(ValueError, match="configurations of its tokens"):
        model(t, y, q)


def test_seconds_long_training_on_jobs_learns_and_writes_an_in_context_checkpoint(tmp_path):
    torch.manual_seed(0)
    config = TrainConfig(
        prior="jobs", curves=16 * 120, batch_size=16, n_targets=32, max_tokens=120, lr=3e-3,
        save_every=60, eval_every=10**9,
    )  # fmt: skip
    model = train(tmp_path / "jobs", TINY_JOBS, config)
    untrained = CurvePFN(TINY_JOBS, model.bar.borders)
    after = evaluate_jobs(model, n_jobs=30, configs=6, cutoffs=(10, 40))["in-context"]
    before = evaluate_jobs(untrained, n_jobs=30, configs=6, cutoffs=(10, 40))["in-context"]
    assert all(after[c] > before[c] + 0.1 for c in (10, 40)), (before, after)
    loaded, meta = load_checkpoint(tmp_path / "jobs" / "model.safetensors")
    assert loaded.config.features == FEATURES and meta["prior"] == "jobs"
    with pytest.raises(ValueError, match="load it with JobForecaster.load"):
        CurveForecaster.load(tmp_path / "jobs" / "model.safetensors")


def test_the_prior_and_the_model_must_agree():
    curves_model = PFNConfig(n_layer=1, n_embd=16, n_head=2, n_hidden=32, n_buckets=50)
    with pytest.raises(ValueError, match="in-context model"):
        train(None, curves_model, TrainConfig(prior="jobs", curves=16, batch_size=16))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="in-context model"):
        train(None, TINY_JOBS, TrainConfig(prior="extended", curves=16, batch_size=16))  # type: ignore[arg-type]


def test_the_job_forecaster_asks_about_any_configuration_from_one_context_of_every_trial():
    torch.manual_seed(0)
    f = JobForecaster(CurvePFN(TINY_JOBS, torch.linspace(0, 1, 51)), max_context=10)
    rng = np.random.default_rng(0)
    trials = [(rng.uniform(size=7), np.sort(rng.uniform(size=k))) for k in (6, 3, 1)]
    asked = [trials[0][0], rng.uniform(size=7)]  # a trial that ran, a configuration never tried
    fc = f.forecast(trials, asked, max_epochs=20, query_epochs=[[10, 20], [10, 20]])
    assert fc.logits.shape == (2, 2, 50) and fc.epochs.tolist() == [[10, 20], [10, 20]]
    assert [len(e) for e in f._thinned([6, 3, 1])] == [6, 3, 1]
    kept = f._thinned([30, 10, 1])
    assert sum(map(len, kept)) <= 12 and all(e.max() == k - 1 for e, k in zip(kept, (30, 10, 1), strict=True))
    nothing_yet = f.forecast([], asked, max_epochs=20, query_epochs=[[20], [20]])
    assert torch.isfinite(nothing_yet.logits).all()
    with pytest.raises(ValueError, match="more than the model's 16 features"):
        f.forecast(trials, [np.zeros(17)], max_epochs=20, query_epochs=[[20]])
    with pytest.raises(ValueError, match="in-context model"):
        JobForecaster(CurvePFN(PFNConfig(n_layer=1, n_embd=16, n_head=2, n_hidden=32, n_buckets=50),
                               torch.linspace(0, 1, 51)))  # fmt: skip


def test_lcbench_configurations_become_features_in_the_unit_cube():
    names = list(LCBENCH_FEATURES)
    lo = np.array([[v[0] for v in LCBENCH_FEATURES.values()]])
    hi = np.array([[v[1] for v in LCBENCH_FEATURES.values()]])
    assert lcbench_features(lo, names).tolist() == [[0.0] * 7]
    np.testing.assert_allclose(lcbench_features(hi, names), 1.0)
    mid = lcbench_features(np.sqrt(lo * hi).clip(1e-12), names)[0]
    assert mid[names.index("learning_rate")] == pytest.approx(0.5), "log-scaled where drawn on a log scale"


def test_pfn_eval_reports_an_in_context_checkpoint_beside_the_per_curve_model(tmp_path):
    from click.testing import CliRunner

    from foreseer.cli import main

    config = TrainConfig(prior="jobs", curves=64, batch_size=16, n_targets=8, max_tokens=50, eval_every=10**9)
    train(tmp_path / "run", TINY_JOBS, config)
    lcbench = tmp_path / "lcbench.npz"
    rng = np.random.default_rng(0)
    configs = np.stack([rng.uniform(v[0], v[1], (2, 20)) for v in LCBENCH_FEATURES.values()], axis=-1)
    accuracy = 100 * np.sort(rng.uniform(0.3, 0.9, (2, 20, 12)), axis=-1)
    names = np.array(list(LCBENCH_FEATURES))
    np.savez(lcbench, val_accuracy=accuracy, configs=configs, hp_names=names, task_names=np.array(["a", "b"]))
    out = tmp_path / "tables.md"
    args = ["pfn", "eval", "--checkpoint", str(tmp_path / "run" / "model.safetensors"), "--curves", "100",
            "--lcbench", str(lcbench), "--markdown", str(out)]  # fmt: skip
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    text = out.read_text()
    assert "fresh prior jobs" in text and "LCBench's curves (2 tasks" in text and "ms per tick" in text
    assert text.count("\n| in-context |") == 2 and text.count("\n| per-curve |") == 2, "two likelihood tables"
    assert "90% interval" in text and text.count("| lcbench | in-context |") == 1


def test_pfn_eval_forecasts_the_real_curve_sets_it_is_given(tmp_path):
    from click.testing import CliRunner

    from foreseer.cli import main

    recorded = tmp_path / "recorded.npz"
    curves = np.sort(np.random.default_rng(1).uniform(0.2, 0.9, (30, 10)), axis=1)
    np.savez(recorded, **{"mlp-wine/val_accuracy": curves})
    args = ["pfn", "eval", "--curves", "50", "--recorded", str(recorded)]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert "foreseer: final-value forecast error" in result.output and "lcbench" not in result.output
    assert "90% interval" in result.output


def test_an_in_context_model_warm_starts_from_a_binned_per_curve_checkpoint(tmp_path):
    from foreseer.predictors.pfn.checkpoint import save_checkpoint
    from foreseer.predictors.pfn.train import _warm_start

    binned = PFNConfig(n_layer=2, n_embd=32, n_head=2, n_hidden=64, n_buckets=50, context_bins=4)
    per_curve = CurvePFN(binned, torch.linspace(0, 1, 51))
    save_checkpoint(per_curve, tmp_path / "per_curve.safetensors")
    model = CurvePFN(TINY_JOBS, torch.linspace(0, 1, 51))
    _warm_start(model, {k: v.clone() for k, v in per_curve.state_dict().items()})
    assert not model.embed.x.weight.any(), "it starts as the per-curve model"
    assert torch.equal(model.blocks[0].attn.qkv.weight, per_curve.blocks[0].attn.qkv.weight)
    config = TrainConfig(prior="jobs", curves=32, batch_size=16, n_targets=8, max_tokens=50,
                         init_from=str(tmp_path / "per_curve.safetensors"))  # fmt: skip
    trained = train(tmp_path / "warm", TINY_JOBS, config)
    assert trained.embed.x.weight.abs().sum() > 0, "and learns to read configurations"


def test_a_trial_keeps_its_code_and_a_new_configuration_gets_its_own():
    torch.manual_seed(0)
    f = JobForecaster(CurvePFN(TINY_JOBS, torch.linspace(0, 1, 51)))
    seen = []
    original = f.model.forward

    def spy(*args):
        seen.append((args[5], args[6]))  # ctx_x, qry_x
        return original(*args)

    f.model.forward = spy
    a, b = np.full(7, 0.3), np.full(7, 0.3000001)  # nearly equal configurations: the code tells them apart
    f.forecast([(a, [0.2, 0.4]), (b, [0.1])], [a, b, np.zeros(7)], 20, [[20], [20], [20]])
    ctx_x, qry_x = seen[0]
    code = slice(FEATURES, None)
    assert torch.equal(qry_x[0, 0, code], ctx_x[0, 0, code]), "a's query has a's code"
    assert torch.equal(qry_x[0, 1, code], ctx_x[0, 2, code]), "b's query has b's code"
    assert not torch.equal(ctx_x[0, 0, code], ctx_x[0, 2, code]), "two trials, two codes"
    assert not any(torch.equal(qry_x[0, 2, code], ctx_x[0, i, code]) for i in range(3)), "a new one, its own"
