"""Where objects are written: output layers, label values, the overlap rule (no Qt widgets).

:class:`OutputWriter` finds or creates the Labels layer and value of each object (an instance
map, a semantic map or a layer per object) and writes the changed region of a session
:class:`~..core.api.Change` into it; only the voxels that changed are touched.
"""

from __future__ import annotations

import enum

import numpy as np
from napari.layers import Labels
from napari.utils.colormaps import DirectLabelColormap
from psygnal import Signal

from ..core.api import Change
from . import layers as L
from .objects import ObjectTable, ObjectTarget


def own_colormap(default, object_id: int) -> DirectLabelColormap:
    """For a layer of one object (value 1): the colour ``default`` gives value ``object_id + 1``.

    So object ``n`` of a layer per object looks as it would in an instance map, and no two
    neighbouring objects share a colour.
    """
    rgba = np.asarray(np.ravel(default.map(np.array([object_id + 1])))[:4], np.float32)
    return DirectLabelColormap(color_dict={None: rgba, 0: np.zeros(4, np.float32), 1: rgba})


class OutputMode(enum.Enum):
    """Where objects go."""

    INSTANCE = "instance map (one label value per object)"
    SEMANTIC = "semantic map (class id)"
    SEPARATE = "separate layer per object"


#: Said when a prediction lies entirely on voxels of other objects and those are kept.
KEPT_OUT = (
    "Nothing was added: this object's prediction lies entirely on voxels of other objects, and "
    "'On overlap' is set to keep existing objects. Prompt on unlabelled voxels, or choose "
    "'overwrite' to take those voxels over."
)


#: Said (status line) when part of a prediction lies on voxels of other objects and those are kept.
KEPT_PART = (
    "{n} voxels of this prediction belong to other objects and stay theirs ('On overlap': keep existing "
    "objects; choose 'overwrite' to take them over)."
)


class OutputWriter:
    """Output layers and values of an annotation's objects (kept in an :class:`ObjectTable`)."""

    #: ``(text, level)`` for the user.
    message = Signal(str, str)

    def __init__(self, viewer, objects: ObjectTable):
        self.viewer = viewer
        self.objects = objects
        self.mode = OutputMode.INSTANCE
        self.class_id = 1
        self.choice: Labels | None = None  # None: a new layer
        self._overwrite = False
        self._resync = False  # next write compares the whole region (the overlap rule changed)

    @property
    def overwrite(self) -> bool:
        """On overlap with other objects: overwrite them (True) or keep them (False)."""
        return self._overwrite

    @overwrite.setter
    def overwrite(self, value: bool) -> None:
        if bool(value) != self._overwrite:
            self._resync = True
        self._overwrite = bool(value)

    def target(self, object_id: int, view: L.ImageView, keep_active=None) -> tuple[ObjectTarget, bool]:
        """The layer and value of an object, created on first use; True when its layer was re-created.

        ``keep_active`` is the layer to select again after a new output layer was added.
        """
        target = self.objects.targets.get(object_id)
        if target is not None and not self.layer_gone(object_id):
            return target, False
        recreated = target is not None
        if recreated:
            self.message.emit(
                f"The output layer '{target.layer.name}' was deleted; writing the object into a new layer.", "warning"
            )
        layer = self.layer_for(object_id, view, keep_active)
        target = ObjectTarget(layer, self.value_for(layer), target.name if recreated else f"object {object_id + 1}")
        self.objects.add(object_id, target)
        return target, recreated

    def layer_gone(self, object_id: int) -> bool:
        """The object has a layer and it was deleted from the viewer (:meth:`target` re-makes it)."""
        target = self.objects.targets.get(object_id)
        return target is not None and target.layer not in self.viewer.layers

    def layer_for(self, object_id: int, view: L.ImageView, keep_active=None) -> Labels:
        """The chosen output layer (if it fits the image), the image's shared objects layer, or a new one.

        Shared layers belong to their image (and time point): the first image's objects go to
        ``nnInteractive objects``, another image's to ``<image> objects``, created just above that image;
        a layer is marked with what it belongs to (``L.OUTPUT_OF``), so objects never land in a layer of
        another image, even when the grids match. In "separate layer per object" mode every object gets a
        new layer, coloured as its value would be in an instance map.
        """
        if self.mode is OutputMode.SEPARATE:
            layer = L.new_output_layer(view, f"nnInteractive object {object_id + 1}")
            layer.colormap = own_colormap(layer.colormap, object_id)  # value 1 everywhere: the object's colour
            self.viewer.add_layer(layer)
        else:
            if self.choice is not None and self.choice in self.viewer.layers:
                try:
                    L.check_output_layer(view, self.choice)
                    return self.choice
                except L.LayerError as exc:
                    self.message.emit(f"{exc} Writing into a new layer instead.", "warning")
            ours, first = L.binding(view), "nnInteractive objects"
            for layer in self.viewer.layers:
                owner = layer.metadata.get(L.OUTPUT_OF) if isinstance(layer, Labels) else None
                fits = isinstance(layer, Labels) and tuple(layer.data.shape) == L.output_shape(view)
                if fits and (owner == ours or (owner is None and layer.name == first)):
                    layer.metadata[L.OUTPUT_OF] = ours  # an unmarked layer of that name is claimed by this image
                    return layer
            taken = any(layer.name == first for layer in self.viewer.layers)
            layer = L.new_output_layer(view, L.output_name(view) if taken else first)
            self.viewer.layers.insert(self.viewer.layers.index(view.layer) + 1, layer)
        self.viewer.layers.selection.active = keep_active if keep_active is not None else view.layer
        return layer

    def value_for(self, layer: Labels) -> int:
        """The label value of a new object in ``layer``."""
        if self.mode is OutputMode.SEMANTIC:
            return int(self.class_id)
        if self.mode is OutputMode.SEPARATE:
            return 1
        used = {t.value for t in self.objects.targets.values() if t.layer is layer}
        top = int(np.asarray(layer.data).max(initial=0))
        return max([top] + list(used)) + 1

    def write(self, target: ObjectTarget, view: L.ImageView, change: Change, whole: bool = False) -> None:
        """Write the change's region into the object's layer (``whole``: compare every voxel of it)."""
        flipped = None if whole or self._resync else change.flipped
        self._resync = False
        try:
            kept = L.write_object(target.layer, view, change.bbox, change.values, target.value, self.overwrite, flipped)
        except L.LayerError as exc:
            self.message.emit(str(exc), "warning")
            return
        if not kept:
            return
        if self._all_kept_out(target, view, change):
            self.message.emit(KEPT_OUT, "warning")
            for object_id, t in list(self.objects.targets.items()):
                if t is target:
                    self.objects.drop_empty(object_id)  # no empty row; the next prompt adds it back
        else:  # the status line only: objects that touch share a border often
            self.message.emit(KEPT_PART.format(n=kept), "status")

    @staticmethod
    def _all_kept_out(target: ObjectTarget, view: L.ImageView, change: Change) -> bool:
        """The change has voxels, yet the object has none in its layer: other objects hold them all."""
        new = np.asarray(change.values, dtype=bool)
        if not new.any():
            return False
        bbox = change.bbox[1:] if view.squeeze2d else change.bbox
        region = np.asarray(target.layer.data[tuple(slice(lo, hi) for lo, hi in bbox)])
        if (region[new[0] if view.squeeze2d else new] == target.value).any():
            return False
        return not (np.asarray(target.layer.data) == target.value).any()  # rare: only when the region has none

    def erase(self, target: ObjectTarget, view: L.ImageView, mask: np.ndarray) -> None:
        """Write "no voxel" over ``mask`` (session frame): only the object's own voxels change."""
        from ..core.geometry import nonzero_bbox

        box = nonzero_bbox(mask)
        if box is not None:
            empty = np.zeros(tuple(hi - lo for lo, hi in box), np.uint8)
            L.write_object(
                target.layer,
                view,
                box,
                empty,
                target.value,
                False,
                mask[tuple(slice(lo, hi) for lo, hi in box)] != 0,
            )

    def remove_if_unused(self, layer: Labels) -> None:
        """In layer-per-object mode, remove ``layer`` once no object uses it."""
        if (
            self.mode is OutputMode.SEPARATE
            and layer in self.viewer.layers
            and not any(t.layer is layer for t in self.objects.targets.values())
        ):
            self.viewer.layers.remove(layer)
