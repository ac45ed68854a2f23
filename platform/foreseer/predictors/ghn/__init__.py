"""Graph hypernetwork: predict the weights of any candidate of a search space from its graph.

Parts: :mod:`~foreseer.predictors.ghn.graph` (an ``ArchGraph`` or an fx-traced module as tensors),
:mod:`~foreseer.predictors.ghn.model` (the hypernetwork), :mod:`~foreseer.predictors.ghn.predictor`
(predict, score and warm-start candidates), :mod:`~foreseer.predictors.ghn.meta_train`
(meta-training per space and dataset), :mod:`~foreseer.predictors.ghn.cache` (fingerprints and
safetensors checkpoints), :mod:`~foreseer.predictors.ghn.cli`
(``foreseer ghn train`` / ``foreseer ghn eval``); a job's use of it (the MLflow cache or
meta-training, screening, warm starts) is :mod:`foreseer.hypernet`. Importing this package imports no torch.
"""
