"""Assets: which files are servable, and that an edited file is served anew."""

from __future__ import annotations

import os
from pathlib import Path

from socius.api.web import Assets


def test_an_edited_file_is_read_again(tmp_path: Path) -> None:
    page = tmp_path / "app.js"
    page.write_text("export const a = 1;\n")
    assets = Assets(tmp_path)
    first = assets.get("app.js")
    assert first is not None
    assert assets.get("app.js") is first  # kept while unchanged
    page.write_text("export const a = 22;\n")
    os.utime(page, ns=(0, 1))  # a different mtime even within the clock's resolution
    second = assets.get("app.js")
    assert second is not None
    assert second.body == b"export const a = 22;\n"
    assert second.etag != first.etag
    page.unlink()
    assert assets.get("app.js") is None


def test_only_known_files_inside_the_root_are_servable(tmp_path: Path) -> None:
    root = tmp_path / "web"
    (root / "docs").mkdir(parents=True)
    (root / "docs" / "index.html").write_text("<p>docs</p>")
    (root / "styles.css").write_text("p {}")
    (root / "notes.md").write_text("# not served")
    (root / ".env.js").write_text("secret")
    (tmp_path / "outside.js").write_text("outside")
    (root / "link.js").symlink_to(tmp_path / "outside.js")
    assets = Assets(root, exclude=("docs",))
    found = assets.get("styles.css")
    assert found is not None
    assert found.content_type == "text/css; charset=utf-8"
    for path in ("docs/index.html", "notes.md", ".env.js", "../outside.js", "link.js", ""):
        assert assets.get(path) is None, path
    assert Assets(root).get("docs/index.html") is not None


def test_large_text_is_compressed_and_tiny_files_are_not(tmp_path: Path) -> None:
    (tmp_path / "big.js").write_text("const x = 1;\n" * 200)
    (tmp_path / "tiny.js").write_text("1")
    big = Assets(tmp_path).get("big.js")
    tiny = Assets(tmp_path).get("tiny.js")
    assert big is not None
    assert tiny is not None
    assert big.gzipped is not None
    assert len(big.gzipped) < len(big.body) // 10
    assert big.gzip_etag != big.etag
    assert tiny.gzipped is None
