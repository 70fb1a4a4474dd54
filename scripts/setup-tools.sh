#!/usr/bin/env bash
# Installs the project's developer tools into Python virtualenvs at the repo root:
#   .venv/          moto[server] (local AWS), cargo-lambda (+ ziglang for arm64 cross builds),
#                   cfn-lint, aws-sam-cli, pyarrow <- scripts/requirements-tools.txt
#   .venv-checkov/  checkov                        <- scripts/requirements-checkov.txt
# checkov gets its own venv because its boto3 1.35.x pin conflicts with aws-sam-cli's
# boto3 1.43.x (pip: ResolutionImpossible). A symlink .venv/bin/checkov points at it, so
# putting .venv/bin on PATH is enough to reach every tool.
#
# Idempotent and fast when already done: each venv carries a stamp file
# .tools-<hash of its requirements + constraints + python version>; when the stamp is there
# nothing is installed (it also stores the tool versions printed at the end).
#
# Usage: scripts/setup-tools.sh [--force]     (PYTHON=/path/to/python3 to choose the interpreter)
# Then:  export PATH="$PWD/.venv/bin:$PATH"   (or: source .venv/bin/activate)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

FORCE=0
case "${1:-}" in
  --force) FORCE=1 ;;
  "") ;;
  -h|--help) sed -n '2,16p' "$0"; exit 0 ;;
  *) echo "usage: $0 [--force]" >&2; exit 2 ;;
esac

PYTHON="${PYTHON:-python3}"
if ! command -v "$PYTHON" >/dev/null 2>&1; then
  echo "setup-tools: $PYTHON not found (set PYTHON=/path/to/python3, >= 3.9)" >&2
  exit 1
fi
if ! "$PYTHON" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 9) else 1)'; then
  echo "setup-tools: $("$PYTHON" --version 2>&1) is too old; aws-sam-cli needs Python >= 3.9" >&2
  exit 1
fi
PYVER="$("$PYTHON" -c 'import sys; print("%d.%d.%d" % sys.version_info[:3])')"

export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INPUT=1 SAM_CLI_TELEMETRY=0

# Entries of .gitignore this script relies on (added once, never duplicated).
ensure_gitignored() {
  local entry
  touch .gitignore
  for entry in "$@"; do
    grep -qxF -- "$entry" .gitignore || printf '%s\n' "$entry" >> .gitignore
  done
}
ensure_gitignored /target /out .venv/ .venv-checkov/

# hash_of FILE... : short sha256 over the files' contents and the interpreter version.
hash_of() {
  { cat "$@"; echo "python=$PYVER"; } | sha256sum | cut -c1-16
}

# setup_venv DIR REQUIREMENTS CONSTRAINTS VERSIONS_CMD
#   Creates/updates the venv DIR unless its stamp for the current hash exists.
#   VERSIONS_CMD is evaluated (with DIR/bin first on PATH) to record tool versions.
setup_venv() {
  local dir="$1" req="$2" cons="$3" versions_cmd="$4"
  local hash stamp
  hash="$(hash_of "$req" "$cons")"
  stamp="$dir/.tools-$hash"

  if [[ $FORCE -eq 0 && -f "$stamp" ]] && "$dir/bin/python" -c '' >/dev/null 2>&1; then
    cat "$stamp"
    return 0
  fi

  # A venv made by another interpreter (or a moved/broken one) is rebuilt from scratch.
  if [[ -d "$dir" ]] && ! "$dir/bin/python" -c "import sys; sys.exit(0 if '%d.%d.%d' % sys.version_info[:3] == '$PYVER' else 1)" >/dev/null 2>&1; then
    echo "setup-tools: recreating $dir (interpreter changed or venv broken)" >&2
    rm -rf "$dir"
  fi
  if [[ ! -x "$dir/bin/python" ]]; then
    echo "setup-tools: creating $dir with $PYTHON ($PYVER)" >&2
    "$PYTHON" -m venv "$dir"
  fi

  echo "setup-tools: installing $(basename "$req") into $dir ..." >&2
  # -r with the constraints file referenced from inside the requirements file (-c line).
  "$dir/bin/python" -m pip install --quiet -r "$req"

  rm -f "$dir"/.tools-*
  PATH="$ROOT/$dir/bin:$PATH" bash -c "$versions_cmd" > "$stamp.tmp"
  mv "$stamp.tmp" "$stamp"
  cat "$stamp"
}

# Version commands: each value is assigned first so that a failing tool aborts (set -e).
setup_venv .venv scripts/requirements-tools.txt scripts/constraints-tools.txt '
  set -euo pipefail
  py=$(python --version 2>&1); moto=$(python -c "import moto; print(moto.__version__)")
  cl=$(cargo-lambda lambda --version); zig=$(python -m ziglang version)
  cfn=$(cfn-lint --version); sam=$(sam --version)
  pa=$(python -c "import pyarrow; print(pyarrow.__version__)")
  echo "python:        ${py#Python }"
  echo "moto:          $moto"
  echo "cargo-lambda:  $(cut -d" " -f2 <<<"$cl")"
  echo "ziglang:       $zig"
  echo "cfn-lint:      ${cfn#cfn-lint }"
  echo "aws-sam-cli:   ${sam##* }"
  echo "pyarrow:       $pa"
'
setup_venv .venv-checkov scripts/requirements-checkov.txt scripts/constraints-checkov.txt '
  set -euo pipefail
  ck=$(checkov --version)
  echo "checkov:       $ck (in .venv-checkov/)"
'

# One PATH entry for everything: expose checkov inside .venv/bin.
if [[ "$(readlink .venv/bin/checkov 2>/dev/null || true)" != "../../.venv-checkov/bin/checkov" ]]; then
  ln -sfn ../../.venv-checkov/bin/checkov .venv/bin/checkov
fi
