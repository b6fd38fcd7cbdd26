"""napari layers <-> core prompts: image selection, prompt layers, coordinates, result writing.

No Qt here. Every conversion from a drawn shape to voxels goes prompt layer data -> world ->
image layer data, so scale / translate / (orthogonal) affine of the image are respected.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from napari.layers import Image, Labels, Layer, Points

from ..core.encoding import RGB_NOTE, luminance
from ..core.errors import UserError
from ..core.geometry import BBox, bbox_to_slices, nonzero_bbox, shift_bbox
from ..core.lazy import is_lazy, working_memory_problem
from ..core.prompts import Box, Lasso, Point, PromptError, Scribble, fill_polygon

POSITIVE_COLOR = "#00d000"
NEGATIVE_COLOR = "#ff2020"
PROMPT_LAYER_PREFIX = "nnInteractive "


class LayerError(UserError, ValueError):
    """A layer the plugin cannot use as it is; the message says what to do."""


@dataclass
class ImageView:
    """The 3-D volume handed to the session, and how it sits in the image layer.

    ``lead`` are indices fixed on leading axes (e.g. the displayed time point); ``squeeze2d`` is
    True for a 2-D image (the session sees one slice).
    """

    volume: np.ndarray
    layer: Image
    lead: tuple[int, ...] = ()
    squeeze2d: bool = False
    note: str = ""

    @property
    def spatial_ndim(self) -> int:
        return 2 if self.squeeze2d else 3

    @property
    def shape(self) -> tuple[int, int, int]:
        return self.volume.shape[-3:] if self.volume.ndim >= 3 else (1,) + self.volume.shape


def data_to_world_affine(layer: Layer) -> tuple[np.ndarray, np.ndarray]:
    """``(A, b)`` with ``world = A @ data + b`` (scale, rotate, shear, affine), from the public transform."""
    nd = layer.ndim
    origin = np.asarray(layer.data_to_world(np.zeros(nd)), dtype=float)
    lin = np.stack([np.asarray(layer.data_to_world(np.eye(nd)[i]), dtype=float) - origin for i in range(nd)], axis=1)
    return lin, origin


def check_orthogonal(layer: Layer) -> None:
    """Refuse rotated or sheared layers (prompts on orthogonal slices would not map to voxels)."""
    lin, _ = data_to_world_affine(layer)
    off = lin - np.diag(np.diag(lin))
    if np.abs(off).max(initial=0) > 1e-6 * max(1.0, np.abs(lin).max()):
        raise LayerError(
            f"The image layer '{layer.name}' is rotated or sheared (non-orthogonal affine); prompts "
            "drawn on its slices cannot be mapped to voxels. Resample the image onto its grid first "
            "(the layer was not changed)."
        )


def data_step(layer: Layer, world_point) -> tuple[int, ...]:
    """The displayed position of the viewer (``viewer.dims.point``, world units) as indices into ``layer``'s data.

    The viewer lines its trailing axes up with the layer's, and a time axis may have a scale or an offset, so
    the viewer's step counter (``dims.current_step``) is not the layer's index: this maps through the layer's
    transform.
    """
    point = np.asarray(tuple(world_point)[-layer.ndim :], dtype=float)
    if len(point) < layer.ndim:
        point = np.concatenate([np.zeros(layer.ndim - len(point)), point])
    return tuple(int(round(v)) for v in np.asarray(layer.world_to_data(point), dtype=float))


def lead_words(lead: tuple[int, ...]) -> str:
    """How the status line names a point of the leading axes: ``time point 3`` or ``leading axes (1, 3)``."""
    return f"time point {lead[0]}" if len(lead) == 1 else f"leading axes {lead}"


def image_view(layer: Image, current_step: tuple[int, ...] = (), channel: int = 0) -> ImageView:
    """The volume to segment from an image layer, with a note on what was chosen.

    2-D: one slice. 3-D: as is. 4-D and more: the displayed point of the leading axes (time).
    RGB(A): converted to luminance. Multiscale: the full-resolution level. Arrays read on demand
    (dask, zarr) stay lazy: the engines read the windows they need. An image whose masks would
    not fit in the free memory is refused with a message.
    """
    if not isinstance(layer, Image):
        raise LayerError(f"'{getattr(layer, 'name', layer)}' is not an image layer; pick an image.")
    check_orthogonal(layer)
    data = layer.data[0] if layer.multiscale else layer.data
    note = "multiscale image: using the full-resolution level" if layer.multiscale else ""
    if layer.rgb:
        data, note = luminance(data), RGB_NOTE
    nd = len(data.shape)
    if nd < 2:
        raise LayerError(f"The image layer '{layer.name}' has {nd} axis; a 2-D or 3-D image is needed.")
    problem = working_memory_problem(data.shape[-min(nd, 3) :], not is_lazy(data))
    if problem:
        raise LayerError(problem)
    if nd == 2:
        return ImageView(_keep(data), layer, (), True, note)
    lead: tuple[int, ...] = ()
    if nd > 3:
        step = tuple(current_step[: nd - 3]) if len(current_step) >= nd - 3 else (0,) * (nd - 3)
        lead = tuple(int(min(max(s, 0), n - 1)) for s, n in zip(step, data.shape[: nd - 3]))
        data = data[lead]
        note = (
            f"{nd}-D image: segmenting the displayed point {lead} of the leading axes "
            "(prompts drawn at another one are refused: move the slider and Initialize again for it)"
        )
    return ImageView(_keep(data), layer, lead, False, note)


def _keep(data):
    """In-memory data as a NumPy array; lazily read data (dask, zarr) as it is."""
    return data if is_lazy(data) else np.asarray(data)


# ----------------------------------------------------------------------------- prompt layers


def copy_transform(src: Layer) -> dict:
    """Keyword arguments that give a new layer the same data->world transform as ``src``."""
    return {
        "scale": src.scale,
        "translate": src.translate,
        "rotate": src.rotate,
        "shear": src.shear,
        "affine": src.affine.affine_matrix,
    }


def world_to_voxel(view: ImageView, prompt_layer: Layer, data_coords: np.ndarray) -> np.ndarray:
    """Prompt-layer data coordinates (N, ndim) -> session voxel coordinates (N, 3)."""
    pts = np.atleast_2d(np.asarray(data_coords, dtype=float))
    a_prompt, b_prompt = data_to_world_affine(prompt_layer)  # one affine map for all points
    a_image, b_image = data_to_world_affine(view.layer)
    world = pts @ a_prompt.T + b_prompt
    img = np.linalg.solve(a_image, (world - b_image).T).T
    spatial = img[:, -view.spatial_ndim :]
    if view.squeeze2d:
        spatial = np.concatenate([np.zeros((len(spatial), 1)), spatial], axis=1)
    return spatial


def _sliced_axis(vox: np.ndarray) -> int:
    """The axis on which all vertices lie on one slice."""
    flat = [a for a in range(3) if np.allclose(np.round(vox[:, a]), np.round(vox[0, a]))]
    if not flat:
        raise PromptError("The shape does not lie on one slice; draw it in a 2-D view.")
    return flat[0]


def box_from_vertices(vox: np.ndarray, positive: bool) -> Box:
    """A 2-D box (extent 1 on the sliced axis) from the voxel coordinates of a drawn rectangle."""
    axis = _sliced_axis(vox)
    lo, hi = vox.min(axis=0), vox.max(axis=0)
    if any(hi[a] - lo[a] < 0.5 for a in range(3) if a != axis):
        raise PromptError("The box has no area: drag to draw a rectangle around the object.")
    box = []
    for a in range(3):
        if a == axis:
            s = int(round(vox[0, a]))
            box.append((s, s + 1))
        else:
            box.append((int(round(lo[a])), int(round(hi[a])) + 1))
    return Box(tuple(box), positive)


def lasso_from_vertices(vox: np.ndarray, shape, positive: bool) -> Lasso:
    """A filled lasso from the voxel coordinates of a drawn polygon on one slice."""
    axis = _sliced_axis(vox)
    u, v = (vox[:, a] for a in range(3) if a != axis)
    if abs(np.dot(u, np.roll(v, -1)) - np.dot(v, np.roll(u, -1))) / 2 < 0.5:  # shoelace area in voxels
        raise PromptError("The lasso has no area: draw a closed outline around the object.")
    vox = vox.copy()
    vox[:, axis] = np.round(vox[0, axis])
    crop, box = fill_polygon(vox, shape)
    return Lasso(crop, box, positive)


def scribble_from_voxels(
    view: ImageView, layer: Labels, indices: tuple[np.ndarray, ...], positive: bool
) -> Scribble | None:
    """A scribble prompt from painted voxels (``np.nonzero`` indices in the scribble layer's data)."""
    if indices[0].size == 0:
        return None
    vox = np.round(world_to_voxel(view, layer, np.stack(indices, axis=1))).astype(int)
    vox = vox[np.all((vox >= 0) & (vox < np.asarray(view.shape)), axis=1)]
    if len(vox) == 0:
        return None
    lo, hi = vox.min(axis=0), vox.max(axis=0) + 1
    crop = np.zeros(tuple(hi - lo), dtype=bool)
    crop[tuple((vox - lo).T)] = True
    return Scribble(crop, tuple((int(a), int(b)) for a, b in zip(lo, hi)), positive)


def point_from_coords(view: ImageView, layer: Points, coord, positive: bool) -> Point:
    """A point prompt from one point of the points layer (data coordinates)."""
    return Point(tuple(float(v) for v in world_to_voxel(view, layer, coord)[0]), positive)


def polarity_color(positive: bool) -> str:
    """Green for positive prompts, red for negative ones."""
    return POSITIVE_COLOR if positive else NEGATIVE_COLOR


# ----------------------------------------------------------------------------- results


def output_shape(view: ImageView) -> tuple[int, ...]:
    """Shape of a Labels layer on the image's spatial grid."""
    return view.shape[1:] if view.squeeze2d else view.shape


#: The key of an output layer's ``metadata`` that names the image (and time point) its objects belong to.
OUTPUT_OF = "nninteractive_output_of"


def binding(view: ImageView) -> str:
    """What an annotation is bound to: the image layer and the point of its leading axes (time)."""
    return f"{view.layer.unique_id}{view.lead}"


def bound_to(binding_: str, layer) -> bool:
    """Whether a :func:`binding` is one of ``layer``'s (at any point of its leading axes)."""
    return binding_.startswith(str(layer.unique_id))


def output_name(view: ImageView) -> str:
    """The name of the shared output layer of an image that is not the first one: ``<image> objects``."""
    return f"{view.layer.name} objects" + (f" ({lead_words(view.lead)})" if view.lead else "")


def new_output_layer(view: ImageView, name: str) -> Labels:
    """An empty Labels layer on the image's grid with the image's spatial transform, marked as the image's."""
    nd = view.spatial_ndim
    layer = view.layer
    n_img = layer.ndim
    kwargs = {"scale": layer.scale[n_img - nd :], "translate": layer.translate[n_img - nd :]}
    return Labels(
        np.zeros(output_shape(view), dtype=np.uint16), name=name, metadata={OUTPUT_OF: binding(view)}, **kwargs
    )


def check_output_layer(view: ImageView, layer: Labels) -> None:
    """The output layer must be on the image grid."""
    if tuple(layer.data.shape) != output_shape(view):
        raise LayerError(
            f"The labels layer '{layer.name}' has shape {tuple(layer.data.shape)} but the image is "
            f"{output_shape(view)}; choose a labels layer on the image grid or a new layer."
        )


def write_object(
    layer: Labels,
    view: ImageView,
    bbox: BBox,
    mask: np.ndarray,
    value: int,
    overwrite: bool,
    changed: np.ndarray | None = None,
) -> int:
    """Write the object's 0/1 ``mask`` region (session frame) into ``layer`` as ``value``; returns how many
    voxels of the change stayed with other objects (0 with ``overwrite``).

    Only voxels of ``bbox`` are touched, and with ``changed`` (bool, the ``bbox`` region: where the
    mask value changed) only those, inside their tight box, so the GUI thread works on the change,
    not on the whole region. Voxels of other objects (another value) change only with
    ``overwrite``; voxels this object gives up become 0.
    """
    if layer.data.dtype.kind in "iu" and value > np.iinfo(layer.data.dtype).max:
        raise LayerError(f"Label value {value} does not fit the labels layer's dtype {layer.data.dtype}.")
    if view.squeeze2d:
        bbox, mask = bbox[1:], mask[0]
        changed = None if changed is None else changed[0]
    new = mask.astype(bool, copy=False)
    if changed is not None:  # narrow everything to the tight box of the change
        tight = nonzero_bbox(changed)
        if tight is None:
            return 0
        inner = bbox_to_slices(tight)
        bbox, new, changed = shift_bbox(tight, [lo for lo, _ in bbox]), new[inner], changed[inner]
    sl = bbox_to_slices(bbox)
    writable_view = isinstance(layer.data, np.ndarray)  # basic slicing of an ndarray is a view
    region = layer.data[sl]
    if not writable_view:
        region = np.array(region)
    todo = changed if changed is not None else new != (np.asarray(region) == value)
    # Whole-array bool passes and masked writes over the tight box, no gathers: half the time of indexing
    # with ``todo`` for a dense change, the same for a sparse one.
    on = todo & new  # voxels that become the object's
    kept = 0
    if not overwrite:
        other = region != 0
        other &= region != value
        other &= on  # another object's voxel stays
        kept = int(np.count_nonzero(other))
        if kept:
            on ^= other
    off = todo & ~new
    off &= region == value  # voxels the object gives up become 0; other objects' voxels stay as they are
    if not (on.any() or off.any()):
        return kept
    # region = value where on, 0 where off (disjoint), as it was elsewhere: in whole-array arithmetic, a sixth
    # of the time of two masked copies (np.copyto(..., where=)) for a dense change
    off |= on
    np.invert(off, out=off)
    np.multiply(region, off, out=region, casting="unsafe")
    if value:
        np.add(region, on * region.dtype.type(value), out=region, casting="unsafe")
    if not writable_view:
        layer.data[sl] = region
    layer.refresh()
    return kept
