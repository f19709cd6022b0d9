//! Shared pieces every Meridian component needs: the cluster configuration
//! file, size parsing, wall-clock helpers and the Prometheus endpoint.

pub mod central;
pub mod compression;
pub mod config;
pub mod crypt_keys;
pub mod failpoints;
pub mod metrics;
pub mod size;

pub use config::{
    Config, ConfigError, GatewayListeners, GatewayMemoryBudget, GatewaySection, GlobalSection,
    MonSection, OsdMemoryBudget, OsdSection, gateway_memory_budget,
};

/// Milliseconds since the Unix epoch (wall clock; used for mtimes and down timers).
pub fn now_unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}
