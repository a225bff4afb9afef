"""Verdicts over many episodes: statistics, sequential stopping, sampling, baselines."""
