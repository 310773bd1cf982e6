//! Compiles `proto/` with protox (no system `protoc` needed) into tonic/prost code, and writes
//! the descriptor set, with comments, that the reflection service serves. The benchmark
//! suite's echo baseline (`proto/bench/`) is compiled apart: only the suite includes it, and
//! reflection does not list it.

use std::{env, error::Error, fs, path::PathBuf};

const PROTOS: &[&str] = &[
    "switchboard/v1/core.proto",
    "switchboard/v1/processor.proto",
    "switchboard/v1/workflow.proto",
    "switchboard/v1/admin.proto",
    "switchboard/v1/routing.proto",
    "switchboard/v1/watch.proto",
    "switchboard/v1/auth.proto",
];

fn main() -> Result<(), Box<dyn Error>> {
    println!("cargo:rerun-if-changed=proto");

    let mut compiler = protox::Compiler::new(["proto"])?;
    compiler.include_source_info(true).include_imports(true);
    compiler.open_files(PROTOS)?;

    let out_dir = PathBuf::from(env::var("OUT_DIR")?);
    fs::write(
        out_dir.join("switchboard_descriptor.bin"),
        compiler.encode_file_descriptor_set(),
    )?;

    tonic_prost_build::configure()
        // `CoreService.Connect` would clash with the generated `Client::connect(dst)`
        // constructor; clients are built with `Client::new(channel)` instead.
        .build_transport(false)
        // Ordered maps encode the same way every time, so a request's fingerprint (for
        // idempotency) does not depend on hash order.
        .btree_map(".")
        // prost with smaller per-call buffers: an idle desktop's stream holds less.
        .codec_path("crate::pb::CompactCodec")
        // Messages that carry a password get a hand-written Debug that redacts it.
        .skip_debug([
            ".switchboard.v1.AgentCredentials",
            ".switchboard.v1.Agent",
            ".switchboard.v1.ConnectAgentRequest",
            ".switchboard.v1.LoginAgentRequest",
            ".switchboard.v1.Account",
            ".switchboard.v1.LoginRequest",
            ".switchboard.v1.LoginResponse",
            ".switchboard.v1.RefreshRequest",
            ".switchboard.v1.RefreshResponse",
            ".switchboard.v1.LogoutRequest",
        ])
        .compile_fds(compiler.file_descriptor_set())?;

    let mut bench = protox::Compiler::new(["proto"])?;
    bench.open_files(["bench/echo.proto"])?;
    tonic_prost_build::configure().compile_fds(bench.file_descriptor_set())?;
    Ok(())
}
