"""Typed, immutable domain events: producers publish, subscribers react, on every process."""
