"""``check_layer``'s own arguments, checked before anything runs (as the gradient checker's are)."""

import inspect


def is_instance(src):
    """A layer or loss object (not a class, not a factory)."""
    return not isinstance(src, type) and hasattr(src, "forward") and hasattr(src, "backward")


def name_of(obj):
    return getattr(obj, "__qualname__", None) or getattr(obj, "__name__", None) or type(obj).__name__


def required_arguments(fn):
    """The names of the arguments ``fn`` cannot be called without (empty if none, or unknown)."""
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return []
    return [p.name for p in params if p.default is p.empty
            and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]


def source_problem(source, label=None):
    """Why ``source`` is neither a layer or loss instance nor a zero-argument factory (None if it is one)."""
    if not callable(source) and not hasattr(source, "backward"):
        return (f"{label or repr(source)[:60]} is of type {type(source).__name__}, not a layer, a loss or a "
                f"factory that returns one")
    missing = [] if is_instance(source) else required_arguments(source)
    if missing:
        return (f"{label or name_of(source)} needs argument(s) {', '.join(missing)}; pass a layer instance or a "
                f"factory that takes no arguments, e.g. lambda: {name_of(source)}(...)")
    return None


def check_source(source):
    """A layer or loss instance, or a factory that can be called without arguments."""
    problem = source_problem(source)
    if problem:
        raise TypeError(f"check_layer: {problem}")
    return source


def check_expected_failures(names):
    if isinstance(names, str) or not all(isinstance(n, str) for n in names):
        raise TypeError(f"check_layer expected expected_failures to be a tuple of check names, got {names!r}")
    return tuple(names)


def check_made(source, made):
    """What the factory returned is a layer or a loss."""
    if not (callable(getattr(made, "forward", None)) and callable(getattr(made, "backward", None))):
        raise TypeError(f"check_layer: {name_of(source)} returned {type(made).__name__}, not a layer or a loss "
                        f"(with forward and backward)")
    return made
