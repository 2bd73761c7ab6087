#!/usr/bin/env bash
# Builds the Python package from source as a user would (`pip install ./crates/desdis-py`) into a
# fresh venv under target/, then runs its pytest suite (parity with the CLI, hostile inputs).
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$PWD

# maturin builds in the workspace's target dir, shared with `cargo xtask` release builds, so
# candle's release build is reused rather than repeated.
export CARGO_TARGET_DIR="$root/target"
venv="$root/target/py-ci"
rm -rf "$venv"
python3 -m venv "$venv"
"$venv/bin/python" -m pip install --quiet --upgrade pip
"$venv/bin/python" -m pip install --quiet ./crates/desdis-py pytest h5py

# The parity tests compare with the CLI's output: build the release binary they call.
cargo build --release -p desdis-cli --quiet

# Run from outside the source tree so `import desdis` is the installed wheel, not python/.
cd "$root/target"
set +e
DESDIS_BIN="$root/target/release/desdis" "$venv/bin/python" -m pytest -q "$root/crates/desdis-py/tests"
status=$?
set -e
# pytest exits 5 when it collected no tests: that must fail CI, not pass it.
if [ "$status" -eq 5 ]; then
    echo "error: pytest collected no tests" >&2
fi
exit "$status"
