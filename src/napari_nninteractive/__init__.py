"""napari-nninteractive: 3-D promptable segmentation in napari (after nnInteractive).

Importing the package is cheap: no torch, no Qt. The engine lives in
:mod:`napari_nninteractive.core`.
"""

__version__ = "0.1.0"
