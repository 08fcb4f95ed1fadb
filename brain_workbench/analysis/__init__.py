"""Analyses: the contract an analysis plugin implements, and the experiment logic analyses share."""
