//! The per-host configuration file (`/etc/meridian/meridian.toml`).
//!
//! Like `ceph.conf`: a `[global]` section every process reads, and one
//! `[mon.ID]` / `[osd.ID]` section per daemon on the host. Every command takes
//! `-c/--conf FILE`, else `$MERIDIAN_CONF`, else the default path.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Where a host's configuration lives when neither `-c` nor `$MERIDIAN_CONF` say otherwise.
pub const DEFAULT_CONF_PATH: &str = "/etc/meridian/meridian.toml";
/// Environment variable naming the configuration file (like `CEPH_CONF`).
pub const CONF_ENV: &str = "MERIDIAN_CONF";

/// Errors loading or validating the configuration file.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config {path}: {source}; pass -c FILE or set $MERIDIAN_CONF")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The file is not valid TOML for this schema.
    #[error("invalid config {path}: {message}")]
    Parse { path: PathBuf, message: String },
    /// The file parses but says something impossible.
    #[error("invalid config {path}: {message}")]
    Invalid { path: PathBuf, message: String },
    /// A `KEY=VALUE` override names no setting or has the wrong type.
    #[error("option {key}: {message}")]
    Option { key: String, message: String },
    /// A daemon asked for a section that is not there.
    #[error("config {path} has no [{section}] section")]
    MissingSection { path: PathBuf, section: String },
}

/// The whole configuration file.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Settings every process reads.
    #[serde(default)]
    pub global: GlobalSection,
    /// Monitor sections by monitor id.
    #[serde(default)]
    pub mon: BTreeMap<String, MonSection>,
    /// OSD sections by OSD id.
    #[serde(default)]
    pub osd: BTreeMap<String, OsdSection>,
    /// S3 gateway sections by gateway id.
    #[serde(default)]
    pub gateway: BTreeMap<String, GatewaySection>,
    /// Where this file was loaded from (not serialized).
    #[serde(skip)]
    pub path: PathBuf,
    /// The `[global]` keys the file sets itself (canonical names): the
    /// monitors' central configuration does not override them.
    #[serde(skip)]
    pub file_global_keys: std::collections::BTreeSet<String>,
}

/// Cluster-wide settings.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GlobalSection {
    /// The cluster's unique id; every daemon refuses data of another fsid.
    pub fsid: String,
    /// Monitor addresses clients contact (`host:port`).
    pub mon_host: Vec<String>,
    /// This host's keyring (Ceph's format). The monitors write
    /// `client.admin`'s key there at bootstrap when the file does not
    /// exist (empty: `client.admin.keyring` in each monitor's data directory).
    pub keyring: String,
    /// Whether monitors and OSDs demand a ticket (and the method's
    /// capability) on every call. `false` only for a cluster upgraded from
    /// before authentication, until every daemon has its keyring.
    pub auth_required: bool,
    /// PEM bundle of the CAs trusted for `https://` zone endpoints (zone-to-zone
    /// sync, realm pull, period push) instead of the system's roots.
    pub tls_ca_file: String,
    /// Monitors and OSDs serve gRPC over TLS (each `[mon.N]`/`[osd.N]` names
    /// its `tls_cert` and `tls_key`), and every client of theirs connects
    /// with TLS, verifying them with `tls_ca_file` (Ceph's `ms_mode secure`).
    pub internal_tls: bool,
    /// Lifetime of a ticket (s); the monitors rotate the secret that signs
    /// tickets as often, keeping the previous ones while their tickets live.
    pub auth_service_ticket_ttl_s: u64,
    /// How often an OSD sends a heartbeat to the monitors.
    pub osd_heartbeat_interval_ms: u64,
    /// An OSD silent for this long is marked down.
    pub osd_heartbeat_grace_ms: u64,
    /// A down OSD is marked out after this long, so its PGs remap.
    pub mon_osd_down_out_interval_s: u64,
    /// Largest object a client may write (Ceph's osd_max_object_size).
    pub osd_max_object_size: u64,
    /// Raft election tick in milliseconds (elections after 10 ticks of silence).
    pub mon_tick_ms: u64,
    /// Client op timeout, including retries across map changes.
    pub client_op_timeout_ms: u64,
    /// Default pool size for `osd pool create` without `--size`.
    pub osd_pool_default_size: u32,
    /// Default min_size; 0 means size - size/2 like Ceph.
    pub osd_pool_default_min_size: u32,
    /// Failure domain of the default CRUSH rule ("host"; "osd" for one-machine clusters).
    pub osd_crush_chooseleaf_type: String,
    /// PG log length kept per PG (Ceph's osd_max_pg_log_entries): a copy further
    /// behind than this is backfilled object by object instead of replaying the log.
    pub osd_max_pg_log_entries: usize,
    /// Realm a gateway's zone must belong to (empty: any); a gateway whose
    /// zone is in another realm refuses to start.
    pub rgw_realm: String,
    /// Zone a gateway serves when its section names none (and no realm is configured).
    pub rgw_zone: String,
    /// Zonegroup of that zone (the S3 LocationConstraint).
    pub rgw_zonegroup: String,
    /// Bucket index shards of new buckets (Ceph: rgw_override_bucket_index_max_shards).
    pub rgw_bucket_index_shards: u32,
    /// Data log shards.
    pub rgw_data_log_num_shards: u32,
    /// Metadata log shards.
    pub rgw_md_log_max_shards: u32,
    /// Replaced and deleted object data is kept this long before GC deletes it.
    pub rgw_gc_obj_min_wait_s: u64,
    /// How often each gateway runs garbage collection.
    pub rgw_gc_processor_period_s: u64,
    /// How often a gateway runs bucket lifecycle rules (one gateway of the
    /// zone at a time).
    pub rgw_lc_interval_s: u64,
    /// Testing (RGW's name): when above 0, a lifecycle "day" lasts this many
    /// seconds and passes run that often.
    pub rgw_lc_debug_interval: u64,
    /// An unfinished PUT older than this is treated as crashed and its data
    /// collected; a writer stops storing data a quarter of this (at most 60 s)
    /// earlier.
    pub rgw_pending_expiry_s: u64,
    /// pg_num of zone pools a gateway creates (the data pool gets twice this).
    pub rgw_pool_pg_num: u32,
    /// Bucket and user records are cached by each gateway for this long.
    pub rgw_cache_ttl_ms: u64,
    /// Largest single PUT or part (AWS: 5 GiB).
    pub rgw_max_put_size: u64,
    /// A PUT of at most this many bytes (declared length) keeps its data in
    /// the key's index shard, written by the same op that links the version,
    /// instead of in the data pool (0: never; at most 4 MiB).
    pub rgw_inline_max_size: u64,
    /// DNS name for virtual-host-style requests (`BUCKET.<name>`); empty = path style only.
    pub rgw_dns_name: String,
    /// How often a secondary zone's gateways ask the master zone for a newer period.
    pub rgw_period_poll_s: u64,
    /// Run multi-site sync inside each gateway (as RGW's sync threads do);
    /// off: only standalone `meridian sync` agents replicate.
    pub rgw_run_sync_thread: bool,
    /// Entries one sync shard applies at once (objects fetched in parallel;
    /// RGW's `rgw_sync_data_inject_threads` is accepted too).
    #[serde(alias = "rgw_sync_data_inject_threads")]
    pub rgw_sync_window: u32,
    /// Entries a bucket shard in full sync applies at once; the versions
    /// fetched while one index commit is in flight share the next one.
    /// (RGW's name `rgw_sync_obj_batch_size` is accepted too.)
    #[serde(alias = "rgw_sync_obj_batch_size")]
    pub rgw_sync_full_window: u32,
    /// How often a zone re-reads its own log positions for changes written
    /// through its other gateways while a peer waits on them (ms).
    pub rgw_sync_log_poll_ms: u64,
    /// How often sync compares every bucket shard's log with its marker, to
    /// find changes whose data log hint was lost in a crash (s).
    pub rgw_sync_reconcile_s: u64,
    /// A metadata change logged as prepared but never committed counts as
    /// done after this long (ms): its writer died.
    pub rgw_sync_md_settle_ms: u64,
    /// Sync shard leases last this long unless renewed (s; RGW's name
    /// `rgw_sync_lease_period` is accepted too).
    #[serde(alias = "rgw_sync_lease_period")]
    pub rgw_sync_lease_s: u64,
    /// GC drops the tombstone of a deleted null version after this long (s):
    /// longer than any outage after which zones are expected to converge.
    pub rgw_sync_tombstone_ttl_s: u64,
    /// How often a zone trims its metadata, data and bucket index logs
    /// through what every peer zone has read (s).
    pub rgw_sync_log_trim_interval_s: u64,
    /// A peer zone whose sync has not applied changes logged this long ago
    /// raises the SYNC_PEER_BEHIND health warning (s).
    pub rgw_sync_log_trim_warn_lag_s: u64,
    /// Object bytes sync fetches from other zones, per second, in each
    /// process that runs sync (0: no limit).
    pub rgw_sync_max_bandwidth: u64,
    /// Port on the S3 listen host where a gateway without `metrics_addr`
    /// serves Prometheus metrics (0: none).
    pub rgw_prometheus_port: u16,
    /// Where a gateway behind a proxy finds the client's address (RGW's
    /// `HTTP_X_FORWARDED_FOR` spelling or a header name; empty: the
    /// connection's), for bucket policies' `aws:SourceIp`.
    pub rgw_remote_addr_param: String,
    /// Base64 256-bit master key of SSE-S3; when set, writes that ask for no
    /// encryption are encrypted with it too (RGW's option; keep it secret).
    pub rgw_crypt_default_encryption_key: String,
    /// SSE-KMS keys, `id=base64key` separated by spaces (RGW's static KMS).
    pub rgw_crypt_s3_kms_encryption_keys: String,
    /// SSE-C and SSE-KMS requests must come over HTTPS (their keys travel
    /// in headers), as AWS and RGW require.
    pub rgw_crypt_require_ssl: bool,
}

/// RGW's names for `[global]` settings Meridian spells differently.
const KEY_ALIASES: &[(&str, &str)] = &[
    ("rgw_sync_lease_period", "rgw_sync_lease_s"),
    ("rgw_sync_obj_batch_size", "rgw_sync_full_window"),
    ("rgw_sync_data_inject_threads", "rgw_sync_window"),
];

/// The name a `[global]` setting is stored under (RGW's aliases resolved).
pub fn canonical_key(key: &str) -> &str {
    KEY_ALIASES
        .iter()
        .find(|(alias, _)| *alias == key)
        .map_or(key, |(_, name)| name)
}

impl GlobalSection {
    /// Applies a `KEY=VALUE` override (like Ceph's `-o`); the value is read as
    /// TOML (a number, a boolean, a list) and as a string when it is not one.
    pub fn set_option(&mut self, assignment: &str) -> Result<(), ConfigError> {
        let err = |key: &str, message: String| ConfigError::Option {
            key: key.to_string(),
            message,
        };
        let (key, raw) = assignment
            .split_once('=')
            .ok_or_else(|| err(assignment, "expected KEY=VALUE".into()))?;
        let (key, raw) = (key.trim(), raw.trim());
        let key = canonical_key(key);
        let mut table = toml::Table::try_from(&*self).map_err(|e| err(key, e.to_string()))?;
        if !table.contains_key(key) && key != "fsid" {
            let known: Vec<&str> = table.keys().map(String::as_str).collect();
            return Err(err(
                key,
                format!("no such [global] setting; known: {}", known.join(", ")),
            ));
        }
        let value = toml::from_str::<toml::Table>(&format!("v = {raw}"))
            .ok()
            .and_then(|mut t| t.remove("v"))
            .unwrap_or_else(|| toml::Value::String(raw.to_string()));
        table.insert(key.to_string(), value);
        *self = table
            .try_into()
            .map_err(|e: toml::de::Error| err(key, e.message().to_string()))?;
        Ok(())
    }
}

impl Default for GlobalSection {
    fn default() -> Self {
        Self {
            fsid: String::new(),
            mon_host: Vec::new(),
            keyring: String::new(),
            auth_required: true,
            tls_ca_file: String::new(),
            internal_tls: false,
            auth_service_ticket_ttl_s: 3600,
            osd_heartbeat_interval_ms: 1000,
            osd_heartbeat_grace_ms: 6000,
            mon_osd_down_out_interval_s: 600,
            osd_max_object_size: 64 << 20,
            mon_tick_ms: 100,
            client_op_timeout_ms: 30_000,
            osd_pool_default_size: 3,
            osd_pool_default_min_size: 0,
            osd_crush_chooseleaf_type: "host".into(),
            osd_max_pg_log_entries: 1000,
            rgw_realm: String::new(),
            rgw_zone: "default".into(),
            rgw_zonegroup: "default".into(),
            rgw_bucket_index_shards: 11,
            rgw_data_log_num_shards: 32,
            rgw_md_log_max_shards: 32,
            rgw_gc_obj_min_wait_s: 7200,
            rgw_gc_processor_period_s: 3600,
            rgw_pending_expiry_s: 7200,
            rgw_pool_pg_num: 16,
            rgw_cache_ttl_ms: 2000,
            rgw_max_put_size: 5 << 30,
            rgw_inline_max_size: 8 << 10,
            rgw_dns_name: String::new(),
            rgw_period_poll_s: 30,
            rgw_run_sync_thread: true,
            rgw_sync_window: 16,
            rgw_sync_full_window: 64,
            rgw_sync_log_poll_ms: 1000,
            rgw_sync_reconcile_s: 60,
            rgw_sync_md_settle_ms: 30_000,
            rgw_sync_lease_s: 30,
            rgw_sync_tombstone_ttl_s: 7 * 24 * 3600,
            rgw_sync_log_trim_interval_s: 60,
            rgw_sync_log_trim_warn_lag_s: 600,
            rgw_sync_max_bandwidth: 0,
            rgw_lc_interval_s: 3600,
            rgw_lc_debug_interval: 0,
            rgw_prometheus_port: 0,
            rgw_remote_addr_param: String::new(),
            rgw_crypt_default_encryption_key: String::new(),
            rgw_crypt_s3_kms_encryption_keys: String::new(),
            rgw_crypt_require_ssl: true,
        }
    }
}

/// One monitor daemon.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MonSection {
    /// gRPC listen and advertised address.
    pub addr: String,
    /// Data directory (Raft log, snapshots).
    pub data: PathBuf,
    /// Keyring holding the `mon.` key every monitor shares (default: `keyring` in `data`).
    #[serde(default)]
    pub keyring: Option<PathBuf>,
    /// Prometheus metrics listen address (optional).
    #[serde(default)]
    pub metrics_addr: Option<String>,
    /// PEM certificate served when `internal_tls` is on.
    #[serde(default)]
    pub tls_cert: Option<PathBuf>,
    /// Its PEM private key.
    #[serde(default)]
    pub tls_key: Option<PathBuf>,
}

/// One OSD daemon.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OsdSection {
    /// gRPC listen and advertised address.
    pub addr: String,
    /// Data directory (block file and metadata KV).
    pub data: PathBuf,
    /// Keyring holding this OSD's `osd.N` key (default: `keyring` in `data`).
    #[serde(default)]
    pub keyring: Option<PathBuf>,
    /// PEM certificate served when `internal_tls` is on.
    #[serde(default)]
    pub tls_cert: Option<PathBuf>,
    /// Its PEM private key.
    #[serde(default)]
    pub tls_key: Option<PathBuf>,
    /// CRUSH location: host name (defaults to the machine's hostname).
    #[serde(default)]
    pub host: Option<String>,
    /// CRUSH location: rack.
    #[serde(default)]
    pub rack: Option<String>,
    /// CRUSH location: datacenter.
    #[serde(default)]
    pub datacenter: Option<String>,
    /// Device class (hdd, ssd, nvme).
    #[serde(default)]
    pub device_class: Option<String>,
    /// CRUSH weight (1.0 per TiB by convention; defaults to the block size in TiB, at least 0.01).
    #[serde(default)]
    pub weight: Option<f64>,
    /// Size of the block file, e.g. "8G".
    #[serde(default = "default_block_size")]
    pub block_size: String,
    /// Reserve the whole block file on disk when it is created (fallocate).
    /// `false` makes it sparse: it takes only what is written (`dev up`
    /// does that), at the risk of the host filesystem running out first.
    #[serde(default = "default_true")]
    pub preallocate: bool,
    /// I/O engine: "auto" (io_uring, falling back to pread), "io_uring" or "pread".
    #[serde(default = "default_engine")]
    pub engine: String,
    /// Memory the OSD aims to stay within, e.g. "1G" (Ceph's
    /// `osd_memory_target`): a quarter goes to the store's caches (unless
    /// `cache_size` is set) and a quarter bounds the client op data it holds
    /// at once; further ops wait for earlier ones instead of growing the heap.
    #[serde(default = "default_memory_target")]
    pub memory_target: String,
    /// Memory for the store's caches, e.g. "256M" (default: a quarter of
    /// `memory_target`).
    #[serde(default)]
    pub cache_size: Option<String>,
    /// Prometheus metrics listen address (optional).
    #[serde(default)]
    pub metrics_addr: Option<String>,
}

/// How an OSD splits its `memory_target`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OsdMemoryBudget {
    /// The whole target, in bytes.
    pub target: u64,
    /// The store's caches (fjall block cache and memtables).
    pub cache: u64,
    /// Client op data held at once (writes' payloads, reads' results).
    pub client_ops: u64,
}

impl OsdSection {
    /// Splits `memory_target` (and `cache_size`, if set) into budgets.
    pub fn memory_budget(&self) -> Result<OsdMemoryBudget, String> {
        let target = crate::size::parse_size(&self.memory_target)
            .map_err(|e| format!("memory_target: {e}"))?;
        if target < 64 << 20 {
            return Err(format!(
                "memory_target {}: an OSD needs at least 64M",
                self.memory_target
            ));
        }
        let cache = match &self.cache_size {
            Some(c) => crate::size::parse_size(c).map_err(|e| format!("cache_size: {e}"))?,
            None => target / 4,
        };
        Ok(OsdMemoryBudget {
            target,
            cache,
            client_ops: target / 4,
        })
    }
}

/// One S3 gateway.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GatewaySection {
    /// S3 (HTTP) listen address; Ceph's default port is 7480. With a
    /// certificate and no `tls_addr`, this address serves HTTPS instead.
    pub addr: String,
    /// HTTPS listen address beside the plain one (RGW's `ssl_port`).
    #[serde(default)]
    pub tls_addr: Option<String>,
    /// PEM certificate chain served over HTTPS (leaf first).
    #[serde(default)]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of `tls_cert` (PKCS#8, PKCS#1 or SEC1).
    #[serde(default)]
    pub tls_key: Option<PathBuf>,
    /// Zone served (defaults to global.rgw_zone).
    #[serde(default)]
    pub zone: Option<String>,
    /// Keyring holding this gateway's `client.gateway.ID` key (default: `[global] keyring`).
    #[serde(default)]
    pub keyring: Option<PathBuf>,
    /// Prometheus metrics listen address (optional).
    #[serde(default)]
    pub metrics_addr: Option<String>,
    /// Memory the gateway aims to stay within, e.g. "256M": a quarter bounds
    /// the object data of PUTs buffered at once, a quarter that of GETs read
    /// ahead of their clients; further requests wait instead of growing the
    /// heap.
    #[serde(default = "default_gateway_memory_target")]
    pub memory_target: String,
}

/// How a gateway splits its `memory_target`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GatewayMemoryBudget {
    /// The whole target, in bytes.
    pub target: u64,
    /// Object data of writes (PUT, parts, copies) buffered at once.
    pub write_buffers: u64,
    /// Object data read ahead of GET clients at once.
    pub read_buffers: u64,
}

/// A gateway needs room for at least two 4 MiB stripes each way.
const GATEWAY_MIN_MEMORY_TARGET: u64 = 32 << 20;

/// Splits a gateway `memory_target` (e.g. "256M") into its budgets.
pub fn gateway_memory_budget(memory_target: &str) -> Result<GatewayMemoryBudget, String> {
    let target =
        crate::size::parse_size(memory_target).map_err(|e| format!("memory_target: {e}"))?;
    if target < GATEWAY_MIN_MEMORY_TARGET {
        return Err(format!(
            "memory_target {memory_target}: a gateway needs at least 32M"
        ));
    }
    Ok(GatewayMemoryBudget::split(target))
}

impl GatewayMemoryBudget {
    /// A quarter of `target` each to write and read buffers; the rest is for
    /// connections, caches and the sync engine.
    fn split(target: u64) -> Self {
        Self {
            target,
            write_buffers: target / 4,
            read_buffers: target / 4,
        }
    }
}

impl Default for GatewayMemoryBudget {
    /// The budget of the default `memory_target`.
    fn default() -> Self {
        Self::split(DEFAULT_GATEWAY_MEMORY_TARGET)
    }
}

/// Where a gateway listens and whether over TLS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GatewayListeners {
    /// Plain HTTP address, if any.
    pub http: Option<String>,
    /// HTTPS address and its certificate and key files, if any.
    pub https: Option<(String, PathBuf, PathBuf)>,
}

impl GatewaySection {
    /// Splits `memory_target` into budgets.
    pub fn memory_budget(&self) -> Result<GatewayMemoryBudget, String> {
        gateway_memory_budget(&self.memory_target)
    }

    /// The listeners this section asks for: `addr` plain; `tls_addr` HTTPS
    /// beside it; a certificate without `tls_addr` turns `addr` into HTTPS.
    pub fn tls_listeners(&self) -> Result<GatewayListeners, String> {
        let files = match (&self.tls_cert, &self.tls_key) {
            (Some(c), Some(k)) => Some((c.clone(), k.clone())),
            (None, None) => None,
            _ => return Err("tls_cert and tls_key go together".into()),
        };
        let addr = (!self.addr.is_empty()).then(|| self.addr.clone());
        match (files, &self.tls_addr) {
            (None, Some(_)) => Err("tls_addr needs tls_cert and tls_key".into()),
            (None, None) => match addr {
                Some(a) => Ok(GatewayListeners {
                    http: Some(a),
                    https: None,
                }),
                None => Err("no listen address: set addr".into()),
            },
            (Some((c, k)), Some(t)) => Ok(GatewayListeners {
                http: addr,
                https: Some((t.clone(), c, k)),
            }),
            (Some((c, k)), None) => match addr {
                Some(a) => Ok(GatewayListeners {
                    http: None,
                    https: Some((a, c, k)),
                }),
                None => Err("no listen address: set addr or tls_addr".into()),
            },
        }
    }

    /// The URL other zones reach this gateway at (HTTPS when it serves it).
    pub fn endpoint_url(&self) -> String {
        match self.tls_listeners() {
            Ok(GatewayListeners {
                https: Some((a, _, _)),
                ..
            }) => format!("https://{a}"),
            _ => format!("http://{}", self.addr),
        }
    }
}

fn default_block_size() -> String {
    "8G".into()
}
fn default_true() -> bool {
    true
}
fn default_engine() -> String {
    "auto".into()
}
fn default_memory_target() -> String {
    "1G".into()
}
/// A gateway's `memory_target` unless its section sets one (256 MiB).
const DEFAULT_GATEWAY_MEMORY_TARGET: u64 = 256 << 20;
fn default_gateway_memory_target() -> String {
    format!("{}M", DEFAULT_GATEWAY_MEMORY_TARGET >> 20)
}

impl Config {
    /// Resolves the path the way every command does: flag, then `$MERIDIAN_CONF`, then the default.
    pub fn resolve_path(flag: Option<&Path>) -> PathBuf {
        if let Some(p) = flag {
            return p.to_path_buf();
        }
        match std::env::var_os(CONF_ENV) {
            Some(p) if !p.is_empty() => PathBuf::from(p),
            _ => PathBuf::from(DEFAULT_CONF_PATH),
        }
    }

    /// Loads and validates the file at `path`.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let parse_error = |e: toml::de::Error| ConfigError::Parse {
            path: path.to_path_buf(),
            message: e.to_string(),
        };
        let table: toml::Table = toml::from_str(&text).map_err(parse_error)?;
        let mut cfg: Config = toml::from_str(&text).map_err(parse_error)?;
        cfg.path = path.to_path_buf();
        if let Some(toml::Value::Table(g)) = table.get("global") {
            cfg.file_global_keys = g.keys().map(|k| canonical_key(k).to_string()).collect();
        }
        cfg.validate()?;
        Ok(cfg)
    }

    /// Checks what the schema cannot.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |message: String| ConfigError::Invalid {
            path: self.path.clone(),
            message,
        };
        if self.monitor_addrs().is_empty() {
            return Err(invalid(
                "no monitors: set global.mon_host or add [mon.ID] sections".into(),
            ));
        }
        for id in self.mon.keys() {
            id.parse::<u64>()
                .ok()
                .filter(|v| *v > 0)
                .ok_or_else(|| invalid(format!("[mon.{id}]: monitor ids are positive integers")))?;
        }
        for (id, osd) in &self.osd {
            id.parse::<u32>()
                .map_err(|_| invalid(format!("[osd.{id}]: OSD ids are integers")))?;
            crate::size::parse_size(&osd.block_size)
                .map_err(|e| invalid(format!("[osd.{id}] block_size: {e}")))?;
            osd.memory_budget()
                .map_err(|e| invalid(format!("[osd.{id}] {e}")))?;
            if !["auto", "io_uring", "pread"].contains(&osd.engine.as_str()) {
                return Err(invalid(format!(
                    "[osd.{id}] engine {:?}: use auto, io_uring or pread",
                    osd.engine
                )));
            }
        }
        for (id, gw) in &self.gateway {
            gw.memory_budget()
                .map_err(|e| invalid(format!("[gateway.{id}] {e}")))?;
        }
        if self.global.internal_tls {
            if self.global.tls_ca_file.is_empty() {
                return Err(invalid(
                    "internal_tls needs tls_ca_file (the CA that signed the daemons' certificates)"
                        .into(),
                ));
            }
            let daemons = self
                .mon
                .iter()
                .map(|(id, m)| (format!("mon.{id}"), &m.tls_cert, &m.tls_key))
                .chain(
                    self.osd
                        .iter()
                        .map(|(id, o)| (format!("osd.{id}"), &o.tls_cert, &o.tls_key)),
                );
            for (name, cert, key) in daemons {
                if cert.is_none() || key.is_none() {
                    return Err(invalid(format!(
                        "[{name}]: internal_tls needs tls_cert and tls_key"
                    )));
                }
            }
        }
        for (id, gw) in &self.gateway {
            gw.tls_listeners()
                .map_err(|e| invalid(format!("[gateway.{id}]: {e}")))?;
        }
        crate::crypt_keys::parse(
            &self.global.rgw_crypt_default_encryption_key,
            &self.global.rgw_crypt_s3_kms_encryption_keys,
        )
        .map_err(invalid)?;
        if self.global.rgw_inline_max_size > 4 << 20 {
            return Err(invalid(format!(
                "rgw_inline_max_size {}: at most 4194304 (one stripe)",
                self.global.rgw_inline_max_size
            )));
        }
        if self.global.osd_heartbeat_grace_ms <= self.global.osd_heartbeat_interval_ms {
            return Err(invalid(
                "osd_heartbeat_grace_ms must exceed osd_heartbeat_interval_ms".into(),
            ));
        }
        Ok(())
    }

    /// Monitor addresses: `mon_host`, or the addresses of the `[mon.ID]` sections.
    pub fn monitor_addrs(&self) -> Vec<String> {
        if !self.global.mon_host.is_empty() {
            return self.global.mon_host.clone();
        }
        self.mon.values().map(|m| m.addr.clone()).collect()
    }

    /// Where a monitor writes `client.admin`'s keyring: `[global] keyring`,
    /// else `client.admin.keyring` in the monitor's data directory.
    pub fn admin_keyring_path(&self, mon: &MonSection) -> PathBuf {
        if self.global.keyring.is_empty() {
            mon.data.join("client.admin.keyring")
        } else {
            PathBuf::from(&self.global.keyring)
        }
    }

    /// The keyring of a tool run on this host (`[global] keyring`, else
    /// the `client.admin` keyring the monitors write into their data
    /// directory, as a monitor host has it).
    pub fn client_keyring_path(&self) -> PathBuf {
        match self.mon.values().next() {
            Some(m) if self.global.keyring.is_empty() => self.admin_keyring_path(m),
            _ => PathBuf::from(&self.global.keyring),
        }
    }

    /// The keyring with the `mon.` key of monitor section `mon`.
    pub fn mon_keyring_path(mon: &MonSection) -> PathBuf {
        mon.keyring
            .clone()
            .unwrap_or_else(|| mon.data.join("keyring"))
    }

    /// The keyring with the `osd.N` key of OSD section `osd`.
    pub fn osd_keyring_path(osd: &OsdSection) -> PathBuf {
        osd.keyring
            .clone()
            .unwrap_or_else(|| osd.data.join("keyring"))
    }

    /// The keyring with the `client.gateway.ID` key of gateway section `gw`.
    pub fn gateway_keyring_path(&self, gw: &GatewaySection) -> PathBuf {
        gw.keyring
            .clone()
            .unwrap_or_else(|| self.client_keyring_path())
    }

    /// The initial monitor membership `(id, addr)` from the `[mon.ID]` sections.
    pub fn monitors(&self) -> Vec<(u64, String)> {
        let mut v: Vec<(u64, String)> = self
            .mon
            .iter()
            .filter_map(|(id, m)| id.parse().ok().map(|id| (id, m.addr.clone())))
            .collect();
        v.sort();
        v
    }

    /// The section of monitor `id`.
    pub fn mon_section(&self, id: u64) -> Result<&MonSection, ConfigError> {
        self.mon
            .get(&id.to_string())
            .ok_or_else(|| ConfigError::MissingSection {
                path: self.path.clone(),
                section: format!("mon.{id}"),
            })
    }

    /// The section of gateway `id`.
    pub fn gateway_section(&self, id: &str) -> Result<&GatewaySection, ConfigError> {
        self.gateway
            .get(id)
            .ok_or_else(|| ConfigError::MissingSection {
                path: self.path.clone(),
                section: format!("gateway.{id}"),
            })
    }

    /// The section of OSD `id`.
    pub fn osd_section(&self, id: u32) -> Result<&OsdSection, ConfigError> {
        self.osd
            .get(&id.to_string())
            .ok_or_else(|| ConfigError::MissingSection {
                path: self.path.clone(),
                section: format!("osd.{id}"),
            })
    }

    /// Serializes to TOML (used by `dev up` to write the cluster's file).
    /// `[global]` holds only what differs from the defaults (and the fsid
    /// and monitors), so the central configuration can set the rest.
    pub fn to_toml(&self) -> String {
        let Ok(mut table) = toml::Table::try_from(self) else {
            return String::new();
        };
        let defaults = toml::Table::try_from(GlobalSection::default()).unwrap_or_default();
        if let Some(toml::Value::Table(g)) = table.get_mut("global") {
            g.retain(|k, v| k == "fsid" || k == "mon_host" || defaults.get(k) != Some(v));
        }
        toml::to_string_pretty(&table).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn osd_memory_target_splits_into_cache_and_op_budget() {
        let osd = |extra: &str| -> OsdSection {
            toml::from_str(&format!("addr = \"h:1\"\ndata = \"/d\"\n{extra}")).unwrap()
        };
        // Default 1G: a quarter each to the caches and to client op data.
        let b = osd("").memory_budget().unwrap();
        assert_eq!(
            (b.target, b.cache, b.client_ops),
            (1 << 30, 256 << 20, 256 << 20)
        );
        let b = osd("memory_target = \"512M\"\ncache_size = \"300M\"")
            .memory_budget()
            .unwrap();
        assert_eq!((b.cache, b.client_ops), (300 << 20, 128 << 20));
        let small = osd("memory_target = \"32M\"").memory_budget().unwrap_err();
        assert!(small.contains("at least 64M"), "{small}");
        let bad = osd("memory_target = \"lots\"").memory_budget().unwrap_err();
        assert!(bad.starts_with("memory_target:"), "{bad}");
    }

    #[test]
    fn gateway_memory_target_splits_into_write_and_read_buffers() {
        let b = gateway_memory_budget(&default_gateway_memory_target()).unwrap();
        assert_eq!(
            (b.target, b.write_buffers, b.read_buffers),
            (256 << 20, 64 << 20, 64 << 20)
        );
        let small = gateway_memory_budget("16M").unwrap_err();
        assert!(small.contains("at least 32M"), "{small}");
        let bad = gateway_memory_budget("much").unwrap_err();
        assert!(bad.starts_with("memory_target:"), "{bad}");
    }

    #[test]
    fn gateway_listeners_follow_addr_tls_addr_and_the_certificate() {
        let gw = |addr: &str, tls_addr: Option<&str>, cert: bool, key: bool| GatewaySection {
            addr: addr.into(),
            tls_addr: tls_addr.map(Into::into),
            tls_cert: cert.then(|| PathBuf::from("c.pem")),
            tls_key: key.then(|| PathBuf::from("k.pem")),
            zone: None,
            keyring: None,
            metrics_addr: None,
            memory_target: default_gateway_memory_target(),
        };
        let files = (PathBuf::from("c.pem"), PathBuf::from("k.pem"));
        let plain = gw("h:1", None, false, false);
        assert_eq!(
            plain.tls_listeners().unwrap(),
            GatewayListeners {
                http: Some("h:1".into()),
                https: None
            }
        );
        assert_eq!(plain.endpoint_url(), "http://h:1");
        let both = gw("h:1", Some("h:2"), true, true);
        assert_eq!(
            both.tls_listeners().unwrap(),
            GatewayListeners {
                http: Some("h:1".into()),
                https: Some(("h:2".into(), files.0.clone(), files.1.clone()))
            }
        );
        assert_eq!(both.endpoint_url(), "https://h:2");
        // A certificate without tls_addr: addr itself is HTTPS.
        let only = gw("h:1", None, true, true);
        assert_eq!(
            only.tls_listeners().unwrap(),
            GatewayListeners {
                http: None,
                https: Some(("h:1".into(), files.0, files.1))
            }
        );
        assert_eq!(only.endpoint_url(), "https://h:1");
        for bad in [
            gw("h:1", None, true, false),
            gw("h:1", None, false, true),
            gw("h:1", Some("h:2"), false, false),
            gw("", None, false, false),
        ] {
            assert!(bad.tls_listeners().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn loads_sections_and_rejects_bad_values() {
        let dir = std::env::temp_dir().join(format!("meridian-conf-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("m.toml");
        std::fs::write(
            &p,
            "[global]\nfsid = \"abc\"\n[mon.1]\naddr = \"127.0.0.1:1\"\ndata = \"/tmp/x\"\n[osd.0]\naddr = \"127.0.0.1:2\"\ndata = \"/tmp/y\"\n",
        )
        .unwrap();
        let c = Config::load(&p).unwrap();
        assert_eq!(c.monitors(), vec![(1, "127.0.0.1:1".to_string())]);
        assert_eq!(c.osd_section(0).unwrap().engine, "auto");
        assert!(c.osd_section(7).is_err());
        std::fs::write(&p, "[global]\nfsid = \"abc\"\nbogus = 1\n").unwrap();
        assert!(matches!(Config::load(&p), Err(ConfigError::Parse { .. })));
        std::fs::write(&p, "[global]\nfsid = \"abc\"\n").unwrap();
        assert!(matches!(Config::load(&p), Err(ConfigError::Invalid { .. })));
        std::fs::write(
            &p,
            "[global]\nmon_host=[\"a:1\"]\n[osd.0]\naddr=\"x\"\ndata=\"/y\"\nengine=\"spdk\"\n",
        )
        .unwrap();
        assert!(matches!(Config::load(&p), Err(ConfigError::Invalid { .. })));
        std::fs::write(
            &p,
            "[global]\nmon_host=[\"a:1\"]\nrgw_inline_max_size = 5000000\n",
        )
        .unwrap();
        assert!(matches!(Config::load(&p), Err(ConfigError::Invalid { .. })));
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn the_file_names_only_what_differs_and_its_keys_are_known() {
        let mut c = Config::default();
        c.global.fsid = "f".into();
        c.global.mon_host = vec!["127.0.0.1:1".into()];
        c.global.rgw_sync_window = 3;
        let text = c.to_toml();
        assert!(text.contains("rgw_sync_window = 3"), "{text}");
        assert!(
            !text.contains("rgw_sync_lease_s"),
            "defaults stay out: {text}"
        );
        let dir = std::env::temp_dir().join(format!("meridian-conf-keys-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("m.toml");
        std::fs::write(
            &p,
            text.replace("rgw_sync_window = 3", "rgw_sync_lease_period = 9"),
        )
        .unwrap();
        let back = Config::load(&p).unwrap();
        assert_eq!(back.global.rgw_sync_lease_s, 9);
        assert!(
            back.file_global_keys.contains("rgw_sync_lease_s"),
            "aliases are canonical"
        );
        assert!(!back.file_global_keys.contains("rgw_sync_window"));
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn global_options_are_typed_and_checked() {
        let mut g = GlobalSection::default();
        g.set_option("osd_max_pg_log_entries=20").unwrap();
        assert_eq!(g.osd_max_pg_log_entries, 20);
        g.set_option(" osd_crush_chooseleaf_type = osd ").unwrap();
        assert_eq!(g.osd_crush_chooseleaf_type, "osd");
        g.set_option("mon_host=[\"127.0.0.1:1\", \"127.0.0.1:2\"]")
            .unwrap();
        assert_eq!(g.mon_host.len(), 2);
        let e = g.set_option("osd_heartbeat_grace=1").unwrap_err();
        assert!(e.to_string().contains("osd_heartbeat_grace_ms"), "{e}");
        let e = g.set_option("osd_max_pg_log_entries=lots").unwrap_err();
        assert!(matches!(e, ConfigError::Option { .. }), "{e}");
        assert!(g.set_option("no-equals-sign").is_err());
        assert_eq!(
            g.osd_max_pg_log_entries, 20,
            "a failed option leaves the value"
        );
    }
}
