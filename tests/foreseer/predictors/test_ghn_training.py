"""Meta-training, checkpoints, fingerprints, scoring and warm starts on a small real pair (mlp x wine)."""

import shutil

import pytest
import torch

from foreseer.predictors.ghn.cache import load_ghn, save_ghn, space_fingerprint
from foreseer.predictors.ghn.meta_train import MetaTrainConfig, meta_train, sample_candidates
from foreseer.predictors.ghn.model import GHNConfig
from foreseer.predictors.ghn.predictor import GHNPredictor
from foreseer_spaces import Task, get_space
from foreseer_workers import TrialConfig, load_dataset, run_trial

SMALL = GHNConfig(hidden=16, decoder_hidden=32, block=16, max_dim=64, vector_len=64)


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def wine_ghn():
    torch.set_num_threads(1)
    data = load_dataset("wine")
    config = MetaTrainConfig(
        max_steps=40, max_seconds=60, train_archs=12, val_archs=6, eval_every=10, patience=10
    )
    return data, meta_train(get_space("mlp"), data, config, SMALL)


def test_meta_training_beats_random_init_on_held_out_architectures(wine_ghn):
    data, result = wine_ghn
    assert result.steps == 40 and result.stopped == "max_steps"
    assert [h["step"] for h in result.history] == [10, 20, 30, 40]
    # three balanced classes: random weights score about 1/3
    assert result.best_val_accuracy > 0.55
    assert result.best_val_accuracy == max(h["val_accuracy"] for h in result.history)


def test_predictor_scores_unseen_candidates_and_is_fast(wine_ghn):
    data, result = wine_ghn
    space = get_space("mlp")
    unseen = sample_candidates(space, data.task, 8, seed=99)
    predictor = GHNPredictor(result.ghn, space, data.task)
    scores = predictor.score(unseen, data.x_val, data.y_val)
    assert len(scores) == 8 and all(0 <= s <= 1 for s in scores)
    assert sum(scores) / len(scores) > 0.6


def test_warm_start_weights_load_into_a_trial_that_starts_ahead(wine_ghn):
    data, result = wine_ghn
    space = get_space("mlp")
    candidate = sample_candidates(space, data.task, 1, seed=7)[0]
    predictor = GHNPredictor(result.ghn, space, data.task)
    init = predictor.warm_start(candidate, data.x_train, noise=0.05)
    params = dict(space.build(candidate, data.task).named_parameters())
    assert set(params) <= set(init)
    history = []

    def report(metrics, path):
        history.append(metrics["val_accuracy"])
        shutil.rmtree(path, ignore_errors=True)

    config = TrialConfig(space, candidate, max_epochs=2, lr_warmup_epochs=1.0)
    assert run_trial(config, data, report, init_weights=init).status == "completed"
    assert history[0] > 0.6


def test_checkpoint_round_trip_predicts_the_same_weights(wine_ghn, tmp_path):
    data, result = wine_ghn
    space = get_space("mlp")
    candidate = sample_candidates(space, data.task, 1, seed=3)[0]
    save_ghn(tmp_path / "ghn.safetensors", result.ghn, {"summary": result.summary()})
    loaded, metadata = load_ghn(tmp_path / "ghn.safetensors")
    assert loaded.config == SMALL and metadata["summary"]["steps"] == 40
    a = GHNPredictor(result.ghn, space, data.task).predict(candidate).weights
    b = GHNPredictor(loaded, space, data.task).predict(candidate).weights
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_loading_something_else_says_what_it_is(tmp_path):
    from safetensors.torch import save_file

    save_file({"x": torch.zeros(1)}, tmp_path / "other.safetensors")
    with pytest.raises(ValueError, match="is not a foreseer-ghn-v1 checkpoint"):
        load_ghn(tmp_path / "other.safetensors")
    with pytest.raises(ValueError, match="does not exist"):
        load_ghn(tmp_path / "missing.safetensors")


def test_space_fingerprint_is_stable_and_tells_spaces_and_tasks_apart():
    mlp, task = get_space("mlp"), Task((13,), 3)
    assert space_fingerprint(mlp, task) == space_fingerprint(mlp, task)
    assert space_fingerprint(mlp, task) != space_fingerprint(mlp, Task((30,), 2))


def test_meta_train_config_errors_state_the_value():
    with pytest.raises(ValueError, match="MetaTrainConfig.meta_batch must be a positive number, but got 0"):
        MetaTrainConfig(meta_batch=0)
