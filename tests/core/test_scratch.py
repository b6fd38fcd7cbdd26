"""Scratch arrays (core/engines/scratch.py): reuse, isolation, and masks equal to fresh allocations."""

import threading

import numpy as np
import pytest

from napari_nninteractive.core.engines import scratch
from napari_nninteractive.core.engines.seeded import SeededConfig
from napari_nninteractive.core.engines.seeded_watershed import SeededWatershedEngine
from napari_nninteractive.core.session import Session

from ..conftest import sphere


@pytest.fixture
def pool_everything(monkeypatch):
    monkeypatch.setattr(scratch, "MIN_BYTES", 0)


def test_a_name_reuses_its_buffer_and_names_do_not_share(pool_everything):
    pool = scratch.Scratch()
    with scratch.using(pool):
        a = scratch.empty("a", (10, 10), np.float32)
        b = scratch.full("b", (10, 10), np.int8, 1)
        again = scratch.empty("a", (5, 4), np.float64)
        grown = scratch.empty("a", (40, 40), np.float32)
    assert np.shares_memory(a, again) and not np.shares_memory(a, b) and not np.shares_memory(a, grown)
    assert b.dtype == np.int8 and (b == 1).all() and again.shape == (5, 4) and again.flags.c_contiguous
    assert pool.kept_bytes == 40 * 40 * 4 + 100
    outside = scratch.empty("a", (40, 40), np.float32)  # no pool active: an ordinary array
    assert not np.shares_memory(outside, grown)
    pool.release()
    assert pool.kept_bytes == 0


def test_a_pool_keeps_no_more_than_its_limit(pool_everything):
    pool = scratch.Scratch(max_bytes=1000)
    with scratch.using(pool):
        kept = scratch.empty("a", (600,), np.uint8)
        once = scratch.empty("b", (600,), np.uint8)  # would pass the limit: handed out, not kept
        again = scratch.empty("b", (600,), np.uint8)
    assert pool.kept_bytes == 600 and not np.shares_memory(once, again) and not np.shares_memory(kept, once)


def test_a_pool_in_use_by_another_thread_is_not_shared(pool_everything):
    pool = scratch.Scratch()
    inside, done = threading.Event(), threading.Event()
    seen = {}

    def other():
        with scratch.using(pool):
            seen["other"] = scratch.empty("x", (100,), np.uint8)
            inside.set()
            done.wait(10)

    t = threading.Thread(target=other)
    t.start()
    assert inside.wait(10)
    with scratch.using(pool):  # busy: this block gets a private pool
        mine = scratch.empty("x", (100,), np.uint8)
    done.set()
    t.join(10)
    assert not np.shares_memory(mine, seen["other"])


def _scenes():
    rng = np.random.default_rng(0)
    shape = (40, 56, 56)
    a, b = sphere(shape, (20, 24, 24), 11), sphere(shape, (20, 24, 42), 9)
    img = np.where(a | b, 120.0, 40.0).astype(np.float32) + rng.normal(0, 10, shape).astype(np.float32)
    return img, a


@pytest.mark.parametrize("full_res_voxels", [2_000_000, 5_000], ids=["full-resolution", "coarse-to-fine"])
def test_masks_with_every_temporary_pooled_equal_fresh_allocations(monkeypatch, full_res_voxels):
    # Every scratch request pooled (MIN_BYTES 0) versus none (MIN_BYTES huge): a buffer reused while
    # still alive would change a mask. Boxes, clicks of both signs, a scribble, a lasso, undo and a
    # second object, in one session per setting.
    from napari_nninteractive.eval import simulate as sim

    img, a = _scenes()
    results = {}
    for min_bytes in (0, 1 << 62):
        monkeypatch.setattr(scratch, "MIN_BYTES", min_bytes)
        s = Session(SeededWatershedEngine(SeededConfig(full_res_voxels=full_res_voxels)))
        s.set_image(img)
        masks = []
        s.add_prompt(sim.box_prompt(a))
        masks.append(s.mask.copy())
        s.add_point((20, 24, 35), positive=False)
        s.add_point((20, 24, 40))
        masks.append(s.mask.copy())
        s.undo()
        s.next_object()
        s.add_prompt(sim.scribble_prompt(a))
        s.add_prompt(sim.lasso_prompt(a, positive=False))
        masks.append(s.mask.copy())
        s.add_point((2, 2, 2))  # background: a small object around the click
        masks.append(s.mask.copy())
        results[min_bytes] = masks
        if min_bytes == 0:
            assert s.engine.scratch.kept_bytes > 0
    assert all(m.any() for m in results[0][:2])
    for pooled, fresh in zip(results[0], results[1 << 62]):
        assert np.array_equal(pooled, fresh)


def _advice():
    """numpy's huge-page getter and setter (skips where this numpy lacks them)."""
    multiarray = scratch._numpy_multiarray()
    get = getattr(multiarray, "_get_madvise_hugepage", None)
    put = getattr(multiarray, "_set_madvise_hugepage", None)
    if get is None or put is None:
        pytest.skip("this numpy has no huge-page switch")
    return get, put


@pytest.fixture
def advice():
    get, put = _advice()
    before = get()
    yield get, put
    put(before)


def test_small_pages_switch_numpys_huge_page_advice_off_and_restore_it(advice):
    get, put = advice
    for start in (True, False):
        put(start)
        with scratch.small_pages():
            assert get() is False
            with scratch.small_pages():  # nested: the outer block's setting comes back
                pass
            assert get() is False
        assert get() is start
        with pytest.raises(RuntimeError), scratch.small_pages():
            raise RuntimeError("a failed solve")
        assert get() is start  # restored after an error too


def test_small_pages_does_nothing_where_numpy_has_no_switch(monkeypatch, advice):
    get, put = advice
    put(True)
    monkeypatch.setattr(scratch, "_numpy_multiarray", lambda: object())
    with scratch.small_pages():
        assert get() is True


def test_small_pages_blocks_overlapping_in_two_threads_restore_the_setting_once_both_left(advice):
    get, put = advice
    first_in, second_in, first_out = threading.Event(), threading.Event(), threading.Event()
    seen = []

    def first():
        with scratch.small_pages():
            first_in.set()
            second_in.wait(5)
        first_out.set()

    def second():
        first_in.wait(5)
        with scratch.small_pages():
            second_in.set()
            first_out.wait(5)  # the first block has left; this one is still inside
            seen.append(get())

    put(True)
    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
        assert not t.is_alive()
    assert seen == [False]  # still off while a block is inside
    assert get() is True  # and back on once both have left


def test_a_solve_runs_with_small_pages_and_leaves_the_setting_as_it_was(monkeypatch, advice):
    get, put = advice
    put(True)  # on before, so that "off inside" shows the switch
    seen = []
    engine = SeededWatershedEngine()
    solve = engine._solve
    monkeypatch.setattr(engine, "_solve", lambda *a: seen.append(get()) or solve(*a))
    s = Session(engine)
    s.set_image(np.where(sphere((32, 32, 32), (16, 16, 16), 8), 100.0, 10.0).astype(np.float32))
    s.add_point((16, 16, 16))
    assert seen == [False] and get() is True and s.mask.any()
