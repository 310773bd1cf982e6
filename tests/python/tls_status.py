#!/usr/bin/env python3
"""Calls CoreService/GetServerStatus over TLS with the stubs generated from proto/ (see
scripts/test-tools.sh), trusting the CA in --ca and, with --cert and --key, presenting a
client certificate.

Exits 0 and prints `tls status: OK` last on success; exits 1 with `tls status: FAILED ...`
otherwise. The call is bounded, so it cannot hang.
"""

import argparse
import os
import sys
from pathlib import Path

RPC_TIMEOUT = 10.0  # seconds for the call, connecting included


def pyproto_dir():
    from_env = os.environ.get("SWITCHBOARD_PYPROTO")
    if from_env:
        return Path(from_env)
    return Path(__file__).resolve().parents[2] / "target" / "test-tools" / "pyproto"


def parse_args(argv):
    parser = argparse.ArgumentParser(description="GetServerStatus over TLS.")
    parser.add_argument("--target", required=True, help="server address, e.g. 127.0.0.1:50051")
    parser.add_argument("--ca", required=True, help="PEM file of the CA that signed the server")
    parser.add_argument("--cert", help="PEM client certificate (with --key)")
    parser.add_argument("--key", help="PEM private key of --cert")
    args = parser.parse_args(argv)
    if (args.cert is None) != (args.key is None):
        parser.error("--cert and --key go together")
    return args


def main(argv):
    args = parse_args(argv)
    path = pyproto_dir()
    if not (path / "switchboard" / "v1" / "core_pb2.py").is_file():
        print(f"tls status: FAILED generated stubs missing in {path}: run scripts/test-tools.sh")
        return 1
    sys.path.insert(0, str(path))
    import grpc  # here, not at the top, so --help works without the venv
    from switchboard.v1 import core_pb2, core_pb2_grpc

    credentials = grpc.ssl_channel_credentials(
        root_certificates=Path(args.ca).read_bytes(),
        private_key=Path(args.key).read_bytes() if args.key else None,
        certificate_chain=Path(args.cert).read_bytes() if args.cert else None,
    )
    with grpc.secure_channel(args.target, credentials) as channel:
        stub = core_pb2_grpc.CoreServiceStub(channel)
        try:
            status = stub.GetServerStatus(core_pb2.GetServerStatusRequest(), timeout=RPC_TIMEOUT)
        except grpc.RpcError as error:
            print(f"tls status: FAILED {error.code().name}: {error.details()}")
            return 1
    print(f"server_id: {status.server_id}")
    print("tls status: OK")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
