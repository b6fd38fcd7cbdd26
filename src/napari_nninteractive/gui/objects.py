"""The objects of an annotation as the user sees them: own voxels, names, visibility (no Qt widgets).

Each object is a label value in a Labels layer. In an instance map or a layer per object the
value alone says which voxels are the object's. In a semantic map several objects share one value
(their class), so an object that is finished keeps a bit-packed copy of its own voxels (a
:class:`~.core.geometry.PackedMask`): its mask is then "voxels of its value that it owned when it
was finished" (hand erasures in the layer still count), and the object being edited owns the
voxels of its value that no finished object claims.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
from napari.layers import Labels
from napari.utils.colormaps import DirectLabelColormap
from psygnal import Signal

from ..core.geometry import PackedMask
from ..core.prompts import Prompt
from ..core.undo import Rounds


def object_mask(
    data, value: int, squeeze2d: bool, own: PackedMask | None = None, others: Iterable[PackedMask] = ()
) -> np.ndarray:
    """The boolean mask (session frame) of the object with ``value`` in a layer's ``data``.

    ``own``: the object's finished voxels, when its value is shared; ``others``: the finished
    voxels of the other objects sharing the value (for the object being edited).
    """
    mask = np.asarray(data) == value
    if squeeze2d:
        mask = mask[None]
    others = list(others)
    if own is not None:
        mask &= own.unpack(mask.shape)
    elif others:
        taken = np.zeros(mask.shape, dtype=bool)
        for other in others:
            other.paint(taken)
        mask &= ~taken
    return mask


def hiding_colormap(original, hidden: set[int], top: int) -> DirectLabelColormap:
    """``original``'s colours for labels 1..``top`` with the ``hidden`` values transparent."""
    values = np.arange(1, max(int(top), max(hidden, default=0)) + 1)
    colors = np.asarray(original.map(values), dtype=np.float32) if len(values) else np.zeros((0, 4), np.float32)
    color_dict = {None: np.array([1.0, 1.0, 1.0, 1.0], np.float32), 0: np.zeros(4, np.float32)}
    for v, c in zip(values.tolist(), colors):
        color_dict[v] = np.zeros(4, np.float32) if v in hidden else c
    return DirectLabelColormap(color_dict=color_dict)


@dataclass
class ObjectTarget:
    """Where one object's mask is written, and how the object list shows it."""

    layer: Labels
    value: int
    name: str = ""
    visible: bool = True


class ObjectTable:
    """The objects of one annotation: where each lives, its prompt history, its own voxels, visibility.

    Keys are object ids (0, 1, ...). Emits :attr:`changed` after every edit of the table.
    """

    changed = Signal()

    def __init__(self, viewer):
        self.viewer = viewer
        self.targets: dict[int, ObjectTarget] = {}
        self.histories: dict[int, tuple[Prompt, ...]] = {}  # prompt history per object (session files)
        self.rounds: dict[int, Rounds | None] = {}  # how each history was predicted (None: not known)
        self.own: dict[int, PackedMask] = {}  # finished objects' own voxels (see object_mask)
        self.deleted: set[int] = set()  # objects whose late outcomes are dropped
        self._colormaps: dict[int, object] = {}  # id(layer) -> its colormap before objects were hidden

    def forget(self) -> None:
        """Drop every record (the labels stay in their layers; hidden labels are shown again)."""
        for target in self.targets.values():
            cmap = self._colormaps.pop(id(target.layer), None)
            if cmap is not None and target.layer in self.viewer.layers:
                target.layer.colormap = cmap
        self.targets, self.histories, self.rounds, self.own = {}, {}, {}, {}
        self.deleted, self._colormaps = set(), {}
        self.changed.emit()

    def set_aside(self) -> tuple:
        """Everything the table holds, for :meth:`take_back`; the table is then empty (as after :meth:`forget`)."""
        kept = (dict(self.targets), dict(self.histories), dict(self.rounds), dict(self.own), set(self.deleted))
        self.forget()
        return kept

    def take_back(self, kept: tuple) -> None:
        """Hold what :meth:`set_aside` returned again (objects hidden then are hidden again)."""
        self.targets, self.histories, self.rounds, self.own, self.deleted = kept
        for object_id, target in list(self.targets.items()):
            if not target.visible and target.layer in self.viewer.layers:
                self.set_visible(object_id, False)
        self.changed.emit()

    def add(
        self,
        object_id: int,
        target: ObjectTarget,
        history: tuple[Prompt, ...] | None = None,
        rounds: Rounds | None = None,
    ) -> None:
        self.targets[object_id] = target
        if history is not None:
            self.histories[object_id] = history
        if rounds is not None:
            self.rounds[object_id] = rounds

    def remove(self, object_id: int) -> ObjectTarget:
        """Forget one object; its late outcomes are dropped from now on."""
        target = self.targets.pop(object_id)
        self.histories.pop(object_id, None)
        self.rounds.pop(object_id, None)
        self.own.pop(object_id, None)
        self.deleted.add(object_id)
        return target

    def drop_empty(self, object_id: int) -> None:
        """Take an object that has no voxel out of the list (its history stays; unlike :meth:`remove`,
        its next outcomes are written, which adds it back)."""
        if self.targets.pop(object_id, None) is not None:
            self.changed.emit()

    def free_id(self, current: int) -> int:
        """An id no object has used."""
        return max([current, *self.targets, *self.deleted]) + 1

    def objects(self) -> list[tuple[int, ObjectTarget]]:
        """``(object id, target)`` of the objects that have a layer, in creation order."""
        return [(i, t) for i, t in sorted(self.targets.items()) if t.layer in self.viewer.layers]

    def ownership(self, object_id: int) -> tuple[PackedMask | None, tuple[PackedMask, ...]]:
        """``(own, others)`` for :func:`object_mask`: set only when other objects share the value."""
        target = self.targets[object_id]
        sharing = [
            i for i, t in self.targets.items() if i != object_id and t.layer is target.layer and t.value == target.value
        ]
        own = self.own.get(object_id) if sharing else None
        return own, tuple(self.own[i] for i in sharing if i in self.own) if sharing and own is None else ()

    def object_mask(self, object_id: int, squeeze2d: bool) -> np.ndarray:
        """The object's voxels (session frame, boolean), read from its layer."""
        target = self.targets[object_id]
        return object_mask(target.layer.data, target.value, squeeze2d, *self.ownership(object_id))

    def object_color(self, object_id: int) -> tuple[float, ...]:
        """The object's RGBA colour in its layer (as shown when visible)."""
        target = self.targets[object_id]
        cmap = self._colormaps.get(id(target.layer), target.layer.colormap)
        return tuple(round(float(c), 3) for c in np.ravel(cmap.map(np.array([target.value])))[:4])

    def rename(self, object_id: int, name: str) -> None:
        if object_id in self.targets and name.strip():
            self.targets[object_id].name = name.strip()
            self.changed.emit()

    def set_visible(self, object_id: int, visible: bool) -> None:
        """Show or hide one object (its whole layer when it has one of its own)."""
        target = self.targets.get(object_id)
        if target is None:
            return
        target.visible = bool(visible)
        layer = target.layer
        mates = [t for t in self.targets.values() if t.layer is layer]
        if len(mates) == 1:
            layer.visible = target.visible
        else:
            hidden = {t.value for t in mates if not t.visible}
            key = id(layer)
            if hidden and key not in self._colormaps:
                self._colormaps[key] = layer.colormap
            if hidden:
                top = max(int(np.asarray(layer.data).max(initial=0)), *(t.value for t in mates))
                layer.colormap = hiding_colormap(self._colormaps[key], hidden, top)
            elif key in self._colormaps:
                layer.colormap = self._colormaps.pop(key)
        self.changed.emit()
