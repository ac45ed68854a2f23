"""The contract every built-in search space meets: sample, build, train, trace faithfully."""

from dataclasses import dataclass

import pytest
import torch
from torch import nn

from foreseer_spaces import Candidate, SearchSpace, Task, get_space, trace
from foreseer_spaces._registry import _BUILTINS

# One small task per built-in space; test_every_builtin_space_is_covered keeps this list complete.
TASKS = {"cells": Task((1, 8, 8), 10), "mlp": Task((13,), 3)}
CASES = [pytest.param((name, seed), id=f"{name}-seed{seed}") for name in TASKS for seed in (0, 1)]


def test_every_builtin_space_is_covered():
    assert set(TASKS) == set(_BUILTINS)


@dataclass
class Case:
    space: SearchSpace
    task: Task
    seed: int
    candidate: Candidate


@pytest.fixture(params=CASES)
def case(request, make_trial):
    name, seed = request.param
    space, task = get_space(name), TASKS[name]
    return Case(space, task, seed, space.sample(make_trial(seed), task))


def leaf_modules(model: nn.Module) -> dict[str, nn.Module]:
    return {name: m for name, m in model.named_modules() if not list(m.children())}


def test_sampling_is_reproducible_and_records_the_space(case, make_trial):
    again = case.space.sample(make_trial(case.seed), case.task)
    assert again == case.candidate and again.hash == case.candidate.hash
    assert case.candidate.space == case.space.name


def test_forward_gives_one_logit_per_class(case):
    space, task, candidate = case.space, case.task, case.candidate
    model = space.build(candidate, task)
    assert model(torch.randn(5, *task.input_shape)).shape == (5, task.num_classes)


def test_builds_of_one_candidate_have_the_same_architecture(case):
    space, task, candidate = case.space, case.task, case.candidate
    first = space.build(Candidate.from_json(candidate.to_json()), task).state_dict()
    second = space.build(candidate, task).state_dict()
    assert {k: v.shape for k, v in first.items()} == {k: v.shape for k, v in second.items()}


def test_sgd_steps_give_finite_gradients_and_lower_the_loss(case):
    space, task, candidate = case.space, case.task, case.candidate
    torch.manual_seed(0)
    model = space.build(candidate, task).train()
    x, y = torch.randn(8, *task.input_shape), torch.randint(0, task.num_classes, (8,))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)

    def loss() -> torch.Tensor:
        torch.manual_seed(1)  # the same dropout masks at every evaluation
        return nn.functional.cross_entropy(model(x), y)

    before = loss().item()
    for _ in range(5):
        optimizer.zero_grad()
        loss().backward()
        grads = [p.grad for p in model.parameters() if p.grad is not None]
        # NAS-Bench-201 cells may hold ops whose node never reaches the output: no gradient there.
        assert model.classifier.weight.grad is not None
        assert all(torch.isfinite(g).all() for g in grads)
        optimizer.step()
    assert loss().item() < before


def test_graph_has_one_node_per_operation(case):
    space, task, candidate = case.space, case.task, case.candidate
    model = space.build(candidate, task)
    graph = space.graph(candidate, task)
    assert [node.id for node in graph.nodes] == list(range(len(graph.nodes)))
    assert graph.unsupported == ()
    assert "unsupported" not in {node.op for node in graph.nodes}
    by_module = {}
    for node in graph.nodes:
        if node.module is not None:
            assert node.module not in by_module, f"module {node.module} appears twice"
            by_module[node.module] = node
    for name, module in leaf_modules(model).items():
        params = {k: tuple(p.shape) for k, p in module.named_parameters()}
        if params:
            assert name in by_module, f"parameterised module {name} has no node"
            assert by_module[name].params == params
    assert graph.num_params == sum(p.numel() for p in model.parameters())


def test_graph_edges_run_forward_from_input_to_output(case):
    space, task, candidate = case.space, case.task, case.candidate
    graph = space.graph(candidate, task)
    assert graph.nodes[0].op == "input" and graph.nodes[0].out_shape == task.input_shape
    assert graph.nodes[-1].op == "output" and graph.nodes[-1].out_shape == (task.num_classes,)
    assert all(source < target for source, target in graph.edges)
    targets = {target for _, target in graph.edges}
    assert targets == set(range(1, len(graph.nodes)))  # every node but the input consumes something


def test_graph_shapes_match_forward_hooks_and_keep_the_mode(case):
    space, task, candidate = case.space, case.task, case.candidate
    model = space.build(candidate, task).train()
    observed = {}
    hooks = [
        module.register_forward_hook(
            lambda m, args, out, name=name: observed.__setitem__(name, tuple(out.shape[1:]))
        )
        for name, module in leaf_modules(model).items()
    ]
    graph = trace(model, task.input_shape)
    assert all(m.training for m in model.modules())
    observed.clear()  # the trace ran the model; look at one plain forward pass only
    model.eval()
    with torch.no_grad():
        model(torch.randn(2, *task.input_shape))
    for hook in hooks:
        hook.remove()
    module_nodes = {node.module: node.out_shape for node in graph.nodes if node.module is not None}
    assert module_nodes == observed
