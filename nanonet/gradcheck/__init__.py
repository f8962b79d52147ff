"""The gradient checker, a package of its own (a tool: it sits on top of the layers and containers).

- ``check``: ``check_gradients``, ``eps_sweep``, ``compare``, ``freeze_randomness``;
- ``numeric``: plain central differences (``numerical_jacobian``, ``analytic_jacobian``);
- ``engine``: how the objective is evaluated fast (prefix caching, stacked copies, kink tracing);
- ``grouped``: full mode's grouped (Curtis-Powell-Reid) perturbations of parameters;
- ``diagnosis``: kinks and the named diagnoses of a failed row;
- ``report``: ``GradientReport``, ``GradientRow``, ``EpsSweep``.

Everything public is importable from ``nanonet.gradcheck`` (and the main names from ``nanonet``).
"""

from .check import check_gradients, compare, eps_sweep, freeze_randomness
from .numeric import analytic_jacobian, numeric_directional, numeric_gradient, numerical_jacobian
from .report import EpsSweep, GradientReport, GradientRow

__all__ = ["EpsSweep", "GradientReport", "GradientRow", "analytic_jacobian", "check_gradients", "compare",
           "eps_sweep", "freeze_randomness", "numeric_directional", "numeric_gradient", "numerical_jacobian"]
