"""``foreseer ghn train`` and ``foreseer ghn eval`` on a small pair, and the MLflow cache they fill."""

from click.testing import CliRunner

from foreseer.cli import main
from foreseer.predictors.ghn.cache import cache_key, load_ghn, space_fingerprint
from foreseer.predictors.ghn.model import GHNConfig
from foreseer.tracking import find_cached_file
from foreseer_spaces import get_space
from foreseer_workers import load_dataset


def test_train_then_eval_then_find_it_in_the_cache(tmp_path):
    out, uri = tmp_path / "ghn.safetensors", f"sqlite:///{tmp_path}/mlflow.db"
    runner = CliRunner()
    result = runner.invoke(main, ["ghn", "train", "--space", "mlp", "--dataset", "wine", "--out", str(out),
                                  "--max-steps", "6", "--tracking-uri", uri])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "6 steps" in result.output and f"cached in {uri}" in result.output
    _, metadata = load_ghn(out)
    data = load_dataset("wine")
    assert metadata["space_fingerprint"] == space_fingerprint(get_space("mlp"), data.task)

    result = runner.invoke(
        main, ["ghn", "eval", str(out), "--space", "mlp", "--dataset", "wine", "--candidates", "4"]
    )
    assert result.exit_code == 0, result.output
    assert "4 unseen candidates" in result.output

    key = cache_key(get_space("mlp"), data.task, data.fingerprint, GHNConfig())
    assert metadata["ghn_config"] == key["foreseer.ghn_config"]
    found = find_cached_file(uri, key, "ghn.safetensors", tmp_path / "download")
    assert found is not None and found.read_bytes() == out.read_bytes()
    assert (
        find_cached_file(uri, {**key, "foreseer.data_fingerprint": "other"}, "ghn.safetensors", tmp_path)
        is None
    )
    other_sizes = cache_key(get_space("mlp"), data.task, data.fingerprint, GHNConfig(block=32))
    assert (
        find_cached_file(uri, other_sizes, "ghn.safetensors", tmp_path) is None
    )  # new defaults meta-train afresh


def test_bad_pairs_and_checkpoints_are_one_readable_line(tmp_path):
    runner = CliRunner()
    result = runner.invoke(main, ["ghn", "train", "--space", "cells", "--dataset", "wine"])
    assert result.exit_code == 2 and "needs image inputs" in result.output
    bogus = tmp_path / "x.safetensors"
    bogus.write_bytes(b"not a checkpoint")
    result = runner.invoke(main, ["ghn", "eval", str(bogus), "--space", "mlp", "--dataset", "wine"])
    assert result.exit_code == 2 and "is not a safetensors file" in result.output
