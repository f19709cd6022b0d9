//! Generates the gRPC code with a pure-Rust protobuf compiler (no system `protoc`).
use prost::Message;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protos = [
        "proto/mon.proto",
        "proto/osd.proto",
        "proto/multisite.proto",
    ];
    let fds = protox::compile(protos, ["proto"])?;
    let out = std::path::PathBuf::from(std::env::var("OUT_DIR")?);
    // The descriptor set feeds gRPC server reflection (grpcurl list/describe).
    std::fs::write(out.join("meridian_descriptor.bin"), fds.encode_to_vec())?;
    tonic_prost_build::configure().bytes(".").compile_fds(fds)?;
    for p in protos {
        println!("cargo:rerun-if-changed={p}");
    }
    Ok(())
}
