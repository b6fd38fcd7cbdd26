"""Segmentation engines behind the :class:`~napari_nninteractive.core.engines.base.Engine` interface."""
