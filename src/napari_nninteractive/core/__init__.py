"""Headless engine: prompts, encoding, AutoZoom, model folders and the interactive session.

Never imports Qt, napari or magicgui (checked by import-linter).
"""
