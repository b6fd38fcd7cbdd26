"""Evaluation with simulated users (``evaluation.md``): prompts, corrections, agents, Dice and AUC.

Headless: no Qt, no napari. Drives any engine through the session interface.
"""
