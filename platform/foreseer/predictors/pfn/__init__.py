"""Learning-curve PFN: a prior over curves, a transformer fitted to it, and a batched forecaster.

After Adriaensen et al., "Efficient Bayesian Learning Curve Extrapolation using Prior-Data Fitted
Networks" (NeurIPS 2023) and Müller et al., "Transformers Can Do Bayesian Inference" (ICLR 2022).
Importing this package is cheap; torch is imported by the submodules that need it.
"""
