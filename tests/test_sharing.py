"""Sharing mixers: export a hub-ready folder, register it by name and pin, run it elsewhere, offline after.

The hub is simulated two ways, both driving the real `huggingface_hub` code: a local HTTP
server speaking the hub's file-resolve protocol (HF_ENDPOINT), and a cache folder in the
hub's layout with HF_HUB_OFFLINE=1 (what a user gets by copying ~/.cache/huggingface/hub).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import soundfile as sf

from mdxmix.cli import main
from mdxmix.evaluate.report import Results, to_json_dict
from mdxmix.models_listing import list_models
from mdxmix.stems import STEMS
from mdxmix.weightfiles import file_sha256

from conftest import write_tone

COMMIT = "0123456789abcdef0123456789abcdef01234567"


def mdxmix(*args: str, cwd: Path, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mdxmix", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


@pytest.fixture()
def training_run(tmp_path, model_dir) -> Path:
    """A 'training run' folder: best.safetensors with its local upstream file beside it."""
    run = tmp_path / "runs" / "mdx"
    run.mkdir(parents=True)
    shutil.copy(model_dir / "tiny_mdx.safetensors", run / "best.safetensors")
    shutil.copy(model_dir / "tiny_hdemucs.safetensors", run / "tiny_hdemucs.safetensors")
    return run


def _env(tmp_path: Path, **extra: str) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HF_")}
    return {**env, "MDXMIX_CONFIG": str(tmp_path / "config"), "HF_HUB_CACHE": str(tmp_path / "hf-cache"),
            "HF_HUB_DISABLE_TELEMETRY": "1", "OMP_NUM_THREADS": "1", **extra}


def _export(tmp_path: Path, run: Path, *extra: str) -> dict:
    done = mdxmix("models", "export", str(run / "best.safetensors"), "export/rock", "--name", "rock", "--license", "mit",
                  "--json", *extra, cwd=tmp_path, env=_env(tmp_path, HF_HUB_OFFLINE="1"))
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_export_writes_checkpoint_upstreams_sums_and_a_card_from_the_metadata(tmp_path, training_run):
    scores = Results(metrics=("museval",))  # what `mdxmix eval --out` writes, through its own code
    for track, offset in (("a", 0.0), ("b", 0.5)):
        scores.add("rock", track, {s: {"museval": v + offset} for s, v in zip(STEMS, (3.0, 1.25, 0.5, 3.75))})
        scores.add("hdemucs", track, {s: {"museval": v + offset} for s, v in zip(("drums", "other", "vocals"), (1.75, 0.25, 2.75))})
    results = tmp_path / "results.json"
    results.write_text(json.dumps(to_json_dict(scores, {"split": "test"})))
    record = _export(tmp_path, training_run, "--eval-json", str(results))
    folder = tmp_path / "export" / "rock"
    assert sorted(p.name for p in folder.iterdir()) == ["README.md", "SHA256SUMS", "rock.safetensors", "tiny_hdemucs.safetensors"]
    assert record["files"] == {"rock.safetensors": file_sha256(training_run / "best.safetensors"),
                               "tiny_hdemucs.safetensors": file_sha256(training_run / "tiny_hdemucs.safetensors")}
    sums = subprocess.run(["sha256sum", "-c", "SHA256SUMS"], cwd=folder, capture_output=True, text=True)
    assert sums.returncode == 0 and sums.stdout.count(": OK") == 2
    card = (folder / "README.md").read_text()
    assert card.startswith('---\nlicense: "mit"\nlibrary_name: mdxmix\n')
    assert "| `tiny_hdemucs.safetensors` | demucs-file" in card and "drums, bass, other, vocals" in card
    assert "| test | true |" in card  # the provenance stored in the checkpoint
    assert "| rock | 3.25 | 1.50 | 0.75 | 4.00 | 2.38 |" in card  # medians over the two tracks
    assert "| hdemucs | 2.00 | – | 0.50 | 3.00 | 1.83 |" in card  # no bass stem
    assert "on 2 tracks of the 'test' split" in card
    assert f"--sha256 {record['files']['rock.safetensors']}" in card

    again = mdxmix("models", "export", str(training_run / "best.safetensors"), "export/rock", cwd=tmp_path, env=_env(tmp_path))
    assert again.returncode == 2 and "already exists and is not an empty folder" in again.stderr
    (tmp_path / "lonely").mkdir()
    shutil.copy(training_run / "best.safetensors", tmp_path / "lonely" / "best.safetensors")
    missing = mdxmix("models", "export", "lonely/best.safetensors", "export/x", cwd=tmp_path, env=_env(tmp_path))
    assert missing.returncode == 1 and "tiny_hdemucs.safetensors' not found" in missing.stderr and "--upstream-dir" in missing.stderr
    assert not (tmp_path / "export" / "x").exists() and [p.name for p in (tmp_path / "export").iterdir()] == ["rock"]


def test_push_offline_says_so_in_one_line_and_keeps_the_folder(tmp_path, training_run):
    done = mdxmix("models", "export", str(training_run / "best.safetensors"), "out", "--push", "me/rock", cwd=tmp_path,
                  env=_env(tmp_path, HF_HUB_OFFLINE="1"))
    assert done.returncode == 1
    last = done.stderr.strip().splitlines()[-1]
    assert last == ("mdxmix: error: --push me/rock: not uploaded because HF_HUB_OFFLINE is set; the folder out is complete: "
                    "upload it from a connected machine with `hf upload me/rock out .`")
    assert (tmp_path / "out" / "best.safetensors").exists()


class FakeHub(BaseHTTPRequestHandler):
    """Serves files of one folder the way huggingface.co resolves them: /{repo}/resolve/{rev}/{path}."""

    root: Path
    repo = "me/mdxmix-rock"
    requests: list[str] = []

    def _file(self) -> Path | None:
        prefix = f"/{self.repo}/resolve/"
        if not self.path.startswith(prefix):
            return None
        revision, _, name = self.path[len(prefix):].partition("/")
        path = self.root / name
        return path if revision in ("main", COMMIT) and path.is_file() else None

    def _headers(self, path: Path | None) -> None:
        if path is None:
            self.send_response(404)
            self.send_header("X-Error-Code", "EntryNotFound")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        self.send_response(200)
        self.send_header("X-Repo-Commit", COMMIT)
        self.send_header("ETag", f'"{hashlib.sha256(path.read_bytes()).hexdigest()}"')
        self.send_header("Content-Length", str(path.stat().st_size))
        self.send_header("Content-Type", "application/octet-stream")
        self.end_headers()

    def do_HEAD(self) -> None:  # noqa: N802 - http.server's naming
        FakeHub.requests.append(f"HEAD {self.path}")
        self._headers(self._file())

    def do_GET(self) -> None:  # noqa: N802
        FakeHub.requests.append(f"GET {self.path}")
        path = self._file()
        self._headers(path)
        if path is not None:
            self.wfile.write(path.read_bytes())

    def log_message(self, *args) -> None:
        pass


@pytest.fixture()
def fake_hub(tmp_path):
    published = tmp_path / "published"
    published.mkdir()
    FakeHub.root, FakeHub.requests = published, []
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeHub)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield published, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_exported_folder_runs_by_name_on_another_machine_and_offline_after_the_first_fetch(tmp_path, training_run, fake_hub):
    published, endpoint = fake_hub
    record = _export(tmp_path, training_run)
    for path in (tmp_path / "export" / "rock").iterdir():  # what `hf upload` would put in the repo
        shutil.copy(path, published / path.name)
    sha = record["files"]["rock.safetensors"]
    shutil.rmtree(tmp_path / "runs")  # the other machine has no access to the training run

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    write_tone(elsewhere / "song.wav", 1.0, 44100)
    online = _env(tmp_path, HF_ENDPOINT=endpoint)
    added = mdxmix("models", "add", "rock", "--hub", "me/mdxmix-rock/rock.safetensors", "--revision", "main", "--sha256", sha,
                   cwd=elsewhere, env=online)
    assert added.returncode == 0, added.stderr
    assert "added 'rock'" in added.stderr and "downloaded and verified" in added.stderr
    assert any(r.startswith("GET /me/mdxmix-rock/resolve/") and r.endswith("tiny_hdemucs.safetensors") for r in FakeHub.requests)
    entry = json.loads((tmp_path / "config" / "registry.json").read_text())["checkpoints"]["rock"]
    assert entry == {"hub": {"repo_id": "me/mdxmix-rock", "filename": "rock.safetensors", "revision": "main"}, "sha256": sha}
    snapshot = tmp_path / "hf-cache" / "models--me--mdxmix-rock" / "snapshots" / COMMIT
    assert sorted(p.name for p in snapshot.iterdir()) == ["rock.safetensors", "tiny_hdemucs.safetensors"]

    listing = json.loads(mdxmix("models", "--json", cwd=elsewhere, env=online).stdout)
    mine = [row for row in listing if row["registry"] == "user"]
    assert [(r["name"], r["status"], r["mixer"]) for r in mine] == [("rock", "downloaded", "mdx_mixer")]
    assert {r["registry"] for r in listing} == {"bundled", "user"}

    FakeHub.requests.clear()
    offline = _env(tmp_path, HF_HUB_OFFLINE="1")
    done = mdxmix("song.wav", "-c", "rock", "-o", "out", "--json", "--no-cache", cwd=elsewhere, env=offline)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["status"] == "ok" and result["checkpoint"] == "rock" and FakeHub.requests == []
    audio, rate = sf.read(elsewhere / result["outputs"]["vocals"])
    assert rate == 44100 and audio.shape == (44100, 2)

    (published / "rock.safetensors").write_bytes((published / "rock.safetensors").read_bytes() + b"\x00")  # repo rewritten
    shutil.rmtree(tmp_path / "hf-cache")
    again = mdxmix("models", "add", "rock2", "--hub", "me/mdxmix-rock/rock.safetensors", "--revision", "main", "--sha256", sha,
                   cwd=elsewhere, env=online)
    assert again.returncode == 1 and "does not match the pinned" in again.stderr
    assert "rock2" not in json.loads((tmp_path / "config" / "registry.json").read_text())["checkpoints"]


def test_models_add_offline_prints_the_exact_download_command_then_runs_from_a_copied_cache(tmp_path, training_run):
    record = _export(tmp_path, training_run)
    sha = record["files"]["rock.safetensors"]
    offline = _env(tmp_path, HF_HUB_OFFLINE="1")
    hub = ["--hub", "me/mixers/rock/rock.safetensors", "--revision", COMMIT, "--sha256", sha]
    (tmp_path / "rock").mkdir()  # a folder named like the model does not hijack the name
    added = mdxmix("models", "add", "rock", *hub, cwd=tmp_path, env=offline)
    assert added.returncode == 0, added.stderr
    assert added.stderr.count("\n") == 1 and "not downloaded yet" in added.stderr and "HF_HUB_OFFLINE is set" in added.stderr
    assert f'`hf download me/mixers --revision {COMMIT} --include "rock/*"`' in added.stderr
    write_tone(tmp_path / "song.wav", 0.5, 44100)
    first = mdxmix("song.wav", "-c", "rock", "--no-cache", cwd=tmp_path, env=offline)
    assert first.returncode == 1 and first.stderr.count("\n") == 1
    assert f'`hf download me/mixers --revision {COMMIT} --include "rock/*"`' in first.stderr

    # What that command leaves in ~/.cache/huggingface/hub, copied to this machine.
    snapshot = tmp_path / "hf-cache" / "models--me--mixers" / "snapshots" / COMMIT / "rock"
    shutil.copytree(tmp_path / "export" / "rock", snapshot)
    shutil.rmtree(tmp_path / "runs")
    done = mdxmix("song.wav", "-c", "rock", "--no-cache", "--json", cwd=tmp_path, env=offline)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["status"] == "ok"

    (snapshot / "tiny_hdemucs.safetensors").write_bytes(b"\x00" * 64)  # a tampered upstream is caught by the checkpoint's pin
    tampered = mdxmix("song.wav", "-c", "rock", "--no-cache", "--overwrite", cwd=tmp_path, env=offline)
    assert tampered.returncode == 1 and "does not match the pinned" in tampered.stderr


def test_models_remove_forgets_a_user_entry(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("MDXMIX_CONFIG", str(tmp_path / "config"))
    entry = {"hub": {"repo_id": "me/r", "filename": "x.safetensors", "revision": "main"}, "sha256": "a" * 64}
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "registry.json").write_text(json.dumps({"format_version": 1, "checkpoints": {"x": entry, "y": entry}}))
    assert [(r["name"], r["registry"], r["status"]) for r in list_models() if r["registry"] == "user"] == [
        ("x", "user", "needs download"), ("y", "user", "needs download")]
    assert main(["models", "remove", "x"]) == 0 and "removed 'x'" in capsys.readouterr().err
    assert main(["song.wav", "-c", "x"]) == 1 and "unknown checkpoint 'x'" in capsys.readouterr().err
    assert main(["models", "remove", "x"]) == 1
    assert capsys.readouterr().err.strip().endswith("(user entries: y)")


@pytest.mark.parametrize("args,message", [
    (["rock", "--hub", "me/rock.safetensors", "--revision", "main", "--sha256", "a" * 64], "expected OWNER/REPO/FILE.safetensors"),
    (["rock", "--hub", "me/r/rock.safetensors", "--revision", "main", "--sha256", "abc"], "expected 64 hexadecimal digits"),
    (["mdxmix-default", "--hub", "me/r/x.safetensors", "--revision", "main", "--sha256", "a" * 64], "a bundled checkpoint has that name"),
    (["a/b", "--hub", "me/r/x.safetensors", "--revision", "main", "--sha256", "a" * 64], "a name is one word"),
])
def test_models_add_refuses_bad_arguments_with_exit_2(tmp_path, monkeypatch, capsys, args, message):
    monkeypatch.setenv("MDXMIX_CONFIG", str(tmp_path / "config"))
    assert main(["models", "add", *args]) == 2  # in process: these fail before any hub access
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
    assert not (tmp_path / "config" / "registry.json").exists()
