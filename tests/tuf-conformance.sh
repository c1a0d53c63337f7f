#!/usr/bin/env bash
# Runs the TUF client conformance suite against the agent's TUF client.
#
#   tests/tuf-conformance.sh PATH/TO/tuf-conformance [PYTEST ARGS...]
#
# The suite (github.com/theupdateframework/tuf-conformance) is not part of this repository:
# give a checkout of it. Its Python dependencies go into a virtualenv under target/; the
# `faketime` tool (Debian package faketime) is needed by a few of its tests.
set -euo pipefail
[ $# -ge 1 ] || { echo "usage: $0 SUITE_CHECKOUT [PYTEST ARGS...]" >&2; exit 2; }
suite=$(cd "$1" && pwd)
shift
root=$(cd "$(dirname "$0")/.." && pwd)
cargo build --quiet --manifest-path "$root/Cargo.toml" -p otter-e2e --bin tuf-conformance-client
client="$root/target/debug/tuf-conformance-client"
venv="${TUF_CONFORMANCE_VENV:-$root/target/tuf-conformance-env}"
if [ ! -x "$venv/bin/pytest" ]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet "$suite"
fi
command -v faketime >/dev/null || echo "note: faketime is missing; the suite's tests that need it fail" >&2
cd "$suite"
exec "$venv/bin/pytest" tuf_conformance --entrypoint "$client" "$@"
