"""``nanonet bench``: nanonet against hand-written numpy, PyTorch, JAX and scikit-learn.

The harness lives in the package so that ``nanonet bench`` works after a
plain ``pip install``; the peers (torch, jax, scikit-learn, matplotlib,
threadpoolctl) are optional and imported only when used.
"""
