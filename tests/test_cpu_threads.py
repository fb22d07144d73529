"""How many CPU threads a batch uses: the cores that other work leaves free (mdxmix/device.py)."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from mdxmix import device
from mdxmix.cli import main
from mdxmix.device import THREAD_VARIABLES, cpu_threads, running_elsewhere

from conftest import write_tone


def test_running_elsewhere_reads_procs_running_less_the_reader(tmp_path):
    stat = tmp_path / "stat"
    stat.write_text("cpu  1 2 3 4\nprocs_running 4\nprocs_blocked 1\n")
    assert running_elsewhere(samples=2, interval=0, stat=stat) == 3
    stat.write_text("procs_running 1\n")
    assert running_elsewhere(samples=1, stat=stat) == 0
    stat.write_text("procs_running many\n")
    assert running_elsewhere(samples=1, stat=stat) == 0
    assert running_elsewhere(samples=1, stat=tmp_path / "absent") == 0


@pytest.mark.skipif(not Path("/proc/stat").exists(), reason="needs Linux /proc/stat")
def test_running_elsewhere_sees_two_busy_processes():
    spin = "import sys\nsys.stdout.write('go\\n')\nsys.stdout.flush()\nwhile True:\n    pass\n"
    busy = [subprocess.Popen([sys.executable, "-c", spin], stdout=subprocess.PIPE) for _ in range(2)]
    try:
        for process in busy:
            assert process.stdout.readline() == b"go\n"
        time.sleep(0.05)
        assert running_elsewhere() >= 2
    finally:
        for process in busy:
            process.kill()
            process.wait()


def test_cpu_threads_leaves_the_busy_cores_and_shares_the_rest(monkeypatch):
    for name in THREAD_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(torch, "get_num_threads", lambda: 4)
    monkeypatch.setattr(device.os, "sched_getaffinity", lambda pid: {0, 1, 2, 3}, raising=False)
    monkeypatch.setattr(device.os, "cpu_count", lambda: 4)
    assert [cpu_threads(1, others=n) for n in (0, 1, 3, 9)] == [4, 3, 1, 1]
    assert [cpu_threads(2, others=n) for n in (0, 1, 2, 3)] == [2, 1, 1, 1]
    # a count of the whole machine is scaled to the cores this process may use: 4 of 16 cores, 8 busy -> 2
    monkeypatch.setattr(device.os, "cpu_count", lambda: 16)
    monkeypatch.setattr(device, "running_elsewhere", lambda: 8)
    assert cpu_threads(1) == 2


def test_a_thread_count_the_user_set_is_obeyed(monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "4")
    monkeypatch.setattr(torch, "get_num_threads", lambda: 4)
    assert cpu_threads(1, others=3) == 4 and cpu_threads(2, others=3) == 2


def test_a_batch_gives_back_the_thread_count_it_found(tmp_path, model_dir):
    """Each `-j 2` batch in one process used to halve torch's threads for good (4 -> 2 -> 1)."""
    (tmp_path / "songs").mkdir()
    for name in ("a.wav", "b.wav"):
        write_tone(tmp_path / "songs" / name, 0.5, 44100)
    before = torch.get_num_threads()
    args = [str(tmp_path / "songs"), "-c", str(model_dir / "tiny_mdx.safetensors"), "--no-cache", "-j", "2"]
    try:
        torch.set_num_threads(2)
        for run in range(2):
            assert main([*args, "-o", str(tmp_path / f"out{run}")]) == 0
            assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


def test_training_on_a_cpu_takes_the_free_cores_and_gives_the_count_back(tiny_dataset, model_dir, tmp_path, monkeypatch):
    seen = []

    def one_free_core(jobs: int = 1) -> int:
        seen.append(torch.get_num_threads())
        return 1

    monkeypatch.setattr(device, "cpu_threads", one_free_core)
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        args = ["train", "--data", str(tiny_dataset), "--upstream", f"demucs-file:{model_dir / 'tiny_hdemucs.safetensors'}",
                "--kind", "conv1x1", "--segment", "4096", "--epochs", "1", "--steps-per-epoch", "1",
                "--cache-dir", str(tmp_path / "cache"), "--out", str(tmp_path / "run"), "--device", "cpu"]
        assert main(args) == 0
        # the training asks with the count it found, then the cache fill of its train and valid
        # splits asks within the training's one thread; the count found is back afterwards
        assert seen == [2, 1, 1] and torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)
