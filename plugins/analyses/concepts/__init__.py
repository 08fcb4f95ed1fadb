"""Concept and caption analyses: which sparse-autoencoder latent drives which unit, what a latent means, whether
two SAEs learned the same latents, and what a unit prefers in words (BrainSCUBA-style caption retrieval).

The numerics are small pure functions (``projection``, ``correlation``, ``matching``, ``latents``, ``words``);
the analyses that use them live beside them and are registered by ``brain_workbench_plugins.analyses``.
"""
