"""The napari GUI: every module that imports napari, Qt or magicgui lives here (and nowhere else)."""
