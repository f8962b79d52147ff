"""Text tables of ``nanonet bench`` (shared by the report and the families)."""


def fmt_time(seconds):
    for unit, scale in (("s", 1), ("ms", 1e-3), ("µs", 1e-6)):
        if seconds >= scale:
            return f"{seconds / scale:.3g} {unit}"
    return f"{seconds / 1e-9:.3g} ns"


def table(header, rows):
    widths = [max(len(str(r[i])) for r in [header] + rows) for i in range(len(header))]
    lines = ["| " + " | ".join(str(c).ljust(w) for c, w in zip(header, widths)) + " |",
             "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
    lines += ["| " + " | ".join(str(c).ljust(w) for c, w in zip(r, widths)) + " |" for r in rows]
    return "\n".join(lines)


def ratio_text(peer, spread=True):
    """A peer's ratio as the report prints it: ``1.67 ±0.08``, or ``noisy`` when the spread exceeds the effect.

    Results saved before the noise rule (no ``noisy`` key) are judged on the
    peer's own spread.

    >>> ratio_text({"ratio": 1.67, "ratio_spread": 0.08, "noisy": False}), ratio_text({"ratio": 1.02, "noisy": True})
    ('1.67 ±0.08', 'noisy')
    """
    ratio = peer.get("ratio")
    if ratio is None:
        return ""
    width = peer.get("ratio_spread", peer.get("spread", 0.0) * ratio)
    if peer.get("noisy", width >= abs(ratio - 1) and ratio != 1.0):
        return "noisy"
    return f"{ratio:.2f} ±{width:.2f}" if spread else f"{ratio:.2f}"


def ratio_versus(peer, reference, ratio=None):
    """``ratio_text`` for a ratio of ``peer`` to ``reference`` (dicts with ``median`` and ``spread``).

    The ratio's spread is the mean of both relative spreads (``timing.ratio_spread``), so the noise rule
    judges it as the main table does.
    """
    ratio = peer["median"] / reference["median"] if ratio is None else ratio
    width = ratio * (peer.get("spread", 0.0) + reference.get("spread", 0.0)) / 2
    return ratio_text({"ratio": ratio, "ratio_spread": width, "noisy": width >= abs(ratio - 1) and ratio != 1.0})
