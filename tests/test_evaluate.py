"""Tests of mdxmix.evaluate: metrics, ensembles, baselines, reports, the eval command."""

from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from mdxmix.evaluate import command as cmd
from mdxmix.evaluate.dataset import EstimatesFolder, EvaluationError
from mdxmix.evaluate.metrics import (
    EPS,
    frame_median,
    framewise_sdr,
    framewise_sdr_museval,
    global_sdr,
    n_frames,
    track_median,
)
from mdxmix.evaluate.report import Results, best_per_column, rich_tables, to_csv, to_markdown
from mdxmix.evaluate.runner import build_baseline_systems, score_systems, select_per_source_best
from mdxmix.mixer.ensembles import RULES, ensemble, per_source_best
from mdxmix.musdb import DatasetError, MusdbSplit
from mdxmix.stems import SAMPLE_RATE, STEMS

SR = SAMPLE_RATE


def _signal(seed: int, seconds: float = 2.0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (0.1 * rng.standard_normal((int(seconds * SR), 2))).astype(np.float32)


# --- metrics -------------------------------------------------------------------------


def test_perfect_estimate_is_very_large_and_finite() -> None:
    s = _signal(0)
    g = global_sdr(s, s)
    assert math.isfinite(g) and g > 100.0
    frames = framewise_sdr({"vocals": s}, {"vocals": s.copy()})["vocals"]
    assert np.all(np.isfinite(frames)) and np.all(frames > 80.0)


def test_half_scaled_estimate_matches_closed_form() -> None:
    s = _signal(1)
    energy = float(np.sum(s.astype(np.float64) ** 2))
    expected = 10 * math.log10((energy + EPS) / (0.25 * energy + EPS))  # ≈ 6.0206 dB
    assert global_sdr(s, 0.5 * s) == pytest.approx(expected, abs=1e-6)
    assert expected == pytest.approx(20 * math.log10(2), abs=1e-6)
    frames = framewise_sdr({"bass": s}, {"bass": 0.5 * s})["bass"]
    assert frames == pytest.approx(np.full(2, 20 * math.log10(2)), abs=1e-6)


@pytest.mark.parametrize("snr_db", [-5.0, 0.0, 10.0, 30.0])
def test_noise_at_known_snr(snr_db: float) -> None:
    s = _signal(2, seconds=3.0)
    noise = np.random.default_rng(3).standard_normal(s.shape)
    sigma = math.sqrt(np.mean(s.astype(np.float64) ** 2) / 10 ** (snr_db / 10))
    est = s + sigma * noise
    assert global_sdr(s, est) == pytest.approx(snr_db, abs=0.1)
    fr = framewise_sdr({"other": s}, {"other": est})["other"]
    assert frame_median(fr) == pytest.approx(snr_db, abs=0.1)


def test_framing_and_silence_follow_museval() -> None:
    # 2.5 s → the trailing half frame is dropped; shorter than 1 s → one frame.
    assert n_frames(int(2.5 * SR)) == 2 and n_frames(SR // 2) == 1
    a, b = _signal(4, 3.0), _signal(5, 3.0)
    b[SR : 2 * SR] = 0.0  # reference of "bass" silent in frame 1
    frames = framewise_sdr({"drums": a, "bass": b}, {"drums": a * 0.5, "bass": b * 0.5 + _signal(6, 3.0)})
    # the silent frame is NaN for every jointly evaluated stem, and dropped by the median
    assert np.isnan(frames["drums"][1]) and np.isnan(frames["bass"][1])
    assert frame_median(frames["drums"]) == pytest.approx(20 * math.log10(2), abs=1e-6)
    assert math.isnan(track_median([math.nan])) and track_median([1.0, math.nan, 3.0]) == 2.0


def test_estimate_length_is_padded_or_truncated() -> None:
    s = _signal(7)
    short = s[:-100]
    expected = 10 * math.log10((np.sum(s.astype(np.float64) ** 2) + EPS) / (np.sum(s[-100:].astype(np.float64) ** 2) + EPS))
    assert global_sdr(s, short) == pytest.approx(expected, abs=1e-6)
    assert global_sdr(s, np.concatenate([s, s[:50]])) > 100.0


@pytest.mark.skipif(importlib.util.find_spec("museval") is None, reason="museval not installed")
def test_agrees_with_museval_on_short_signal() -> None:
    rng = np.random.default_rng(8)
    n = int(3.3 * SR)
    refs = {s: (0.1 * rng.standard_normal((n, 2))).astype(np.float32) for s in STEMS}
    refs["vocals"][: SR // 2] = 0.0  # a silent stretch → NaN frame in both
    ests = {s: refs[s] + (0.05 * (i + 1) * rng.standard_normal((n, 2))).astype(np.float32) for i, s in enumerate(STEMS)}
    ests["bass"] = np.roll(ests["bass"], 3, axis=0)  # a small delay the filters cannot hide
    ours = framewise_sdr(refs, ests)
    theirs = framewise_sdr_museval(refs, ests)
    for s in STEMS:
        assert np.array_equal(np.isnan(ours[s]), np.isnan(theirs[s]))
        assert np.nanmax(np.abs(ours[s] - theirs[s])) < 1e-6
        assert frame_median(ours[s]) == pytest.approx(frame_median(theirs[s]), abs=0.05)


# --- ensembles -----------------------------------------------------------------------


def test_waveform_rules_exact() -> None:
    a = np.array([[1.0], [-3.0], [2.0]])
    b = np.array([[-2.0], [1.0], [-1.0]])
    c = np.array([[0.5], [2.0], [4.0]])
    est = [a, b, c]
    np.testing.assert_array_equal(ensemble(est, "wave_avg"), np.array([[-0.5 / 3], [0.0], [5.0 / 3]]))
    np.testing.assert_array_equal(ensemble(est, "wave_median"), np.array([[0.5], [1.0], [2.0]]))
    # min/max by absolute value, sign kept (MSST / audio-separator min_wave, max_wave)
    np.testing.assert_array_equal(ensemble(est, "wave_min"), np.array([[0.5], [1.0], [-1.0]]))
    np.testing.assert_array_equal(ensemble(est, "wave_max"), np.array([[-2.0], [-3.0], [4.0]]))


@pytest.mark.parametrize(
    ("rule", "gain"),
    [
        ("spec_avg_avg", 5 / 3), ("spec_median_avg", 1.0), ("spec_min_avg", 1.0), ("spec_max_avg", 3.0),
        ("spec_avg_mix", -5 / 3), ("spec_median_mix", -1.0), ("spec_min_mix", -1.0), ("spec_max_mix", -3.0),
        ("spec_min_own", 1.0), ("spec_max_own", 3.0),
    ],
)
def test_spectrogram_rules_exact(rule: str, gain: float) -> None:
    # Estimates x, −x, 3x: magnitudes |X|, |X|, 3|X|; averaged complex spectrum = X (phase
    # of x); the mixture −x has the opposite phase; "own" picks the first minimal bin (x).
    x = _signal(9, 1.0).astype(np.float64)
    out = ensemble([x, -x, 3 * x], rule, mixture=-x)
    assert out.shape == x.shape
    np.testing.assert_allclose(out, gain * x, atol=1e-5 * np.abs(x).max() * 3)


def test_median_of_an_even_count_is_the_mean_of_the_middles() -> None:
    x = _signal(12, 0.5).astype(np.float64)
    np.testing.assert_allclose(ensemble([x, 3 * x], "wave_median"), 2 * x)
    np.testing.assert_allclose(ensemble([x, 3 * x], "spec_median_avg"), 2 * x, atol=1e-5)


def test_every_rule_runs_and_rejects_bad_input() -> None:
    x = _signal(10, 0.5)
    for rule in RULES:
        assert ensemble([x, x], rule, mixture=x).shape == x.shape
    with pytest.raises(ValueError):
        ensemble([x], "spec_avg_mix")  # needs the mixture
    with pytest.raises(ValueError):
        ensemble([x, x[:-1]], "wave_avg")
    with pytest.raises(ValueError):
        ensemble([x], "vote")


def test_per_source_best_picks_the_right_upstream() -> None:
    validation = {
        "demucs": {"drums": 7.0, "bass": 6.0, "other": 4.0, "vocals": 7.5},
        "umx": {"drums": 6.0, "bass": 6.5, "other": float("nan"), "vocals": 7.5},
        "mdx": {"drums": 5.0, "bass": 5.0, "other": 4.5},
    }
    # vocals tie → first listed; NaN can never win; a stem absent from an upstream is skipped
    assert per_source_best(validation, STEMS) == {"drums": "demucs", "bass": "umx", "other": "mdx", "vocals": "demucs"}


# --- datasets, runner, end to end ----------------------------------------------------


def _write_dataset(root: Path, rng: np.random.Generator) -> dict[str, dict[str, np.ndarray]]:
    """Three 3-s tracks (test) and two (valid); upstream "good" is better on all stems but
    bass, where "bassy" wins; "bassy" has no vocals."""
    refs_test = {}
    for split, tracks in (("test", ["t1", "t2", "t3"]), ("valid", ["v1", "v2"])):
        for track in tracks:
            refs = {s: (0.1 * rng.standard_normal((3 * SR, 2))).astype(np.float32) for s in STEMS}
            folder = root / "data" / split / track
            folder.mkdir(parents=True)
            for s, x in refs.items():
                sf.write(folder / f"{s}.wav", x, SR, subtype="FLOAT")
            sf.write(folder / "mixture.wav", sum(refs.values()), SR, subtype="FLOAT")
            for name, noise in (("good", {"bass": 0.1}), ("bassy", {"bass": 0.01})):
                out = root / name / track
                out.mkdir(parents=True)
                for s, x in refs.items():
                    if name == "bassy" and s == "vocals":
                        continue
                    level = noise.get(s, 0.05 if name == "good" else 0.2)
                    sf.write(out / f"{s}.wav", x + (level * rng.standard_normal(x.shape)).astype(np.float32), SR, subtype="FLOAT")
            if split == "test":
                refs_test[track] = refs
    return refs_test


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    root = tmp_path_factory.mktemp("evalset")
    refs = _write_dataset(root, np.random.default_rng(11))
    return root, refs


def test_score_folders_parallel_matches_serial_and_direct(dataset: tuple[Path, dict]) -> None:
    root, refs = dataset
    split = MusdbSplit(root / "data", "test")
    systems = {"good": root / "good", "bassy": EstimatesFolder(root / "bassy")}
    serial = score_systems(split, systems, split.tracks(), jobs=1, progress=False)
    parallel = score_systems(split, systems, split.tracks(), jobs=2, progress=False)
    assert serial.scores == parallel.scores
    est = sf.read(root / "good" / "t2" / "bass.wav", dtype="float32")[0]
    assert serial.scores["good"]["t2"]["bass"]["global"] == pytest.approx(global_sdr(refs["t2"]["bass"], est), abs=1e-9)
    assert "vocals" not in serial.scores["bassy"]["t1"]
    assert serial.stems_of("bassy") == ["drums", "bass", "other"]


def test_baselines_from_upstreams(dataset: tuple[Path, dict]) -> None:
    root, _ = dataset
    ups = {"good": root / "good", "bassy": root / "bassy"}
    valid = MusdbSplit(root / "data", "valid")
    choice, _ = select_per_source_best(valid, ups, valid.tracks(), metric="museval", jobs=1, progress=False)
    assert choice == {"drums": "good", "bass": "bassy", "other": "good", "vocals": "good"}
    test = MusdbSplit(root / "data", "test")
    systems = build_baseline_systems(ups, mixture=test.mixture, per_source_choice=choice, rules=("wave_avg", "spec_max_mix"))
    assert list(systems) == ["good", "bassy", "ensemble:wave_avg", "ensemble:spec_max_mix", "per-source best"]
    res = score_systems(test, systems, test.tracks(), metrics=("global",), jobs=1, progress=False)
    best = res.aggregate("global")
    for stem, name in choice.items():
        assert best["per-source best"][stem] == pytest.approx(best[name][stem])
    # vocals only from "good": the average ensemble of one estimate is that estimate
    assert best["ensemble:wave_avg"]["vocals"] == pytest.approx(best["good"]["vocals"])


def test_missing_folders_and_tracks_are_user_errors(dataset: tuple[Path, dict], tmp_path: Path) -> None:
    root, _ = dataset
    with pytest.raises(DatasetError, match="split folder not found"):
        MusdbSplit(root / "data", "train")
    partial = tmp_path / "partial"
    (partial / "t1").mkdir(parents=True)
    with pytest.raises(EvaluationError, match="'t2' missing from estimates folder"):
        EstimatesFolder(partial).check_tracks(["t1", "t2", "t3"])


# --- report --------------------------------------------------------------------------


def _toy_results() -> Results:
    res = Results(metrics=("museval", "global"))
    vals = {"A": (5.0, 6.0, 3.0, 7.0), "B": (6.0, 5.0, 3.0, None)}
    for sys_name, v in vals.items():
        for track, offset in (("x", 0.0), ("y", 1.0)):
            res.add(sys_name, track, {s: {"museval": val + offset, "global": val + 2 * offset} for s, val in zip(STEMS, v) if val is not None})
    return res


def test_table_marks_best_per_column() -> None:
    res = _toy_results()
    summary = res.aggregate("museval")
    assert summary["A"]["average"] == pytest.approx((5.5 + 6.5 + 3.5 + 7.5) / 4)
    assert summary["B"]["average"] == pytest.approx((6.5 + 5.5 + 3.5) / 3)  # over its 3 stems
    best = best_per_column(summary)
    assert best == {"drums": {"B"}, "bass": {"A"}, "other": {"A", "B"}, "vocals": {"A"}, "average": {"A"}}
    md = to_markdown(res)
    assert "| A | 5.50 | **6.50** | **3.50** | **7.50** | **5.75** |" in md
    assert "| B | **6.50** | 5.50 | **3.50** | – | 5.17 |" in md
    assert "average of B is over its other stems only" in md
    table = rich_tables(res)[0]
    drums_cells = list(table.columns[1].cells)
    assert drums_cells == ["5.50", "[bold]6.50[/bold]"]
    assert list(table.columns[4].cells) == ["[bold]7.50[/bold]", "–"]


def test_csv_has_one_row_per_system_track_stem() -> None:
    rows = to_csv(_toy_results()).strip().splitlines()
    assert rows[0] == "system,track,stem,sdr_museval,sdr_global"
    assert len(rows) - 1 == 2 * 4 + 2 * 3
    assert "B,y,drums,7.0,8.0" in rows


# --- command -------------------------------------------------------------------------


def _app():
    import typer

    app = typer.Typer()
    app.command("eval")(cmd.eval_command)

    @app.command("other")
    def _other() -> None:  # a second command so "eval" stays a subcommand
        pass

    return app


def test_eval_command_end_to_end(dataset: tuple[Path, dict], tmp_path: Path) -> None:
    from typer.testing import CliRunner

    root, refs = dataset
    out = tmp_path / "out"
    runner = CliRunner()
    res = runner.invoke(
        _app(),
        ["eval", "--data", str(root / "data"), "--estimates", f"mine={root / 'good'}", "--estimates", str(root / "bassy"),
         "--metric", "global", "--jobs", "1", "--out", str(out), "--json"],
    )
    assert res.exit_code == 0, res.output
    data = json.loads(res.stdout)
    assert data["systems"] == ["mine", "bassy"] and data["tracks"] == ["t1", "t2", "t3"]
    est = sf.read(root / "good" / "t3" / "drums.wav", dtype="float32")[0]
    assert data["per_track"]["mine"]["t3"]["drums"]["global"] == pytest.approx(global_sdr(refs["t3"]["drums"], est), abs=1e-9)
    assert "vocals" not in data["summary"]["global"]["bassy"]
    assert {p.name for p in out.iterdir()} == {"results.md", "results.csv", "results.json"}
    assert len((out / "results.csv").read_text().strip().splitlines()) == 1 + 3 * 4 + 3 * 3


@pytest.mark.skipif(importlib.util.find_spec("matplotlib") is None, reason="matplotlib not installed")
def test_plot_may_go_into_the_out_folder_before_it_exists(dataset: tuple[Path, dict], tmp_path: Path) -> None:
    """The help's own example, ``--out results/ --plot results/sdr.png``, on a fresh folder."""
    from typer.testing import CliRunner

    root, _ = dataset
    out = tmp_path / "results" / "run1"
    res = CliRunner().invoke(
        _app(),
        ["eval", "--data", str(root / "data"), "--estimates", f"mine={root / 'good'}", "--metric", "global",
         "--jobs", "1", "--out", str(out), "--plot", str(out / "sdr.png"), "--json"],
    )
    assert res.exit_code == 0, res.output
    assert {p.name for p in out.iterdir()} == {"results.md", "results.csv", "results.json", "sdr.png"}
    assert (out / "sdr.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_eval_command_user_errors_have_no_traceback(dataset: tuple[Path, dict], tmp_path: Path, capsys) -> None:
    """The command raises; `mdxmix.cli.main` prints one line and returns the exit code."""
    from mdxmix.cli import main

    root, _ = dataset
    partial = tmp_path / "partial"
    (partial / "t1").mkdir(parents=True)
    assert main(["eval", "--data", str(root / "data"), "--estimates", str(partial)]) == 1
    err = capsys.readouterr().err
    assert "error: track 't2' missing from estimates folder" in err and "Traceback" not in err
    assert main(["eval", "--data", str(root / "data"), "--checkpoint", "mdx-mixer-small"]) == 1
    assert "unknown checkpoint 'mdx-mixer-small'" in capsys.readouterr().err
    assert main(["eval", "--data", str(tmp_path / "nope"), "--estimates", str(partial)]) == 1
    assert "data folder not found" in capsys.readouterr().err
    assert main(["eval", "--data", str(root / "data"), "--metric", "loud"]) == 2
    assert "must be global, museval or both" in capsys.readouterr().err
    assert main(["eval", "--help"]) == 0
    help_text = capsys.readouterr().out
    assert "Score separated stems" in help_text and "mdxmix eval --data" in help_text  # the epilog's examples


@pytest.mark.skipif(importlib.util.find_spec("matplotlib") is None, reason="matplotlib not installed")
def test_plot_writes_png(tmp_path: Path) -> None:
    from mdxmix.evaluate.plot import plot_boxes

    path = plot_boxes(_toy_results(), tmp_path / "sdr.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


class _Recorded:
    """An estimates folder under a fixed identity that records the tracks it is asked for and can fail on one."""

    def __init__(self, folder: Path, identity: str, fail_on: str | None = None) -> None:
        self.folder, self.identity, self.fail_on, self.asked = EstimatesFolder(folder), identity, fail_on, []

    def __call__(self, track: str) -> dict:
        if track == self.fail_on:
            raise KeyboardInterrupt  # the run is stopped while this track is scored
        self.asked.append(track)
        return self.folder(track)

    def fingerprint(self) -> str:
        return self.identity


def test_a_stopped_evaluation_continues_from_its_journal_with_the_same_scores(dataset, tmp_path: Path) -> None:
    root, _ = dataset
    split = MusdbSplit(root / "data", "test")
    whole = score_systems(split, {"good": root / "good"}, split.tracks(), metrics=("global",), jobs=1, progress=False)

    def run(source: _Recorded):
        return score_systems(split, {"good": source}, split.tracks(), metrics=("global",), jobs=1, progress=False,
                             journal_dir=tmp_path)

    with pytest.raises(KeyboardInterrupt):
        run(_Recorded(root / "good", "v1", fail_on="t3"))
    (journal,) = tmp_path.glob(".eval-journal-*.jsonl")
    with open(journal, "a") as handle:
        handle.write('{"track": "t3", "scor')  # a line torn by a kill mid-write
    again = _Recorded(root / "good", "v1")
    resumed = run(again)
    assert again.asked == ["t3"] and resumed.scores == whole.scores
    assert any("2 of 3 tracks" in note for note in resumed.notes)
    assert run(_Recorded(root / "good", "v1", fail_on="t1")).scores == whole.scores  # all three kept now
    changed = _Recorded(root / "good", "v2")  # another model under the same name: nothing is reused
    run(changed)
    assert changed.asked == ["t1", "t2", "t3"]
