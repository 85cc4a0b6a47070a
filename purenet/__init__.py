"""purenet: a from-scratch NumPy network for MNIST with a pure functional core."""

__version__ = "0.3.1"
