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
    // Sync policies are also stored in JSON bucket records.
    let serde = "#[derive(serde::Serialize, serde::Deserialize)] #[serde(default)]";
    // prost derives Eq itself only for messages of scalars and strings.
    let mut b = tonic_prost_build::configure()
        .bytes(".")
        .codec_path("crate::codec::SizedProstCodec")
        .type_attribute(".meridian.multisite.SyncPolicy", "#[derive(Eq)]")
        .type_attribute(".meridian.multisite.SyncGroup", "#[derive(Eq)]");
    for m in [
        "SyncPolicy",
        "SyncGroup",
        "SymmetricalFlow",
        "DirectionalFlow",
        "SyncPipe",
    ] {
        b = b.type_attribute(format!(".meridian.multisite.{m}"), serde);
    }
    b.compile_fds(fds)?;
    for p in protos {
        println!("cargo:rerun-if-changed={p}");
    }
    Ok(())
}
