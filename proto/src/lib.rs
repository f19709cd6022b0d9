//! Meridian's wire contracts: the monitor, OSD and zone-to-zone gRPC services.
//!
//! Byte payloads are `bytes::Bytes`, so object data is never copied between
//! the socket and the object store.

/// Monitor service and cluster-map messages.
pub mod mon {
    #![allow(clippy::all, missing_docs)]
    tonic::include_proto!("meridian.mon");
}

/// Multi-site configuration (realms, zonegroups, zones, periods) and the zone-to-zone service.
pub mod multisite {
    #![allow(clippy::all, missing_docs)]
    tonic::include_proto!("meridian.multisite");
}

/// OSD service: client ops, replication, peering, recovery, scrub.
pub mod osd {
    #![allow(clippy::all, missing_docs)]
    tonic::include_proto!("meridian.osd");
}

/// Encoded descriptor set of every service, for gRPC server reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/meridian_descriptor.bin"));

/// Largest gRPC message any Meridian endpoint accepts (object size limit plus headroom).
pub const MAX_MESSAGE_BYTES: usize = 80 * 1024 * 1024;

/// A reflection service for every Meridian gRPC service, so `grpcurl` works.
pub fn reflection_service() -> tonic_reflection::server::v1::ServerReflectionServer<
    impl tonic_reflection::server::v1::ServerReflection,
> {
    tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(FILE_DESCRIPTOR_SET)
        .build_v1()
        .expect("the descriptor set is generated at build time and always valid")
}
