"""Scenarios as data, and the Palisade scenario."""
