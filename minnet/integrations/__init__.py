"""Bridges to other frameworks, each importing its framework only when used.

- :mod:`.torch`: :func:`~.torch.to_torch` and :func:`~.torch.from_torch` (PyTorch);
- :mod:`.sklearn`: ``NetClassifier`` and ``NetRegressor``, scikit-learn estimators.
"""
