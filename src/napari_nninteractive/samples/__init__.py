"""Generated sample volumes with reference labels (nothing is downloaded); used by the demo and napari's
sample menu."""
