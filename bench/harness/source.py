"""Which socius code is measured: the working tree, or a git ref exported on its own.

`--ref HEAD` (or any commit) measures a clean export of that commit (`git archive`), run
with PYTHONPATH pointing at it, so edits in progress in the working tree don't leak in.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Source", "export_ref", "working_tree"]


@dataclass(frozen=True)
class Source:
    description: str
    src_dir: Path | None = None  # None: the installed (editable) working tree

    def env(self) -> dict[str, str]:
        return {"PYTHONPATH": str(self.src_dir)} if self.src_dir else {}


def working_tree(root: Path) -> Source:
    def git(*args: str) -> str:
        out = subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True)
        return out.stdout.strip()

    dirty = " + uncommitted changes" if git("status", "--short", "--", "src") else ""
    return Source(f"working tree at {git('rev-parse', '--short', 'HEAD')}{dirty}")


def export_ref(root: Path, ref: str, dest: Path) -> Source:
    commit = subprocess.run(
        ["git", "-C", str(root), "rev-parse", "--short", ref],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    dest.mkdir(parents=True, exist_ok=True)
    archive = subprocess.run(
        ["git", "-C", str(root), "archive", "--format=tar", commit, "src", "migrations"],
        capture_output=True,
        check=True,
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(dest)], input=archive, check=True)
    return Source(f"git {commit} ({ref}), exported", src_dir=dest / "src")
