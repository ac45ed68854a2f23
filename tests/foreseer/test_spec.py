"""Job spec validation: every kind of bad value is rejected with a message naming the field."""

import textwrap

import optuna
import pytest

import foreseer as fs
from foreseer.spec import load_job


def make(**fields):
    fields.setdefault("name", "job")
    return fs.SearchJob(**fields)


def test_defaults_and_the_issue_example_validate():
    job = fs.SearchJob(
        name="digits-cells",
        space="cells",
        dataset="digits",
        objective=fs.Objective("val_accuracy", mode="max"),
        sampler="tpe",
        trials=32,
        max_epochs=20,
        stopping="asha",
        resources=fs.Resources(cpus=1, gpus=0.25),
        max_concurrent=2,
    )
    assert job.stopping.name == "asha" and job.stopping.reduction_factor == 3
    assert job.resources.gpus == 0.25
    assert job.primary.metric == "val_accuracy"
    assert job.to_dict()["dataset"] == {"name": "digits", "val_fraction": 0.2, "test_fraction": 0.2}, (
        "no seed of its own: the split takes the job's"
    )


@pytest.mark.parametrize(
    "fields, field, words",
    [
        ({"name": "has space"}, "name", "letters (any script), digits"),
        ({"trials": 0}, "trials", "greater than or equal to 1"),
        ({"max_epochs": -1}, "max_epochs", "greater than or equal to 1"),
        ({"max_concurrent": 0}, "max_concurrent", "greater than or equal to 1"),
        ({"space": "celss"}, "space", "did you mean 'cells'"),
        ({"space": {"name": "mlp", "params": {"lr": {"low": 1, "high": 0.1}}}}, "space", "lr"),
        ({"dataset": "digitz"}, "dataset", "did you mean 'digits'"),
        ({"dataset": {"name": "wine", "val_fraction": 1.5}}, "dataset", "val_fraction"),
        ({"dataset": {"name": "wine", "path": "x.csv"}}, "dataset", "exactly one"),
        ({"sampler": "tpee"}, "sampler", "did you mean 'tpe'"),
        ({"sampler": 3}, "sampler", "BaseSampler"),
        ({"stopping": "ashaa"}, "stopping", "did you mean 'asha'"),
        (
            {"stopping": {"name": "asha", "reduction_factor": 1}},
            "stopping.reduction_factor",
            "greater than 1",
        ),
        (
            {"objective": {"metric": "val_acc", "mode": "max"}},
            "objective.metric",
            "did you mean 'val_accuracy'",
        ),
        ({"objective": {"metric": "val_loss", "mode": "down"}}, "objective.mode", "'max' or 'min'"),
        ({"resources": {"cpus": 0}}, "resources.cpus", "greater than 0"),
        ({"resources": {"gpus": 1.5}}, "resources.gpus", "fraction of one GPU"),
        ({"tracking_uri": "not a url"}, "tracking_uri", "SQLAlchemy URL"),
        ({"time_budget_s": 0}, "time_budget_s", "greater than 0"),
        ({"trails": 4}, "trails", "did you mean 'trials'"),
        (
            {
                "objective": [
                    {"metric": "val_accuracy", "mode": "max"},
                    {"metric": "num_params", "mode": "min"},
                ],
                "stopping": "asha",
            },
            "job",
            "single objective",
        ),
    ],
)
def test_each_bad_value_is_reported_with_its_field(fields, field, words):
    with pytest.raises(fs.SpecError) as info:
        make(**fields)
    fields_named = [p.field for p in info.value.problems]
    assert field in fields_named, str(info.value)
    assert words.lower() in str(info.value).lower()


def test_defaults_are_validated_like_given_values():
    job = fs.SearchJob(name="defaults")
    assert job.dataset_spec().name == "digits" and job.space_name == "mlp"
    assert job.to_dict()["dataset"]["name"] == "digits"


def test_every_problem_is_reported_at_once():
    with pytest.raises(fs.SpecError) as info:
        make(trials=0, max_epochs=0, sampler="nope", space="nope")
    assert {p.field for p in info.value.problems} == {"trials", "max_epochs", "sampler", "space"}
    assert "4 problems" in str(info.value)


def test_a_sampler_instance_and_array_data_are_accepted():
    import numpy as np

    x, y = np.random.default_rng(0).normal(size=(60, 4)), np.arange(60) % 2
    job = make(sampler=optuna.samplers.RandomSampler(seed=1), dataset=(x, y))
    assert job.to_dict()["dataset"] == {"arrays": [[60, 4], [60]]}
    assert job.to_dict()["sampler"] == "RandomSampler"


def test_yaml_job_with_dotted_overrides(tmp_path):
    path = tmp_path / "job.yaml"
    path.write_text(
        textwrap.dedent("""
        name: wine-mlp
        space: {name: mlp, params: {depth: 2}}
        dataset: wine
        trials: 4
        stopping: asha
    """)
    )
    job = load_job(path, {"trials": 6, "stopping.grace_period": 2})
    assert job.trials == 6 and job.stopping.name == "asha" and job.stopping.grace_period == 2
    assert job.space_overrides() == {"depth": 2}


@pytest.mark.parametrize(
    "text, words",
    [
        ("name: [unclosed", "not valid YAML"),
        ("- just\n- a list", "must hold a mapping"),
        ("name: x\ntrials: many", "trials"),
    ],
)
def test_bad_yaml_files_are_reported(tmp_path, text, words):
    path = tmp_path / "job.yaml"
    path.write_text(text)
    with pytest.raises(fs.SpecError, match=words):
        load_job(path)


def test_missing_job_file(tmp_path):
    with pytest.raises(fs.SpecError, match="no such file"):
        load_job(tmp_path / "absent.yaml")


def test_the_jobs_seed_seeds_the_split_of_a_named_dataset_unless_the_dataset_has_its_own():
    from foreseer.runner import prepare

    def val_rows(**fields):
        job = fs.SearchJob(
            name="seeded", space="mlp", dataset=fields.pop("dataset", "wine"), trials=1, **fields
        )
        return prepare(job).data.y_val.tolist()

    assert val_rows(seed=1) == val_rows(seed=1)
    assert val_rows(seed=1) != val_rows(seed=2), "another job seed, another split"
    assert val_rows(seed=2, dataset={"name": "wine", "seed": 1}) == val_rows(seed=1), (
        "the dataset's own seed wins"
    )
