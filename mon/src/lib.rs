//! The Meridian monitor: a Raft group (tikv `raft`) replicating the cluster
//! map, serving it to clients and daemons over gRPC.
//!
//! `run` is the whole daemon; the `meridian mon` subcommand only parses flags.

pub mod auth;
pub mod config_db;
pub mod crush_edit;
pub mod multisite;
pub mod node;
pub mod service;
pub mod state;
pub mod storage;
pub mod transport;

use anyhow::Context as _;
use meridian_common::Config;
use std::collections::HashMap;
use std::time::Duration;

/// Runs monitor `id` described by `cfg` until the process is killed.
pub async fn run(cfg: Config, id: u64) -> anyhow::Result<()> {
    let section = cfg.mon_section(id)?.clone();
    if cfg.global.fsid.is_empty() {
        anyhow::bail!(
            "config {} has no global.fsid; every cluster needs one",
            cfg.path.display()
        );
    }
    let members = cfg.monitors();
    if !members.iter().any(|(m, _)| *m == id) {
        anyhow::bail!("mon.{id} is not among the configured monitors");
    }
    let voters: Vec<u64> = members.iter().map(|(m, _)| *m).collect();
    let storage = storage::MonStorage::open(&section.data, &cfg.global.fsid, voters)
        .with_context(|| format!("open monitor store in {}", section.data.display()))?;
    let mon_key = read_mon_key(&cfg, &section)?;
    let peer_cred = match &mon_key {
        Some(k) => meridian_auth::grpc::Credential::MonPeer(std::sync::Arc::new(*k)),
        None => meridian_auth::grpc::Credential::Anonymous,
    };
    let peers: Vec<(u64, String)> = members.iter().filter(|(m, _)| *m != id).cloned().collect();
    let transport =
        transport::RaftTransport::start(cfg.global.fsid.clone(), peers, peer_cred.clone());
    let node = node::spawn(
        id,
        storage,
        transport,
        Duration::from_millis(cfg.global.mon_tick_ms),
    )?;
    let all: HashMap<u64, String> = members.into_iter().collect();
    let node_auth = node.auth.clone();
    let secrets = std::sync::Arc::new(auth::MonSecrets(node.auth.clone()));
    let server = service::MonServer::new(
        id,
        cfg.global.fsid.clone(),
        node,
        all,
        cfg.global.clone(),
        cfg.file_global_keys.clone(),
        peer_cred,
    );
    tokio::spawn(server.clone().leader_duties());
    let keyring = cfg.admin_keyring_path(&section);
    tokio::spawn(auth::publish_admin_keyring(node_auth, keyring));
    let addr = section
        .addr
        .parse()
        .with_context(|| format!("mon.{id} addr {:?} is not host:port", section.addr))?;
    tracing::info!(mon = id, %addr, "monitor listening");
    if let Some(m) = &section.metrics_addr {
        let bound = meridian_common::metrics::serve(m)
            .await
            .with_context(|| format!("serve mon.{id} metrics on {m}"))?;
        tracing::info!(mon = id, %bound, "metrics on http://{bound}/metrics");
    }
    let builder = meridian_auth::transport::server(
        &format!("mon.{id}"),
        cfg.global.internal_tls,
        section.tls_cert.as_deref(),
        section.tls_key.as_deref(),
    )?;
    builder
        .tcp_nodelay(true)
        .layer(meridian_auth::grpc::AuthLayer::new(
            secrets,
            mon_key,
            cfg.global.auth_required,
        ))
        .add_service(
            meridian_proto::mon::mon_service_server::MonServiceServer::new(server)
                .max_decoding_message_size(meridian_proto::MAX_MESSAGE_BYTES)
                .max_encoding_message_size(meridian_proto::MAX_MESSAGE_BYTES),
        )
        .add_service(meridian_proto::reflection_service())
        .serve(addr)
        .await
        .with_context(|| format!("serve mon.{id} on {addr}"))?;
    Ok(())
}

/// The `mon.` key every monitor shares (monitors prove it to each other).
/// Required when authentication is; without it a monitor runs only on a
/// cluster with `auth_required = false`.
fn read_mon_key(
    cfg: &Config,
    section: &meridian_common::MonSection,
) -> anyhow::Result<Option<meridian_auth::ticket::SecretBytes>> {
    let path = Config::mon_keyring_path(section);
    let name: meridian_auth::EntityName = "mon.".parse()?;
    match meridian_auth::grpc::Credentials::from_keyring(&path, &name) {
        Ok(c) => Ok(Some(c.key)),
        Err(e) if cfg.global.auth_required => Err(anyhow::anyhow!(
            "{e}: every monitor needs the cluster's mon. key (create it once with \
             `meridian auth gen-keyring mon. -o FILE` and copy it to each monitor), \
             or set auth_required = false"
        )),
        Err(e) => {
            tracing::warn!(error = %e, "no mon. key: monitors cannot prove themselves to each other");
            Ok(None)
        }
    }
}
