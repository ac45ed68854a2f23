"""The in-context PFN: tokens that carry their configuration, job batches, a seconds-long training
run on the prior over jobs."""

import json

import numpy as np
import optuna
import pytest
import torch

from foreseer.predictors.pfn.checkpoint import load_checkpoint
from foreseer.predictors.pfn.context import JobContext
from foreseer.predictors.pfn.evaluate import LCBENCH_FEATURES, lcbench_features
from foreseer.predictors.pfn.in_context import JobForecaster
from foreseer.predictors.pfn.job_prior import FEATURES
from foreseer.predictors.pfn.job_train import evaluate_jobs, job_batch
from foreseer.predictors.pfn.model import CurvePFN, PFNConfig
from foreseer.predictors.pfn.predictor import CurveForecaster
from foreseer.predictors.pfn.prior import HORIZON
from foreseer.predictors.pfn.train import TrainConfig, train
from foreseer_spaces import Task, get_space

TINY_JOBS = PFNConfig(
    n_layer=2, n_embd=32, n_head=2, n_hidden=64, n_buckets=50, context_bins=4, features=FEATURES, job_layers=1
)

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.mark.parametrize("independent", [0.0, 1.0])
def test_a_batch_is_every_observed_trial_and_later_queries_of_its_configurations(independent):
    rng = np.random.default_rng(0)
    batch = job_batch(rng, batch_size=6, n_targets=12, max_tokens=200, bins=4, independent=independent)
    B, C, F = batch.context.x.shape
    tokens = batch.context.tokens
    assert (B, F) == (6, FEATURES) and batch.qry_t.shape == batch.qry_trial.shape == (6, 12)
    assert tokens.t.shape == (B * C, 4) and int(tokens.length.max()) <= 4, "each trial binned as at inference"
    valid = torch.arange(4) < tokens.length[:, None]
    observed = (tokens.stats[..., 1].exp() * valid).sum(-1).round().reshape(B, C)  # epochs behind each trial
    assert int(observed.sum(1).max()) <= 200
    for b in range(B):
        for q in range(12):
            slot = int(batch.qry_trial[b, q])
            if slot < 0:
                assert not any(torch.equal(batch.qry_x[b, q], batch.context.x[b, c]) for c in range(C))
                continue
            assert torch.equal(batch.qry_x[b, q], batch.context.x[b, slot]), (
                "a query is its trial's configuration"
            )
            assert observed[b, slot] < batch.qry_t[b, q] <= HORIZON, "and lies past what was seen"


def tiny(config=TINY_JOBS, seed=0):
    torch.manual_seed(seed)
    return CurvePFN(config, torch.linspace(0, 1, 51)).eval()


def _job(*curves, features=None):
    """A JobContext of one job with ``curves`` and a query of each trial's epoch 50."""
    rng = np.random.default_rng(0)
    x = features if features is not None else rng.uniform(size=(len(curves), FEATURES))
    trials = [(x[i], np.arange(1.0, len(c) + 1), np.asarray(c)) for i, c in enumerate(curves)]
    context = JobContext.of([trials], FEATURES, TINY_JOBS.context_bins)
    qry_x = torch.from_numpy(x[None].astype(np.float32))
    return context, torch.full((1, len(curves)), 50.0), qry_x, torch.arange(len(curves))[None]


def test_warm_started_from_a_per_curve_model_it_begins_as_exactly_that_model(tmp_path):
    from foreseer.predictors.pfn.checkpoint import save_checkpoint
    from foreseer.predictors.pfn.context import bin_context
    from foreseer.predictors.pfn.train import _warm_start

    per_curve = tiny(PFNConfig(n_layer=2, n_embd=32, n_head=2, n_hidden=64, n_buckets=50, context_bins=4))
    model = tiny()
    _warm_start(model, {k: v.clone() for k, v in per_curve.state_dict().items()})
    curves = [np.linspace(0.1, 0.5, 7), np.array([0.3, 0.2]), np.linspace(0.2, 0.9, 12)]
    with torch.no_grad():
        together = model.forecast_jobs(*_job(*curves))  # (1, 3, K)
        alone = per_curve.predict(bin_context([np.arange(1.0, len(c) + 1) for c in curves], curves, 4),
                                  torch.full((3, 1), 50.0))  # fmt: skip
    torch.testing.assert_close(together[0], alone[:, 0], rtol=1e-5, atol=1e-5)
    save_checkpoint(per_curve, tmp_path / "per_curve.safetensors")
    config = TrainConfig(prior="jobs", curves=32, batch_size=16, n_targets=8, max_tokens=50,
                         init_from=str(tmp_path / "per_curve.safetensors"))  # fmt: skip
    trained = train(tmp_path / "warm", TINY_JOBS, config)
    assert trained.embed.x.weight.abs().sum() > 0, "it learns to read configurations"
    assert trained.job_blocks[0].attn.proj.weight.abs().sum() > 0, "and other trials"


def test_a_query_reads_other_trials_only_through_the_job_blocks():
    model = tiny()
    for p in [model.embed.x.weight, *model.job_blocks.parameters()]:
        torch.nn.init.normal_(p, std=0.3)  # a trained model's, not the identity it starts as
    local = tiny(PFNConfig(**{**TINY_JOBS.to_dict(), "job_layers": 0}))
    local.load_state_dict({k: v for k, v in model.state_dict().items() if not k.startswith("job_blocks")})
    a, b = np.linspace(0.1, 0.5, 7), np.linspace(0.2, 0.3, 5)
    with torch.no_grad():
        for m, reads_b in ((model, True), (local, False)):
            before = m.forecast_jobs(*_job(a, b))[0, 0]
            after = m.forecast_jobs(*_job(a, b[::-1] + 0.4))[0, 0]
            assert torch.allclose(before, after) != reads_b, "trial a's forecast hears trial b's curve"


def test_a_token_is_told_its_configuration_and_the_models_refuse_the_other_call():
    model = tiny()
    torch.nn.init.normal_(model.embed.x.weight)
    context, t, x, _ = _job(np.linspace(0.1, 0.5, 7))
    unseen = torch.tensor([[-1, -1]])
    with torch.no_grad():
        out = model.forecast_jobs(
            context, t.expand(1, 2), torch.cat([x, torch.rand(1, 1, FEATURES)], 1), unseen
        )
        assert not torch.allclose(out[:, 0], out[:, 1]), "same epoch, another configuration"
        empty = JobContext.of([[]], FEATURES, 4)
        assert torch.isfinite(model.forecast_jobs(empty, t, x, torch.tensor([[-1]]))).all(), (
            "nothing seen yet"
        )
    with pytest.raises(ValueError, match="call forecast_jobs"):
        model(torch.arange(1, 5.0)[None], torch.rand(1, 4), t)
    with pytest.raises(ValueError, match="call predict"):
        tiny(PFNConfig(n_layer=1, n_embd=16, n_head=2, n_hidden=32, n_buckets=50)).forecast_jobs(
            context, t, x, unseen
        )


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


def test_the_job_forecaster_asks_about_any_trial_or_configuration_from_one_context_of_every_trial():
    f = JobForecaster(tiny())
    rng = np.random.default_rng(0)
    trials = [(rng.uniform(size=7), np.sort(rng.uniform(size=k))) for k in (6, 3, 1)]
    fc = f.forecast(trials, [0, rng.uniform(size=7)], max_epochs=20, query_epochs=[[10, 20], [10, 20]])
    assert fc.logits.shape == (2, 2, 50) and fc.epochs.tolist() == [[10, 20], [10, 20]]
    nothing_yet = f.forecast([], [np.zeros(3), np.ones(3)], max_epochs=20, query_epochs=[[20], [20]])
    assert torch.isfinite(nothing_yet.logits).all()
    with pytest.raises(ValueError, match="more than the model's 16 features"):
        f.forecast(trials, [np.zeros(17)], max_epochs=20, query_epochs=[[20]])
    with pytest.raises(ValueError, match="not one of the 3 observed trials"):
        f.forecast(trials, [3], max_epochs=20, query_epochs=[[20]])
    with pytest.raises(ValueError, match="at least one value"):
        f.forecast([(np.zeros(3), [])], [0], max_epochs=20, query_epochs=[[20]])
    with pytest.raises(ValueError, match="in-context model"):
        JobForecaster(tiny(PFNConfig(n_layer=1, n_embd=16, n_head=2, n_hidden=32, n_buckets=50)))


def test_two_trials_of_equal_configurations_keep_their_own_curves():
    from safetensors.torch import load_file

    from foreseer.predictors.pfn.predictor import SHIPPED_CHECKPOINT
    from foreseer.predictors.pfn.train import _warm_start

    shipped, _ = load_checkpoint(SHIPPED_CHECKPOINT)
    model = CurvePFN(
        PFNConfig(**{**shipped.config.to_dict(), "features": FEATURES, "job_layers": 1}), shipped.bar.borders
    )
    _warm_start(model, load_file(str(SHIPPED_CHECKPOINT)))  # the shipped per-curve model, trial by trial
    f = JobForecaster(model)
    x = np.full(7, 0.3)
    rising, falling = np.linspace(0.1, 0.8, 8), np.linspace(0.8, 0.1, 8)
    fc = f.forecast([(x, rising), (x, falling)], [0, 1], max_epochs=20, query_epochs=[[12], [12]])
    assert fc.quantiles([0.5])[0, 0, 0] > fc.quantiles([0.5])[1, 0, 0] + 0.1, "each trial is its own curve"


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
    recorded = tmp_path / "recorded.npz"  # as benchmarks/record_curves.py writes it
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    candidates = [get_space("mlp").sample(study.ask(), Task((13,), 3)).to_json() for _ in range(18)]
    setting = json.dumps({"space": "mlp", "dataset": "wine", "params": {}})
    curves = np.sort(rng.uniform(0.3, 0.9, (18, 10)), axis=-1)
    np.savez(recorded, **{"mlp-wine/val_accuracy": curves, "mlp-wine/candidates": np.array(candidates),
                          "mlp-wine/setting": np.array(setting)})  # fmt: skip
    out = tmp_path / "tables.md"
    args = ["pfn", "eval", "--checkpoint", str(tmp_path / "run" / "model.safetensors"), "--curves", "100",
            "--lcbench", str(lcbench), "--recorded", str(recorded), "--markdown", str(out)]  # fmt: skip
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    text = out.read_text()
    assert "fresh prior jobs" in text and "LCBench's curves (2 tasks" in text and "ms per tick" in text
    assert "Foreseer's recorded curves (1 groups, 18 curves" in text
    assert text.count("\n| in-context |") == 3 and text.count("\n| per-curve |") == 3, (
        "three likelihood tables"
    )
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


def test_pfn_train_refuses_a_device_it_cannot_use(tmp_path):
    from click.testing import CliRunner

    from foreseer.cli import main

    for device, says in (("tpu:0", "is not a torch device"), ("cuda", "no CUDA device")):
        if device == "cuda" and torch.cuda.is_available():
            continue
        args = ["pfn", "train", "--out", str(tmp_path / "run"), "--curves", "16", "--device", device]
        result = CliRunner().invoke(main, args)
        assert result.exit_code == 2 and says in result.output, result.output
    assert not (tmp_path / "run").exists()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_training_on_a_gpu_writes_a_checkpoint_the_cpu_loads(tmp_path):
    config = TrainConfig(prior="jobs", curves=64, batch_size=16, n_targets=8, max_tokens=50, save_every=2)
    model = train(tmp_path / "run", TINY_JOBS, config, device="cuda")
    assert next(model.parameters()).device.type == "cpu"
    loaded, _ = load_checkpoint(tmp_path / "run" / "model.safetensors")
    assert torch.equal(loaded.embed.x.weight, model.embed.x.weight)


def test_the_shipped_in_context_checkpoint_is_small_documented_and_loads():
    from foreseer.predictors.pfn.checkpoint import read_metadata
    from foreseer.predictors.pfn.header import SHIPPED

    path = SHIPPED["in_context"]
    assert path.stat().st_size < 10 * 2**20
    config, meta = read_metadata(path)
    assert config.features == FEATURES and config.job_layers > 0 and meta["prior"] == "jobs"
    f = JobForecaster.load()
    assert f.model.config == config
    card = (path.parent / "MODEL_CARD.md").read_text()
    assert path.name in card and "--prior jobs" in card
