"""The repository stands alone: every relative link in its Markdown files points at a
file that is there, and nothing names a document that lives outside it (the workload,
contract and design documents are docs/workloads.md, docs/api.md, docs/design.md)."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
LINK = re.compile(r"\]\(([^)\s]+)\)")
ELSEWHERE = re.compile(r"(?<![\w/.-])(WORKLOADS|API|DESIGN|STYLE)\.md\b")


def tracked(*patterns: str) -> list[Path]:
    """The repository's files (git's view: no .venv, no caches)."""
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", *patterns],
        cwd=ROOT, capture_output=True, text=True, check=True,
    ).stdout.split()  # fmt: skip
    return [ROOT / name for name in listed if (ROOT / name).is_file()]


def test_relative_markdown_links_resolve():
    broken = []
    for path in tracked("*.md"):
        for target in LINK.findall(path.read_text()):
            if re.match(r"[a-z]+:", target) or target.startswith("#"):
                continue  # a URL, or an anchor in the same file
            file = target.split("#", 1)[0]
            if not (path.parent / file).exists():
                broken.append(f"{path.relative_to(ROOT)}: {target}")
    assert broken == []


def test_no_reference_to_documents_outside_the_repository():
    found = []
    for path in tracked("*.md", "*.py", "*.yaml", "*.yml", "*.toml"):
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if ELSEWHERE.search(line):
                found.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    assert found == []
