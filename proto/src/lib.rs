//! Meridian's wire contracts: the monitor, OSD and zone-to-zone gRPC services.
//!
//! Byte payloads are `bytes::Bytes`, so object data is never copied between
//! the socket and the object store.

pub mod codec;

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

impl multisite::MultisiteState {
    /// Every zone entry: this cluster's zones, the zonegroups' copies and
    /// the periods' (a zone's system key may sit in any of them).
    pub fn zone_entries_mut(&mut self) -> impl Iterator<Item = &mut multisite::Zone> {
        self.zones
            .iter_mut()
            .chain(self.zonegroups.iter_mut().flat_map(|g| g.zones.iter_mut()))
            .chain(
                self.periods
                    .iter_mut()
                    .flat_map(|p| p.zonegroups.iter_mut())
                    .flat_map(|g| g.zones.iter_mut()),
            )
    }
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

/// The meaning of the map's fullness fields, shared by monitors, OSDs and tools.
pub mod fullness {
    use crate::mon::{ClusterMap, FullState};

    /// Ceph's default ratios (`mon_osd_nearfull_ratio`, `..._backfillfull_ratio`,
    /// `..._full_ratio`), used where the map holds 0.
    pub const DEFAULT_RATIOS: (f64, f64, f64) = (0.85, 0.90, 0.95);

    /// The map's (nearfull, backfillfull, full) ratios, defaults filled in.
    pub fn ratios(m: &ClusterMap) -> (f64, f64, f64) {
        let pick = |v: f64, d: f64| if v > 0.0 { v } else { d };
        (
            pick(m.nearfull_ratio, DEFAULT_RATIOS.0),
            pick(m.backfillfull_ratio, DEFAULT_RATIOS.1),
            pick(m.full_ratio, DEFAULT_RATIOS.2),
        )
    }

    /// How full an OSD using `used` of `total` bytes is under the map's ratios.
    pub fn state_of(m: &ClusterMap, used: u64, total: u64) -> FullState {
        if total == 0 {
            return FullState::FullNone;
        }
        let r = used as f64 / total as f64;
        let (near, backfill, full) = ratios(m);
        if r >= full {
            FullState::Full
        } else if r >= backfill {
            FullState::Backfillfull
        } else if r >= near {
            FullState::Nearfull
        } else {
            FullState::FullNone
        }
    }
}
