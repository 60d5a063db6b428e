# shellcheck shell=bash
# Sourced by scripts/test, scripts/check and scripts/serve (not run on its own).
#
#   socius_ensure_venv dev   # .venv with the project and its dev extras
#   socius_ensure_venv       # .venv with the project (a dev install also satisfies this)
#
# Creates .venv with Python >= 3.11 when it is missing, and runs `pip install -e` only when
# pyproject.toml changed since the last install (its hash is kept in .venv/.socius-installed).
# Set PYTHON=/path/to/python3.x to choose the interpreter for a new .venv.
# (Not SOCIUS_PYTHON: socius rejects SOCIUS_* variables that are not settings.)

SOCIUS_ROOT="${SOCIUS_ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}"
SOCIUS_VENV="$SOCIUS_ROOT/.venv"

_socius_python_ok() {
    "$1" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' >/dev/null 2>&1
}

_socius_pick_python() {
    local candidate
    if [[ -n "${PYTHON:-}" ]]; then
        if _socius_python_ok "$PYTHON"; then
            echo "$PYTHON"
            return 0
        fi
        echo "error: PYTHON=$PYTHON is not a working Python >= 3.11" >&2
        return 1
    fi
    for candidate in python3.11 python3 python3.12 python3.13 python3.14; do
        if command -v "$candidate" >/dev/null 2>&1 && _socius_python_ok "$candidate"; then
            echo "$candidate"
            return 0
        fi
    done
    echo "error: socius needs Python >= 3.11; found $(python3 --version 2>&1 || echo 'no python3')." >&2
    echo "       Install python3.11 (or newer), or set PYTHON=/path/to/python3.11." >&2
    return 1
}

_socius_hash() {
    sha256sum "$SOCIUS_ROOT/pyproject.toml" | cut -d' ' -f1
}

# While pip (process $2) runs, its output going to the log $1: every INSTALL_PROGRESS_SECONDS
# (10) say how long it has been and what pip is at, so a first install is not a silent minute.
_socius_install_progress() { # log pid
    local log="$1" pid="$2" every="${INSTALL_PROGRESS_SECONDS:-10}" started=$SECONDS
    local sleeper="" last
    trap 'kill "$sleeper" 2>/dev/null; exit 0' TERM
    while true; do
        sleep "$every" >/dev/null 2>&1 &
        sleeper=$!
        wait "$sleeper"
        kill -0 "$pid" 2>/dev/null || exit 0
        last="$(grep -E '^ *(Collecting|Downloading|Obtaining|Building|Installing|Preparing|Successfully)' "$log" 2>/dev/null | tail -n 1 | sed 's/^ *//' | cut -c1-72)"
        echo "    ... $((SECONDS - started)) s${last:+: $last}"
    done
}

socius_ensure_venv() {
    local extras="${1:-}" python want have_hash have_extras spec log
    if [[ -x "$SOCIUS_VENV/bin/python" ]] && ! _socius_python_ok "$SOCIUS_VENV/bin/python"; then
        echo "error: $SOCIUS_VENV uses $("$SOCIUS_VENV/bin/python" --version 2>&1); socius needs >= 3.11." >&2
        echo "       Remove it (rm -rf .venv) and run this again." >&2
        return 1
    fi
    if [[ ! -x "$SOCIUS_VENV/bin/python" ]]; then
        python="$(_socius_pick_python)" || return 1
        echo "==> creating .venv with $("$python" --version 2>&1)"
        rm -rf "$SOCIUS_VENV"
        "$python" -m venv "$SOCIUS_VENV" || {
            echo "error: '$python -m venv' failed (on Debian: apt-get install python3-venv)" >&2
            return 1
        }
    fi

    want="$(_socius_hash)"
    have_hash="" have_extras=""
    if [[ -f "$SOCIUS_VENV/.socius-installed" ]]; then
        read -r have_hash have_extras <"$SOCIUS_VENV/.socius-installed" || true
    fi
    if [[ "$have_hash" == "$want" && ( -z "$extras" || "$have_extras" == "$extras" ) ]]; then
        return 0
    fi

    # keep the extras of an earlier install, so serve after test does not drop [dev]
    [[ -z "$extras" && -n "$have_extras" ]] && extras="$have_extras"
    spec="."
    [[ -n "$extras" ]] && spec=".[$extras]"
    log="$SOCIUS_VENV/.socius-install.log"
    echo "==> installing socius${extras:+ with [$extras]} into .venv (pyproject.toml changed or first run)"
    echo "    pip install -e '$spec': about a minute the first time; full log in $log"
    local started=$SECONDS status=0 ticker pip
    (
        cd "$SOCIUS_ROOT" &&
            PIP_DISABLE_PIP_VERSION_CHECK=1 "$SOCIUS_VENV/bin/python" -m pip install -e "$spec"
    ) >"$log" 2>&1 &
    pip=$!
    _socius_install_progress "$log" "$pip" &
    ticker=$!
    # In the background pip would outlive a Ctrl-C: stop it with the script.
    trap 'kill "$pip" "$ticker" 2>/dev/null' INT TERM
    wait "$pip" || status=$?
    trap - INT TERM
    kill "$ticker" 2>/dev/null || true
    wait "$ticker" 2>/dev/null || true
    if [[ "$status" -ne 0 ]]; then
        tail -n 40 "$log" >&2
        echo "error: pip install -e '$spec' failed; full log in $log" >&2
        rm -f "$SOCIUS_VENV/.socius-installed"
        return 1
    fi
    echo "    installed in $((SECONDS - started)) s"
    echo "$want ${extras}" >"$SOCIUS_VENV/.socius-installed"
}
