"""Learned predictors: a learning-curve PFN (:mod:`foreseer.predictors.pfn`) and a graph hypernetwork."""
