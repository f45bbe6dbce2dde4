"""croctl: trustworthy A/B test readouts from exports and a measurement plan."""

__version__ = "0.1.0"


def evaluate(plan: object, *, segments: bool = True) -> object:
    """Read a plan's exports and return the readout (see `croctl.evaluate.evaluate`)."""
    from croctl.evaluate import evaluate as _evaluate

    return _evaluate(plan, segments=segments)  # type: ignore[arg-type]
