//! The Meridian OSD: serves the PGs CRUSH assigns it from a local object
//! store, replicates each write to the whole acting set before acknowledging
//! it, peers and recovers on every map change, and scrubs on request.
//!
//! `run` is the whole daemon; the `meridian osd` subcommand only parses flags.

pub mod daemon;
pub mod error;
pub mod exec;
pub mod history;
pub mod maps;
pub mod objstate;
pub mod peering;
pub mod pg;
pub mod pglog;
pub mod scrub;
pub mod service;

use anyhow::Context as _;
use meridian_common::Config;
use meridian_common::size::parse_size;
use meridian_objectstore::{BlockStore, IoEngine, ObjectStore, StoreConfig};
use std::sync::Arc;

/// Opens the OSD's store, creating it on first start (an empty or missing data dir).
pub fn open_store(cfg: &Config, id: u32) -> anyhow::Result<BlockStore> {
    let s = cfg.osd_section(id)?;
    let engine = match s.engine.as_str() {
        "io_uring" => IoEngine::IoUring,
        "pread" => IoEngine::Pread,
        _ => IoEngine::Auto,
    };
    let budget = s.memory_budget().map_err(anyhow::Error::msg)?;
    let sc = StoreConfig {
        fsid: cfg.global.fsid.clone(),
        osd_id: id,
        block_size_bytes: parse_size(&s.block_size).map_err(anyhow::Error::msg)?,
        engine,
        cache_bytes: budget.cache,
        // A group commit's buffers come out of the op budget's share.
        max_batch_bytes: (budget.client_ops / 2).clamp(4 << 20, 64 << 20),
        preallocate: s.preallocate,
        ..StoreConfig::default()
    };
    // Empty but for its keyring (deployment puts the key there first).
    let fresh = !s.data.exists()
        || std::fs::read_dir(&s.data)
            .map(|d| d.flatten().all(|e| e.file_name() == "keyring"))
            .unwrap_or(true);
    if fresh {
        std::fs::create_dir_all(&s.data)
            .with_context(|| format!("create OSD data dir {}", s.data.display()))?;
        BlockStore::mkfs(&s.data, &sc)
            .with_context(|| format!("mkfs osd.{id} in {}", s.data.display()))?;
        tracing::info!(osd = id, dir = %s.data.display(), "created a new object store");
    }
    BlockStore::open(&s.data, &sc)
        .with_context(|| format!("open osd.{id} store in {}", s.data.display()))
}

/// Runs OSD `id` described by `cfg` until the process is killed.
pub async fn run(mut cfg: Config, id: u32) -> anyhow::Result<()> {
    if cfg.global.fsid.is_empty() {
        anyhow::bail!("config {} has no global.fsid", cfg.path.display());
    }
    let section = cfg.osd_section(id)?.clone();
    // Fault injection for tests (`FAILPOINTS=store::data_sync=return ...`).
    meridian_objectstore::failpoints::configure_from_env()
        .map_err(|e| anyhow::anyhow!("FAILPOINTS: {e}"))?;
    let store = tokio::task::spawn_blocking({
        let cfg = cfg.clone();
        move || open_store(&cfg, id)
    })
    .await??;
    let engine = store.engine_name().to_string();
    tracing::info!(osd = id, engine = %engine, "object store open");
    let total = store.statfs().map(|u| u.total_bytes).unwrap_or(1 << 40);
    let weight = match section.weight {
        Some(w) if w > 0.0 => (w * 65536.0) as u32,
        _ => ((total as f64 / (1u64 << 40) as f64 * 65536.0) as u32).max(655),
    };
    let host = section.host.clone().unwrap_or_else(hostname);
    let ident = daemon::OsdIdentity {
        id,
        fsid: cfg.global.fsid.clone(),
        addr: section.addr.clone(),
        weight,
        device_class: section.device_class.clone().unwrap_or_default(),
        host,
        rack: section.rack.clone().unwrap_or_default(),
        datacenter: section.datacenter.clone().unwrap_or_default(),
    };
    let mons = cfg.monitor_addrs();
    let cred = osd_credential(&cfg, &section, id, &mons)?;
    let chain = meridian_common::central::osd_chain(id);
    let central = meridian_client::fetch_central_config(&mons, &cred, &chain).await;
    meridian_client::lay_central_config(&mut cfg, central, &chain, &format!("osd.{id}"));
    let secrets = Arc::new(meridian_auth::grpc::FetchedSecrets::default());
    tokio::spawn(secrets.clone().keep_fetched(mons.clone(), cred.clone()));
    let (tx, rx) =
        tokio::sync::watch::channel(Arc::new(meridian_client::MapView::new(Default::default())));
    tokio::spawn(meridian_client::subscribe_maps(
        mons.clone(),
        tx,
        cred.clone(),
    ));
    let osd = daemon::Osd::new(
        ident,
        Arc::new(store),
        engine,
        rx,
        mons,
        daemon::OsdTunables {
            client_op_bytes: section
                .memory_budget()
                .map_err(anyhow::Error::msg)?
                .client_ops,
            ..daemon::OsdTunables::from_global(&cfg.global)
        },
        cred,
    );
    let n = osd.load_local_pgs()?;
    tracing::info!(osd = id, pgs = n, "loaded local PGs");
    let addr = section
        .addr
        .parse()
        .with_context(|| format!("osd.{id} addr {:?} is not host:port", section.addr))?;
    let builder = meridian_auth::transport::server(
        &format!("osd.{id}"),
        cfg.global.internal_tls,
        section.tls_cert.as_deref(),
        section.tls_key.as_deref(),
    )?;
    let server = builder
        .tcp_nodelay(true)
        .layer(meridian_auth::grpc::AuthLayer::new(
            secrets,
            None,
            cfg.global.auth_required,
        ))
        .add_service(
            meridian_proto::osd::osd_service_server::OsdServiceServer::new(
                service::OsdServer::new(osd.clone()),
            )
            .max_decoding_message_size(meridian_proto::MAX_MESSAGE_BYTES)
            .max_encoding_message_size(meridian_proto::MAX_MESSAGE_BYTES),
        )
        .add_service(meridian_proto::reflection_service())
        .serve(addr);
    let serving = tokio::spawn(server);
    if let Some(m) = &section.metrics_addr {
        let bound = meridian_common::metrics::serve(m)
            .await
            .with_context(|| format!("serve osd.{id} metrics on {m}"))?;
        tracing::info!(osd = id, %bound, "metrics on http://{bound}/metrics");
    }
    let epoch = osd.boot().await?;
    tracing::info!(osd = id, epoch, %addr, "booted");
    tokio::spawn(osd.clone().map_loop());
    let heartbeats = tokio::spawn(osd.clone().heartbeat_loop());
    let mut fatal = osd.fatal.subscribe();
    let stopped = async move {
        let _ = fatal.wait_for(|f| f.is_some()).await;
        fatal.borrow().clone().unwrap_or_default()
    };
    tokio::select! {
        r = serving => {
            r?.with_context(|| format!("serve osd.{id} on {addr}"))?;
            Ok(())
        }
        reason = stopped => {
            // Let the heartbeat tell the monitors why (bounded), then exit.
            let _ = tokio::time::timeout(std::time::Duration::from_secs(5), heartbeats).await;
            anyhow::bail!("osd.{id} stopped serving: {reason}")
        }
    }
}

/// The OSD's own key (`osd.N` in its keyring), kept as a ticket.
fn osd_credential(
    cfg: &Config,
    section: &meridian_common::OsdSection,
    id: u32,
    mons: &[String],
) -> anyhow::Result<meridian_client::Credential> {
    let path = Config::osd_keyring_path(section);
    let name: meridian_auth::EntityName = format!("osd.{id}").parse()?;
    match meridian_auth::grpc::Credentials::from_keyring(&path, &name) {
        Ok(c) => Ok(meridian_client::Credential::Ticket(
            meridian_client::TicketKeeper::new(c, mons.to_vec()),
        )),
        Err(e) if cfg.global.auth_required => Err(anyhow::anyhow!(
            "{e}: create the OSD's key with `meridian auth get-or-create osd.{id} \
             mon 'allow profile osd' osd 'allow profile osd' -o {}`",
            path.display()
        )),
        Err(e) => {
            tracing::warn!(error = %e, "no OSD key: calling the cluster unauthenticated");
            Ok(meridian_client::Credential::Anonymous)
        }
    }
}

fn hostname() -> String {
    std::fs::read_to_string("/etc/hostname")
        .map(|s| s.trim().to_string())
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "localhost".into())
}
