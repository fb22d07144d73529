"""The shell scripts parse, and every script the documentation tells a reader to run exists.

Why: the recipes and benches are long jobs run by hand, sessions apart; a syntax error or a
renamed script is otherwise found only when someone starts a multi-hour run.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = [ROOT / "README.md", *sorted((ROOT / "recipes").glob("*/README.md")), *sorted((ROOT / "bench").glob("*.py"))]
RUN_LINE = re.compile(r"\bbash ((?:\.ci|recipes|bench)/[\w./-]+|install\.sh)")


def shell_scripts() -> list[Path]:
    """Every *.sh file at the top, in recipes/ and bench/, and the two CI entry points."""
    found = {*ROOT.glob("*.sh"), *ROOT.glob("recipes/**/*.sh"), *ROOT.glob("bench/**/*.sh")}
    return sorted(found | {ROOT / ".ci/run", ROOT / ".ci/setup"})


@pytest.mark.parametrize("script", shell_scripts(), ids=lambda p: str(p.relative_to(ROOT)))
def test_every_shell_script_parses(script: Path) -> None:
    done = subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_every_script_the_docs_run_exists() -> None:
    named = {match for doc in DOCS for match in RUN_LINE.findall(doc.read_text())}
    assert "install.sh" in named and ".ci/setup" in named  # the README's two opening commands are seen
    missing = sorted(name for name in named if not (ROOT / name).is_file())
    assert not missing, f"the docs run scripts that do not exist: {missing}"


def test_a_broken_script_is_caught(tmp_path: Path) -> None:
    broken = tmp_path / "broken.sh"
    broken.write_text("if true; then\n  echo unfinished\n")
    assert subprocess.run(["bash", "-n", str(broken)], capture_output=True).returncode != 0


def test_the_v3_recipes_upstream_flags_name_files_in_weights() -> None:
    """build_v3mix.sh and build_v3small.sh read the four upstreams from weights/: a bundle that
    prunes one of them must also move those recipes to restored copies (as v2_weights does)."""
    done = subprocess.run(["bash", "-c", "source recipes/default/v2_common.sh && v3_upstream_flags weights"],
                          cwd=ROOT, capture_output=True, text=True, check=True)
    flags = done.stdout.split("\n")[:-1]
    assert flags[::2] == ["--upstream"] * 4
    files = [spec.split(":")[1] for spec in flags[1::2]]
    assert [Path(f).name for f in files] == ["hdemucs16-v3.safetensors", "spectral4-v3.safetensors",
                                             "spectral_vocals-v2.safetensors", "spleeter-2stems.safetensors"]
    missing = [f for f in files if not (ROOT / f).is_file()]
    assert not missing, f"v3_upstream_flags names files that weights/ no longer holds: {missing}"
