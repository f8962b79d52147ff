"""Plain central differences and Jacobians: the building blocks the checker is measured against."""

import copy

import numpy as np

from .arguments import check_data, check_model, check_settings


def _flat_view(arr):
    flat = arr.reshape(-1)
    if not np.shares_memory(flat, arr):
        raise ValueError("gradient check needs C-contiguous arrays to perturb in place")
    return flat


def numeric_directional(objective, arr, directions, eps):
    """Central differences of ``objective()`` along each row of ``directions``.

    ``arr`` is perturbed in place and restored exactly.
    """
    flat = _flat_view(arr)
    saved = flat.copy()
    out = np.empty(len(directions))
    for k, d in enumerate(directions):
        np.add(saved, eps * d, out=flat)
        f_plus = objective()
        np.subtract(saved, eps * d, out=flat)
        f_minus = objective()
        out[k] = (f_plus - f_minus) / (2 * eps)
    np.copyto(flat, saved)
    return out


def numeric_gradient(objective, arr, eps):
    """Central differences of ``objective()`` for every element of ``arr``.

    ``arr`` is perturbed in place, one element at a time, and restored exactly.
    """
    flat = _flat_view(arr)
    grad = np.empty(flat.size)
    for i in range(flat.size):
        old = flat[i]
        flat[i] = old + eps
        f_plus = objective()
        flat[i] = old - eps
        f_minus = objective()
        flat[i] = old
        grad[i] = (f_plus - f_minus) / (2 * eps)
    return grad


def numerical_jacobian(f, x, eps=1e-6):
    """The Jacobian of ``f`` at ``x`` by central differences, in float64.

    Returns an array of shape ``(f(x).size, x.size)``: ``J[i, j] = d f(x)_i / d x_j``.
    ``x`` itself is not modified (``f`` receives a float64 copy).

    >>> import numpy as np
    >>> J = numerical_jacobian(lambda v: v ** 2, np.array([1.0, 2.0]))
    >>> np.allclose(J, [[2, 0], [0, 4]])
    True
    """
    if not callable(f):
        raise TypeError(f"numerical_jacobian expected a callable f(x), got {type(f).__name__}")
    check_settings("numerical_jacobian", eps=eps)
    if x is None or isinstance(x, (str, bytes)):
        raise TypeError(f"numerical_jacobian expected x to be an array of numbers, got {type(x).__name__}")
    if not isinstance(x, np.ndarray):
        try:
            x = np.asarray(x, dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise TypeError(f"numerical_jacobian expected x to be an array of numbers, got {type(x).__name__} "
                            f"({exc})") from None
    check_data("numerical_jacobian", x, "x")
    x = np.array(x, dtype=np.float64, order="C")
    flat = x.reshape(-1)
    out_size = np.asarray(f(x)).size
    jac = np.empty((out_size, flat.size))
    for j in range(flat.size):
        old = flat[j]
        flat[j] = old + eps
        f_plus = np.array(f(x), dtype=np.float64).reshape(-1)
        flat[j] = old - eps
        f_minus = np.array(f(x), dtype=np.float64).reshape(-1)
        flat[j] = old
        jac[:, j] = (f_plus - f_minus) / (2 * eps)
    return jac


def analytic_jacobian(module, x):
    """The input Jacobian of ``module`` at ``x`` from its real ``backward``.

    Runs on a deep copy, so the module's gradients are untouched. Returns
    ``(out.size, x.size)``, one ``backward`` per output element.
    """
    check_model("analytic_jacobian", module)
    check_data("analytic_jacobian", x, "x")
    work = copy.deepcopy(module)
    out = work.forward(x)
    jac = np.empty((out.size, x.size))
    basis = np.zeros(out.size, dtype=out.dtype)
    for i in range(out.size):
        basis[:] = 0
        basis[i] = 1
        jac[i] = work.backward(basis.reshape(out.shape)).reshape(-1)
    return jac
