"""Reusable Keras layers (each in its own module)."""
