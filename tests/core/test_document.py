"""Session files: round trip, resume-and-refine, atomic writes, restore after a killed process."""

from __future__ import annotations

import errno
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from napari_nninteractive.core.document import (
    ImageRef,
    SessionDocument,
    SessionFileError,
    autosave_path,
    capture_object,
    load_document,
    save_document,
)
from napari_nninteractive.core.engines.seeded_watershed import SeededWatershedEngine
from napari_nninteractive.core.session import Session
from napari_nninteractive.testing import synthetic_volume

SHAPE = (40, 72, 72)


def _annotated(engine=None):
    image, labels = synthetic_volume(SHAPE, seed=5)
    s = Session(engine or SeededWatershedEngine())
    s.set_image(image)
    return image, labels, s


def _two_objects(s, labels):
    records = []
    obj = np.argwhere(labels == 1)
    z, y, x = (int(v) for v in obj.mean(0).round())
    s.add_bbox(
        [[z, z + 1], [int(obj[:, 1].min()), int(obj[:, 1].max()) + 1], [int(obj[:, 2].min()), int(obj[:, 2].max()) + 1]]
    )
    stroke = np.zeros((1, 3, 6), bool)
    stroke[0, 1, :] = True
    s.add_scribble(stroke, bbox=[[z, z + 1], [y - 1, y + 2], [x - 3, x + 3]])
    s.add_point((z, y, x), positive=False)
    s.undo()  # undone prompts are not part of the history
    records.append(capture_object(s, 1, "liver", color=(1.0, 0.0, 0.0, 1.0)))
    s.next_object()
    obj = np.argwhere(labels == 2)
    z, y, x = (int(v) for v in obj.mean(0).round())
    lasso = np.zeros((1, 9, 9), bool)
    lasso[0, 2:7, 2:7] = True
    s.add_lasso(lasso, bbox=[[z, z + 1], [y - 4, y + 5], [x - 4, x + 5]])
    s.add_point((z, y, x))
    records.append(capture_object(s, 2, "kidney", visible=False))
    return records


def test_round_trip_keeps_masks_prompts_and_names(tmp_path):
    image, labels, s = _annotated()
    records = _two_objects(s, labels)
    assert [p.kind.value for p in records[0].prompts] == ["bbox", "scribble"]
    assert records[0].rounds == ((1, False), (1, False))  # how they were predicted: replayed so on Undo
    doc = SessionDocument(
        ImageRef.of(image, "scan", tmp_path / "scan.nii.gz"), records, current=1, settings={"output": "instance"}
    )
    path = save_document(doc, tmp_path / "s.nnisession.npz")
    back = load_document(path)
    assert back.image == doc.image and back.current == 1 and back.settings == {"output": "instance"}
    for a, b in zip(records, back.objects):
        assert (a.label, a.name, a.color, a.visible) == (b.label, b.name, b.color, b.visible)
        assert np.array_equal(a.mask, b.mask) and a.mask.any()
        assert len(a.prompts) == len(b.prompts) and a.rounds == b.rounds
        for p, q in zip(a.prompts, b.prompts):
            assert type(p) is type(q) and p.positive == q.positive
            if hasattr(p, "coord"):
                assert p.coord == q.coord
            else:
                assert p.bbox == q.bbox
            if hasattr(p, "mask"):
                assert np.array_equal(p.mask, q.mask)
    assert back.image.mismatch(image) is None
    assert "different voxel values" in back.image.mismatch(image + 1)
    assert "shape" in back.image.mismatch(image[:-1])


@pytest.mark.parametrize("engine", ["weight-free", "network"])
def test_restored_object_refines_exactly_as_if_never_closed(tmp_path, engine, tiny_model_dir):
    def make():
        if engine == "network":
            from napari_nninteractive.core.engines.network import NetworkEngine

            return NetworkEngine.from_folder(tiny_model_dir, device="cpu", autozoom=False)
        return SeededWatershedEngine()

    image, labels, s = _annotated(make())
    record = _two_objects(s, labels)[1]
    path = save_document(SessionDocument(ImageRef.of(image), [record]), tmp_path / "s.npz")
    obj = np.argwhere(labels == 2)
    extra = tuple(int(v) for v in obj[len(obj) // 3])
    s.add_point(extra)  # the uninterrupted session
    expected = s.mask.copy()

    _, _, fresh = _annotated(make())  # "the next day"
    fresh.next_object()
    loaded = load_document(path).objects[0]
    fresh.restore_object(loaded.mask, loaded.prompts, loaded.rounds)
    assert np.array_equal(fresh.mask, record.mask) and fresh.can_undo  # undo offered: it replays the prompts
    fresh.add_point(extra)
    assert np.array_equal(fresh.mask, expected)
    for _ in range(2):  # undo steps back through the restored prompts exactly as the uninterrupted session
        fresh.undo()
        s.undo()
        assert np.array_equal(fresh.mask, s.mask) and [p.kind for p in fresh.prompt_history] == [
            p.kind for p in s.prompt_history
        ]


def test_a_file_without_rounds_from_an_older_version_loads(tmp_path):
    """Before prediction rounds were saved, Undo of a reopened object replayed one prompt per prediction."""
    image, labels, s = _annotated()
    records = _two_objects(s, labels)
    for r in records:
        r.rounds = None
    back = load_document(save_document(SessionDocument(ImageRef.of(image), records), tmp_path / "s.npz"))
    assert [r.rounds for r in back.objects] == [None, None]
    assert [len(r.prompts) for r in back.objects] == [len(r.prompts) for r in records]


def test_failed_write_keeps_the_previous_save(tmp_path):
    image, labels, s = _annotated()
    records = _two_objects(s, labels)
    path = tmp_path / "s.npz"
    save_document(SessionDocument(ImageRef.of(image), records[:1]), path)
    before = path.read_bytes()

    def disk_full(f, arrays):
        f.write(b"PK\x03\x04 partial")
        raise OSError(errno.ENOSPC, "No space left on device")

    with pytest.raises(SessionFileError, match="No space left on device.*unchanged"):
        save_document(SessionDocument(ImageRef.of(image), records), path, _writer=disk_full)

    def crash(f, arrays):
        f.write(b"PK\x03\x04 partial")
        raise KeyboardInterrupt  # the process dies mid-write

    with pytest.raises(KeyboardInterrupt):
        save_document(SessionDocument(ImageRef.of(image), records), path, _writer=crash)
    assert path.read_bytes() == before and [p.name for p in tmp_path.iterdir()] == ["s.npz"]
    assert len(load_document(path).objects) == 1


def test_bad_files_get_a_clear_message(tmp_path):
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(SessionFileError, match="not a readable session file"):
        load_document(tmp_path / "junk.npz")
    np.savez(tmp_path / "other.npz", a=np.zeros(3))
    with pytest.raises(SessionFileError, match="not a readable session file"):
        load_document(tmp_path / "other.npz")
    with pytest.raises(SessionFileError, match="does not exist"):
        load_document(tmp_path / "missing.npz")
    target = tmp_path / "file"
    target.write_text("x")
    with pytest.raises(SessionFileError, match="Cannot write"):
        save_document(SessionDocument(ImageRef("a", (1, 2, 2), "float32", "f")), target / "s.npz")


def test_restore_after_a_killed_process_loses_at_most_the_interaction_in_flight(tmp_path):
    script = textwrap.dedent(f"""
        import os, signal, numpy as np
        from napari_nninteractive.core.document import ImageRef, SessionDocument, autosave_path, capture_object, save_document
        from napari_nninteractive.core.engines.seeded_watershed import SeededWatershedEngine
        from napari_nninteractive.core.session import Session
        from napari_nninteractive.testing import synthetic_volume

        image, labels = synthetic_volume({SHAPE}, seed=5)
        ref = ImageRef.of(image, "scan")
        s = Session(SeededWatershedEngine())
        s.set_image(image)
        obj = np.argwhere(labels == 1)
        clicks = [tuple(int(v) for v in obj[i]) for i in (0, len(obj) // 2, len(obj) - 1)]
        for i, c in enumerate(clicks):
            s.add_point(c)
            save_document(SessionDocument(ref, [capture_object(s, 1, "object 1")]), autosave_path(ref, {str(tmp_path)!r}))
        s.should_cancel = lambda: os.kill(os.getpid(), signal.SIGKILL)  # dies during the next prediction
        s.add_point(tuple(int(v) for v in np.argwhere(labels == 2)[0]))
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert proc.returncode == -9, proc.stderr
    image, labels = synthetic_volume(SHAPE, seed=5)
    saved = load_document(autosave_path(ImageRef.of(image, "scan"), tmp_path))
    s = Session(SeededWatershedEngine())
    s.set_image(image)
    obj = np.argwhere(labels == 1)
    for i in (0, len(obj) // 2, len(obj) - 1):
        s.add_point(tuple(int(v) for v in obj[i]))
    assert np.array_equal(saved.objects[0].mask, s.mask.astype(bool)) and s.mask.any()
    assert len(saved.objects[0].prompts) == 3
    assert [p.name for p in Path(tmp_path).iterdir()] == [autosave_path(saved.image, tmp_path).name]
