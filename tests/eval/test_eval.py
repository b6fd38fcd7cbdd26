"""Simulated users: generators, corrections, agents, metrics, runner, CLI and exact replay."""

import csv

import numpy as np
import pytest
from scipy import ndimage

from napari_nninteractive.cli.eval import main as eval_main
from napari_nninteractive.core.engines.base import Engine
from napari_nninteractive.core.engines.network import NetworkEngine
from napari_nninteractive.core.geometry import bbox_to_slices
from napari_nninteractive.core.prompts import Box, Lasso, Point, PromptKind, Scribble
from napari_nninteractive.core.session import Session
from napari_nninteractive.eval import simulate as sim
from napari_nninteractive.eval.agents import RandomAgent, SunkCostAgent, make_agent
from napari_nninteractive.eval.runner import dice, evaluate, normalized_auc
from napari_nninteractive.io.volumes import read_volume

from ..conftest import DATA_DIR, sphere, sphere_image

SHAPE = (40, 50, 60)
CENTRE = (20, 25, 30)


@pytest.fixture
def ball():
    return sphere(SHAPE, CENTRE, 8)


def _full(prompt, shape=SHAPE):
    out = np.zeros(shape, bool)
    out[bbox_to_slices(prompt.bbox)] = prompt.mask
    return out


# ----------------------------------------------------------------------------- initial prompts


def test_point_is_inside_at_maximal_depth(ball):
    p = sim.point_prompt(ball)
    assert p.coord == CENTRE and p.positive
    blob = np.zeros(SHAPE, bool)
    blob[5:15, 10:40, 20:26] = True  # 10 x 30 x 6 box: largest slice is along axis 2 (10 x 30)
    q = sim.point_prompt(blob)
    assert blob[q.coord]
    plane = blob[:, :, q.coord[2]]
    depth = ndimage.distance_transform_edt(np.pad(plane, 1))[1:-1, 1:-1]
    assert depth[q.coord[0], q.coord[1]] == depth.max() == 5


def test_random_and_volume_points_are_inside(ball):
    rng = np.random.default_rng(3)
    assert all(ball[sim.point_prompt(ball, rng=rng, depth="random").coord] for _ in range(20))
    assert sim.point_prompt(ball, depth="volume").coord == CENTRE


def test_box_is_tight_on_the_largest_slice(ball):
    box = sim.box_prompt(ball)
    assert box.bbox == ((20, 21), (17, 34), (22, 39))
    jittered = sim.box_prompt(ball, rng=np.random.default_rng(0), jitter=2)
    assert jittered.bbox[0] == (20, 21)
    assert all(abs(a - b) <= 2 for pa, pb in zip(jittered.bbox[1:], box.bbox[1:]) for a, b in zip(pa, pb))


def test_scribble_is_thin_inside_and_on_one_slice(ball):
    s = sim.scribble_prompt(ball)
    assert isinstance(s, Scribble)
    assert s.bbox[0] == (20, 21)
    full = _full(s)
    assert full.any() and not (full & ~ball).any()  # strict cue: all inside
    assert full.sum() < ball[20].sum() / 3  # a curve, not the cross-section


def test_lasso_encloses_the_slice_and_is_filled(ball):
    lasso = sim.lasso_prompt(ball, margin=2)
    assert isinstance(lasso, Lasso) and lasso.bbox[0] == (20, 21)
    full = _full(lasso)
    assert (full[20] >= ball[20]).all()  # the whole cross-section is inside the lasso
    assert full[20].sum() > ball[20].sum()  # loose: spills over by the margin
    assert np.array_equal(ndimage.binary_fill_holes(full[20]), full[20])


# ----------------------------------------------------------------------------- corrections


def test_negative_correction_lands_in_false_positives(ball):
    pred = ball.copy()
    pred[2:6, 2:6, 2:6] = True  # only FP errors -> p(negative) = 1
    rng = np.random.default_rng(0)
    for kind in sim.KINDS:
        prompt = sim.correction(kind, ball, pred, rng)
        assert not prompt.positive
        if isinstance(prompt, Point):
            assert pred[prompt.coord] and not ball[prompt.coord]
        elif isinstance(prompt, Scribble):
            full = _full(prompt)
            assert not (full & ball).any() and (full & pred).any()
        elif isinstance(prompt, Box):
            assert prompt.bbox == ((2, 3), (2, 6), (2, 6))  # tight box of the FP block's first slice
        else:
            assert (_full(prompt)[2] >= pred[2] & ~ball[2]).all()  # the lasso encloses the FP slice


def test_positive_correction_targets_the_largest_false_negative_component(ball):
    ref = ball.copy()
    ref[30:36, 40:46, 40:46] = True  # 216-voxel second component
    ref[2:4, 2:4, 2:4] = True  # 8-voxel third component
    pred = np.zeros(SHAPE, bool)  # everything is a false negative
    pred[ball] = True  # the ball is found: FN = the two small blocks
    p = sim.correction(PromptKind.POINT, ref, pred, np.random.default_rng(0))
    assert p.positive and 30 <= p.coord[0] < 36 and 40 <= p.coord[1] < 46
    assert sim.correction(PromptKind.POINT, ref, ref, np.random.default_rng(0)) is None


def test_correction_sign_probability_follows_error_sizes(ball):
    pred = ball.copy()
    pred[ball & (np.indices(SHAPE)[2] < 30)] = False  # FN: half the ball
    pred[0:4, 0:10, 0:10] = True  # FP: 400 voxels
    n_fp, n_fn = 400, int((ball & ~pred).sum())
    rng = np.random.default_rng(1)
    signs = [sim.correction(PromptKind.POINT, ball, pred, rng).positive for _ in range(400)]
    assert np.mean(~np.array(signs)) == pytest.approx(n_fp / (n_fp + n_fn), abs=0.08)


# ----------------------------------------------------------------------------- agents and metrics


def test_dice_and_auc():
    a = np.zeros((4, 4, 4), bool)
    b = a.copy()
    a[0, 0, :2] = True
    b[0, 0, 1:3] = True
    assert dice(a, b) == 0.5 and dice(a, a) == 1.0 and dice(np.zeros(3), np.zeros(3)) == 1.0
    assert normalized_auc([0.0, 1.0]) == 0.5
    assert normalized_auc([0.5, 0.5, 1.0, 1.0]) == pytest.approx((0.5 + 0.75 + 1.0) / 3)
    assert normalized_auc([0.7]) == 0.7


def test_agents():
    rng = np.random.default_rng(0)
    assert {make_agent("box").choose(k, [], rng) for k in range(5)} == {PromptKind.BBOX}
    picks = {RandomAgent().choose(k, [], rng) for k in range(60)}
    assert picks == set(sim.KINDS)
    agent = SunkCostAgent(min_gain=0.01)
    agent.reset(rng)
    first = agent.choose(0, [], rng)
    assert agent.choose(1, [0.5], rng) == first
    assert agent.choose(2, [0.5, 0.7], rng) == first  # improved: keep
    assert agent.choose(3, [0.5, 0.7, 0.705], rng) != first  # stalled: switch
    with pytest.raises(ValueError, match="unknown agent"):
        make_agent("telepath")


# ----------------------------------------------------------------------------- runner


class OracleEngine(Engine):
    """Returns the reference object whatever the prompts: an upper bound for the protocol."""

    name = "oracle"

    def __init__(self, labels):
        self.labels = labels

    def set_image(self, image):
        pass

    def _record(self, prompt):
        self.last = prompt

    def clear_prompts(self):
        pass

    def get_state(self):
        return None

    def set_state(self, state):
        pass

    def _predict(self, mask, new, control):
        p = new[-1]
        if isinstance(p, Point):
            value = self.labels[p.coord]
        else:  # the object most of the prompt's voxels fall on
            under = (
                self.labels[bbox_to_slices(p.bbox)]
                if isinstance(p, Box)
                else self.labels[bbox_to_slices(p.bbox)][p.mask]
            )
            under = under[under > 0]
            value = np.bincount(under.ravel()).argmax() if under.size else 0
        return [(tuple((0, n) for n in mask.shape), (self.labels == value).astype(np.uint8))]


def _two_objects():
    labels = np.zeros(SHAPE, np.uint8)
    labels[sphere(SHAPE, CENTRE, 8)] = 3
    labels[sphere(SHAPE, (10, 10, 10), 5)] = 7
    return labels


def test_perfect_oracle_reaches_dice_one_and_auc_one():
    labels = _two_objects()
    session = Session(OracleEngine(labels))
    session.set_image(labels.astype(np.float32) + 1)
    runs = evaluate(session, labels, ["random", "point", "scribble", "lasso"], n_interactions=3, seed=0)
    assert len(runs) == 8
    for run in runs:
        assert run.dices == [1.0] * 4 and run.auc == 1.0
        assert [s.kind for s in run.steps[1:]] == [None] * 3  # nothing left to correct


@pytest.mark.slow
def test_same_seed_same_run_and_labels_filter(tiny_model_dir):
    labels = _two_objects()
    image = sphere_image(SHAPE, CENTRE, 8) + np.random.default_rng(0).normal(0, 5, SHAPE).astype(np.float32)
    results = []
    for _ in range(2):
        session = Session(NetworkEngine.from_folder(tiny_model_dir, device="cpu", autozoom=False))
        session.set_image(image)
        runs = evaluate(session, labels, ["random", "sunk-cost"], n_interactions=3, seed=5, wanted=[3])
        results.append(
            [(r.agent, r.label, r.dices, [s.kind for s in r.steps], [s.positive for s in r.steps]) for r in runs]
        )
    assert results[0] == results[1]
    assert [r[:2] for r in results[0]] == [("random", 3), ("sunk-cost", 3)]
    with pytest.raises(ValueError, match="do not occur"):
        evaluate(session, labels, ["random"], wanted=[9])


# ----------------------------------------------------------------------------- CLI and replay


def _nii(path, array):
    import nibabel as nib

    nib.save(nib.Nifti1Image(array, np.eye(4)), str(path))


@pytest.mark.slow
def test_cli_writes_csv_table_plot_and_replayable_prompt_logs(tmp_path, tiny_model_dir, capsys):
    from napari_nninteractive.cli.segment import main as segment_main

    labels = _two_objects()
    image = sphere_image(SHAPE, CENTRE, 8) + np.random.default_rng(0).normal(0, 5, SHAPE).astype(np.float32)
    _nii(tmp_path / "img.nii.gz", image)
    _nii(tmp_path / "lab.nii.gz", labels)
    out = tmp_path / "res"
    code = eval_main(
        [
            str(tmp_path / "img.nii.gz"),
            str(tmp_path / "lab.nii.gz"),
            "--model",
            str(tiny_model_dir),
            "--agent",
            "random,lasso",
            "--interactions",
            "2",
            "--out",
            str(out),
            "--device",
            "cpu",
            "--no-autozoom",
        ]
    )
    captured = capsys.readouterr()
    assert code == 0, captured.err
    rows = list(csv.DictReader((out / "results.csv").open()))
    assert len(rows) == 2 * 2 * 3  # agents x labels x (N + 1)
    assert {r["agent"] for r in rows} == {"random", "lasso"} and {r["label"] for r in rows} == {"3", "7"}
    assert "mean" in captured.out and "AUC" in (out / "summary.txt").read_text()
    assert (out / "dice.png").read_bytes()[:4] == b"\x89PNG"
    assert "4/4 objects" in captured.err

    # replay one object's prompt log through nninteractive-segment: same Dice after every step
    log = out / "prompts" / "random_label3.json"
    steps = tmp_path / "steps.npz"
    assert (
        segment_main(
            [
                str(tmp_path / "img.nii.gz"),
                "--prompts",
                str(log),
                "--model",
                str(tiny_model_dir),
                "-o",
                str(tmp_path / "m.nii.gz"),
                "--device",
                "cpu",
                "--no-autozoom",
                "--save-steps",
                str(steps),
            ]
        )
        == 0
    )
    recorded = [float(r["dice"]) for r in rows if r["agent"] == "random" and r["label"] == "3" and r["prompt"]]
    replayed = [dice(m, labels == 3) for m in (np.load(steps)[k] for k in sorted(np.load(steps).files))]
    assert replayed == pytest.approx(recorded, abs=1e-6)


def test_cli_errors_are_one_line(tmp_path, tiny_model_dir, capsys):
    _nii(tmp_path / "img.nii.gz", np.ones((8, 8, 8), np.float32))
    _nii(tmp_path / "lab.nii.gz", np.ones((8, 8, 9), np.uint8))
    code = eval_main([str(tmp_path / "img.nii.gz"), str(tmp_path / "lab.nii.gz"), "--model", str(tiny_model_dir)])
    assert code == 2 and "same grid" in capsys.readouterr().err
    code = eval_main(
        [
            str(tmp_path / "img.nii.gz"),
            str(tmp_path / "lab.nii.gz"),
            "--model",
            str(tiny_model_dir),
            "--agent",
            "psychic",
        ]
    )
    assert code == 2 and "unknown agent" in capsys.readouterr().err


CT = DATA_DIR / "tptbox" / "sub-ct_label-22_ct.nii.gz"
VERT = DATA_DIR / "tptbox" / "sub-ct_seg-vert_label-22_msk.nii.gz"


@pytest.mark.skipif(not CT.exists(), reason=f"shared data not found at {CT} (set NNINTERACTIVE_TEST_DATA)")
def test_cli_on_real_ct_vertebrae(tmp_path, tiny_model_dir, capsys):
    out = tmp_path / "res"
    code = eval_main(
        [
            str(CT),
            str(VERT),
            "--labels",
            "21,22",
            "--model",
            str(tiny_model_dir),
            "--agent",
            "point",
            "--interactions",
            "2",
            "--out",
            str(out),
            "--device",
            "cpu",
            "--no-autozoom",
        ]
    )
    assert code == 0, capsys.readouterr().err
    rows = list(csv.DictReader((out / "results.csv").open()))
    assert len(rows) == 6 and all(0.0 <= float(r["dice"]) <= 1.0 for r in rows)
    assert (out / "dice.png").exists() and (out / "summary.txt").exists()
    assert np.asarray(read_volume(VERT).array).shape == np.asarray(read_volume(CT).array).shape


def test_summary_table_columns_line_up_whatever_the_name_lengths():
    from napari_nninteractive.eval.report import summary_table
    from napari_nninteractive.eval.runner import ObjectRun, Step

    def run(engine, agent, label, d):
        steps = [Step(k, "point", True, v, 0.25, 1) for k, v in enumerate(d)]
        return ObjectRun("img", label, agent, engine, steps)

    runs = [
        run("weight-free (seeded watershed)", "random", 1, [0.5, 0.9]),
        run("weight-free (seeded watershed)", "random", 12, [0.25, 1.0]),
        run("net", "sunk-cost", 3, [0.1, 0.2]),
    ]
    lines = summary_table(runs).splitlines()
    rows = [line for line in lines[2:] if line]
    assert len(rows) == 5 and lines[1] == "-" * len(lines[0])
    # Every column ends where its heading ends (numbers right-aligned), whatever the names' lengths.
    for name in ("label", "D@0", "D@1", "AUC", "s/int", "passes"):
        end = lines[0].index(name) + len(name)
        assert all(row[end - 1] != " " and (end == len(row) or row[end] == " ") for row in rows), name
    assert all(len(row) == len(lines[0]) for row in rows)
    assert lines[0].index("agent") == rows[0].index("random") == rows[-1].index("sunk-cost")


def test_drop_share_counts_rounds_that_lose_more_than_005_in_the_table():
    from napari_nninteractive.eval.report import summary_table
    from napari_nninteractive.eval.runner import ObjectRun, Step, count_drops, drop_share

    def run(label, d):
        return ObjectRun("img", label, "point", "eng", [Step(k, "point", True, v, 0.1, 1) for k, v in enumerate(d)])

    runs = [run(1, [0.5, 0.9, 0.8, 0.84]), run(2, [0.5, 0.46])]  # 0.1 lost is a drop, 0.04 is not
    assert count_drops(runs[0].dices) == 1 and count_drops(runs[1].dices) == 0
    assert drop_share(runs) == 0.25 and runs[0].drop_share == pytest.approx(1 / 3)
    lines = summary_table([runs[0]]).splitlines()
    col = lines[0].split().index("drops")
    assert [line.split()[col] for line in lines[2:] if line] == ["0.33", "0.33"]


def test_cli_fusion_names_the_engine_with_mrf_and_reports_drops(tmp_path, capsys):
    shape = (24, 32, 32)
    labels = sphere(shape, (12, 16, 16), 7).astype(np.uint8)
    image = np.where(labels, 120.0, 30.0).astype(np.float32) + np.random.default_rng(0).normal(0, 5, shape).astype(
        np.float32
    )
    np.save(tmp_path / "img.npy", image)
    np.save(tmp_path / "lab.npy", labels)
    argv = [str(tmp_path / "img.npy"), str(tmp_path / "lab.npy"), "--agent", "point", "--interactions", "2"]
    assert eval_main([*argv, "--fusion", "--out", str(tmp_path / "on")]) == 0
    table = (tmp_path / "on" / "summary.txt").read_text()
    assert "weight-free (seeded watershed) + MRF" in table and "drops" in table.splitlines()[0]
    assert eval_main([*argv, "--out", str(tmp_path / "off")]) == 0
    assert "MRF" not in (tmp_path / "off" / "summary.txt").read_text()
