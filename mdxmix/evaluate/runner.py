"""Score many systems on many tracks, in parallel over tracks.

A *system* is anything that returns the estimates of a track: a callable
``track -> {stem: (samples, channels) array}`` — a folder (:class:`EstimatesFolder`), the
core's upstream cache, a checkpoint run, or one of the baseline wrappers below. With
``jobs > 1`` systems and references are pickled to worker processes, so they must be
picklable objects (module-level classes / ``functools.partial``), not lambdas or closures.

Each worker takes one track, loads its references once, and scores every system on it,
so an upstream shared by many ensemble rules is read once per track (:class:`Memo`).
"""

from __future__ import annotations

import itertools
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Union

import numpy as np

from ..mixer.ensembles import RULES, ensemble, per_source_best
from ..stems import STEMS
from .dataset import EstimatesFolder
from .journal import ScoreJournal, fingerprint, folder_stamp
from .metrics import score_track, silent_estimates
from .report import Results

Stems = Mapping[str, np.ndarray]
EstimateSource = Callable[[str], Stems]
SystemSpec = Union[EstimateSource, str, Path]
References = Union[Mapping[str, Stems], Callable[[str], Stems]]


class Memo:
    """Remember the last track a source returned (per process; not pickled).

    Baselines built from the same upstream ask for the same track many times in a row;
    keeping one track bounds memory while avoiding repeated reads.
    """

    def __init__(self, source: EstimateSource) -> None:
        self.source = source
        self._track: str | None = None
        self._stems: Stems | None = None

    def __call__(self, track: str) -> Stems:
        if self._track != track:
            self._stems = self.source(track)
            self._track = track
        assert self._stems is not None
        return self._stems

    def __getstate__(self) -> dict:
        return {"source": self.source, "_track": None, "_stems": None}

    def __repr__(self) -> str:
        return f"Memo({self.source!r})"

    def fingerprint(self) -> str:
        return fingerprint(self.source)


class EnsembleSystem:
    """A fixed ensemble rule applied, stem by stem, to the upstreams that produce the stem."""

    def __init__(self, upstreams: Sequence[EstimateSource], rule: str,
                 mixture: Callable[[str], np.ndarray] | None = None) -> None:
        if rule not in RULES:
            raise ValueError(f"unknown ensemble rule {rule!r}")
        if rule.endswith("_mix") and mixture is None:
            raise ValueError(f"rule {rule} needs a mixture source")
        self.upstreams = tuple(upstreams)
        self.rule = rule
        self.mixture = mixture

    def __call__(self, track: str) -> dict[str, np.ndarray]:
        per_upstream = [u(track) for u in self.upstreams]
        mix = self.mixture(track) if self.rule.endswith("_mix") and self.mixture is not None else None
        out = {}
        for stem in STEMS:
            ests = [p[stem] for p in per_upstream if stem in p]
            if ests:
                # upstreams may differ from each other and the mixture by a few samples
                n = min([e.shape[0] for e in ests] + ([mix.shape[0]] if mix is not None else []))
                m = None if mix is None else mix[:n]
                out[stem] = ensemble([e[:n] for e in ests], self.rule, m)
        return out

    def __repr__(self) -> str:
        return f"EnsembleSystem({self.rule!r}, {list(self.upstreams)!r})"

    def fingerprint(self) -> str:
        return f"ensemble {self.rule} of [{', '.join(fingerprint(u) for u in self.upstreams)}]"


class SelectionSystem:
    """Each stem taken from one chosen upstream (the per-source-best baseline)."""

    def __init__(self, choice: Mapping[str, EstimateSource]) -> None:
        self.choice = dict(choice)

    def __call__(self, track: str) -> dict[str, np.ndarray]:
        return {stem: src(track)[stem] for stem, src in self.choice.items()}

    def __repr__(self) -> str:
        return f"SelectionSystem({self.choice!r})"

    def fingerprint(self) -> str:
        return "selection " + ", ".join(f"{stem}={fingerprint(src)}" for stem, src in self.choice.items())


def _as_source(spec: SystemSpec) -> EstimateSource:
    return EstimatesFolder(spec) if isinstance(spec, (str, Path)) else spec


def _score_one(
    track: str, refs: References, systems: list[tuple[str, EstimateSource]], metrics: tuple[str, ...], backend: str
) -> tuple[str, dict, dict[str, float], list[str]]:
    """Score all systems on one track.

    Also returns the seconds spent getting audio (reading, ensembling) and per metric, and
    one note per estimate that is silent for the whole track (scored, never dropped).
    """
    t0 = time.perf_counter()
    references = refs(track) if callable(refs) else refs
    seconds = {"estimates": time.perf_counter() - t0, **{m: 0.0 for m in metrics}}
    out: dict[str, dict[str, dict[str, float]]] = {}
    notes = []
    for name, source in systems:
        t0 = time.perf_counter()
        estimates = source(track)
        seconds["estimates"] += time.perf_counter() - t0
        per: dict[str, dict[str, float]] = {}
        for metric in metrics:
            t0 = time.perf_counter()
            for stem, vals in score_track(references, estimates, metrics=(metric,), backend=backend).items():
                per.setdefault(stem, {}).update(vals)
            seconds[metric] += time.perf_counter() - t0
        out[name] = per
        notes += [f"{name}: the {stem} estimate of {track!r} is silent for the whole track; museval refuses it, "
                  f"mdxmix scores it (0 dB where the reference sounds) instead of dropping the track"
                  for stem in silent_estimates(references, estimates)]
    return track, out, seconds, notes


def _init_worker() -> None:
    # One process per core: keep torch (STFT ensembles) from oversubscribing.
    import torch

    torch.set_num_threads(1)


def _progress(total: int, enabled: bool | None):
    """A rich progress bar on stderr when it is a terminal, else a no-op context."""
    if enabled is None:
        enabled = sys.stderr.isatty()
    if not enabled:
        return None
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    return Progress(
        TextColumn("scoring"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), TimeRemainingColumn(),
        console=Console(stderr=True), transient=False,
    )


def score_systems(
    references: References,
    systems: Mapping[str, SystemSpec],
    tracks: Sequence[str] | None = None,
    metrics: Sequence[str] = ("global", "museval"),
    jobs: int = 2,
    backend: str = "fast",
    progress: bool | None = None,
    on_track: Callable[[str, int, int], None] | None = None,
    journal_dir: Path | None = None,
) -> Results:
    """Score every system on every track.

    ``references``: ``{track: {stem: array}}`` or a callable ``track -> {stem: array}``
    (e.g. :class:`MusdbSplit`); ``tracks`` defaults to the mapping's keys and is required
    with a callable. ``systems``: ``{name: callable or estimates folder}``. ``metrics`` ⊂
    {"global", "museval"}; ``backend`` "fast" or "museval" (see ``metrics``). ``jobs``
    worker processes (1 = in this process). ``progress``: None = auto (stderr is a TTY).
    ``on_track(track, done, total)`` is called as tracks finish, for integrations.
    ``journal_dir``: keep each finished track's scores in a journal there (:mod:`.journal`),
    and take the tracks a journal of the same evaluation already holds from it.
    """
    metrics = tuple(metrics)
    if tracks is None:
        if callable(references):
            raise ValueError("tracks must be given when references is a callable")
        tracks = list(references)
    tracks = list(tracks)
    named = [(name, _as_source(spec)) for name, spec in systems.items()]
    for _, src in named:
        if isinstance(src, EstimatesFolder):
            src.check_tracks(tracks)
    start = time.perf_counter()
    results = Results(metrics=metrics, tracks=list(tracks))
    per_track: dict[str, dict] = {}
    journal = _journal(journal_dir, references, named, metrics, backend)
    done = _resumed(journal, tracks, results)
    todo = [track for track in tracks if track not in done]
    bar = _progress(len(tracks), progress)
    with bar if bar is not None else _Null():
        task = bar.add_task("score", total=len(tracks), completed=len(done)) if bar is not None else None
        scored = _score_tracks(references, named, todo, metrics, jobs, backend)  # lazily: journaled as they finish
        for track, out, seconds, notes in itertools.chain(done.values(), scored):
            if journal is not None and track not in done:
                journal.append(track, out, seconds, notes)
            per_track[track] = out
            results.notes += notes
            for key, value in seconds.items():
                results.seconds[key] = results.seconds.get(key, 0.0) + value
            if bar is not None:
                bar.advance(task)
            if on_track is not None:
                on_track(track, len(per_track), len(tracks))
    for name, _ in named:
        for track in tracks:
            results.add(name, track, per_track[track][name])
    results.seconds["wall"] = time.perf_counter() - start
    return results


def _resumed(journal: ScoreJournal | None, tracks: list[str], results: Results) -> dict[str, tuple]:
    """The tracks a journal of this evaluation already holds, noted in the results."""
    done = journal.load(tracks) if journal is not None else {}
    if done:
        results.notes.append(f"{len(done)} of {len(tracks)} tracks were scored by an earlier run that stopped "
                             f"(kept in {journal.path})")
    return done


def _journal(folder: Path | None, references: References, named: list[tuple[str, EstimateSource]],
             metrics: tuple[str, ...], backend: str) -> ScoreJournal | None:
    """The journal of this evaluation in `folder` (None without one): named by what is scored."""
    if folder is None:
        return None
    if not callable(references):
        raise ValueError("a journal needs references that say what they are (a MusdbSplit), not a mapping")
    songs = getattr(references, "folder", None)  # a MusdbSplit: its songs by path and newest change
    identity = {"references": fingerprint(references) + (f" {folder_stamp(songs)}" if songs is not None else ""),
                "metrics": list(metrics), "backend": backend,
                "systems": [[name, fingerprint(source)] for name, source in named]}
    return ScoreJournal(folder, identity)


def _score_tracks(references: References, named: list[tuple[str, EstimateSource]], tracks: list[str],
                  metrics: tuple[str, ...], jobs: int, backend: str) -> Iterator[tuple]:
    """`_score_one` of every track, in this process or in `jobs` workers (in the order they finish)."""

    def refs_of(track: str) -> References:
        return references if callable(references) else references[track]

    if jobs <= 1 or len(tracks) <= 1:
        for track in tracks:
            yield _score_one(track, refs_of(track), named, metrics, backend)
        return
    with ProcessPoolExecutor(max_workers=min(jobs, len(tracks)), initializer=_init_worker) as pool:
        futures = [pool.submit(_score_one, t, refs_of(t), named, metrics, backend) for t in tracks]
        try:
            for fut in as_completed(futures):
                yield fut.result()
        except BaseException:
            for f in futures:
                f.cancel()
            raise


class _Null:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


def select_per_source_best(
    references: References,
    upstreams: Mapping[str, SystemSpec],
    tracks: Sequence[str] | None = None,
    metric: str = "museval",
    jobs: int = 2,
    backend: str = "fast",
    progress: bool | None = None,
    journal_dir: Path | None = None,
) -> tuple[dict[str, str], Results]:
    """Score the upstreams on a validation split and pick the best upstream per stem.

    Returns ``({stem: upstream name}, validation results)``.
    """
    res = score_systems(references, upstreams, tracks, metrics=(metric,), jobs=jobs, backend=backend, progress=progress,
                        journal_dir=journal_dir)
    return per_source_best(res.aggregate(metric), STEMS), res


def build_baseline_systems(
    upstreams: Mapping[str, SystemSpec],
    mixture: Callable[[str], np.ndarray] | None = None,
    per_source_choice: Mapping[str, str] | None = None,
    rules: Sequence[str] = RULES,
) -> dict[str, EstimateSource]:
    """All baseline systems from the same upstream estimates, ready for :func:`score_systems`.

    * each upstream alone, under its own name;
    * ``ensemble:<rule>`` for every rule (``spec_*_mix`` rules only when ``mixture`` — a
      callable ``track -> (samples, channels)`` such as ``MusdbSplit.mixture`` — is given);
    * ``per-source best`` when ``per_source_choice`` ({stem: upstream name}, from
      :func:`select_per_source_best` on the validation split) is given.
    """
    memo = {name: Memo(_as_source(spec)) for name, spec in upstreams.items()}
    systems: dict[str, EstimateSource] = dict(memo)
    for rule in rules:
        if rule.endswith("_mix") and mixture is None:
            continue
        systems[f"ensemble:{rule}"] = EnsembleSystem(list(memo.values()), rule, mixture)
    if per_source_choice:
        unknown = set(per_source_choice.values()) - set(memo)
        if unknown:
            raise ValueError(f"per-source choice names unknown upstreams: {sorted(unknown)}")
        systems["per-source best"] = SelectionSystem({stem: memo[name] for stem, name in per_source_choice.items()})
    return systems


ORACLE_PREFIX = "per-source best (oracle"


def add_oracle_selection(results: Results, upstreams: Sequence[str], metric: str, split: str) -> dict[str, str]:
    """Add the paper's per-source best: each stem's best upstream *on the scored split itself*.

    The paper's 8.09 dB takes the per-source maxima of its test table; that picks with
    knowledge of the test scores, so it is an oracle, not a system one could run. The row
    is labelled as such, next to the sound one chosen on another split. It reuses the
    upstreams' per-track scores, so it costs no scoring. Returns {stem: upstream}.
    """
    scored = [u for u in upstreams if u in results.scores]
    summary = results.aggregate(metric)
    choice = per_source_best({u: summary[u] for u in scored}, STEMS)
    if not choice:
        return choice
    name = f"{ORACLE_PREFIX}, chosen on {split!r})"
    for track in results.tracks:
        scores = {stem: results.scores[up][track] for stem, up in choice.items()}
        per = {stem: s[stem] for stem, s in scores.items() if stem in s}
        results.add(name, track, per)
    results.notes.append(f"{name}: each stem from the upstream with the best {metric} SDR on this same split, as the "
                         "paper's per-source best (8.09 dB) does; an upper bound, not a runnable system: "
                         + ", ".join(f"{stem}={up}" for stem, up in choice.items()))
    return choice
