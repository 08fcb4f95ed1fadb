"""Numerics shared by heads, metrics and analyses: ridge solvers, statistics, scores, retrieval, alignment, torch helpers."""
