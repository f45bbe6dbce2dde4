"""croctl: trustworthy A/B test readouts from exports and a measurement plan."""

__version__ = "0.1.0"
