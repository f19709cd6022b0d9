//! The S3 gateway (`meridian gateway --id N`): stateless HTTP front end of one
//! zone. s3s parses requests, verifies SigV4 (headers, presigned URLs,
//! aws-chunked payloads) and renders XML; [`s3::MeridianS3`] maps each
//! operation onto the zone storage layer (`meridian-zone`), so any number of
//! gateways of one zone serve the same data.

mod auth;
mod checksum;
mod chunked;
mod convert;
pub mod cors;
pub mod http;
pub mod policy;
pub mod ratelimit;
pub use meridian_sync::peer;
pub mod s3;
mod sigv2;
pub mod site;
mod sync_rpc;
pub mod tls;
mod unread_body;

/// The request parsers in front of s3s, for the fuzz targets (not an API).
#[doc(hidden)]
pub mod fuzzing {
    /// Runs the pre-signature checks, the SigV2 parser and the aws-chunked
    /// guard over a request: `head` is `METHOD URI` then `name: value`
    /// lines; `body` goes through the chunk guard. Only a panic is a failure.
    pub fn request(head: &str, body: &[u8]) {
        let mut lines = head.lines();
        let mut first = lines.next().unwrap_or_default().splitn(2, ' ');
        let method = first.next().unwrap_or_default();
        let uri = first.next().unwrap_or("/");
        let mut b = http::Request::builder().method(method).uri(uri);
        for l in lines {
            if let Some((n, v)) = l.split_once(':') {
                b = b.header(n.trim(), v.trim());
            }
        }
        let Ok(req) = b.body(()) else { return };
        let _ = crate::auth::pre_signature_check(
            req.uri(),
            req.headers(),
            std::time::SystemTime::now(),
        );
        let _ = crate::sigv2::is_form_post(&req);
        if let Some(s) = crate::sigv2::Signed::of(&req, Some("bucket"))
            && let Some(c) = s.claim()
        {
            let sts = s.string_to_sign(c.mode);
            let _ = crate::sigv2::signature_matches("secret", &sts, &c.signature);
        }
        if let Some(signer) = crate::chunked::ChunkSigner::for_request(&req, "secret") {
            let mut guard = crate::chunked::ChunkGuard::new(signer);
            let mut out = std::collections::VecDeque::new();
            for piece in body.chunks(997) {
                guard.feed(bytes::Bytes::copy_from_slice(piece), &mut out);
            }
            guard.finish(&mut out);
            let passed: usize = out.iter().map(|b| b.len()).sum();
            assert_eq!(
                passed,
                body.len(),
                "the chunk guard changed the body's length"
            );
        }
    }
}
pub mod zone_service;

use anyhow::Context as _;
use meridian_client::{ClientOptions, Cluster, Credential, Credentials};
use meridian_common::Config;
use meridian_zone::{Zone, ZoneParams};
use std::sync::Arc;
use std::time::Duration;

/// How long shutdown waits for requests in flight.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(30);

/// The zone parameters gateway `id` serves.
pub fn zone_params(cfg: &Config, id: &str) -> anyhow::Result<ZoneParams> {
    let section = cfg.gateway_section(id)?;
    let zone = section
        .zone
        .clone()
        .unwrap_or_else(|| cfg.global.rgw_zone.clone());
    let budget = section
        .memory_budget()
        .map_err(|e| anyhow::anyhow!("[gateway.{id}] {e}"))?;
    Ok(ZoneParams::from_global(&cfg.global, &zone, &cfg.global.rgw_zonegroup).with_memory(budget))
}

/// Connects to the cluster the way every gateway-side tool does, as
/// `credentials` (`None`: unauthenticated).
pub async fn connect(cfg: &Config, credentials: Option<Credentials>) -> anyhow::Result<Cluster> {
    Cluster::connect(
        cfg.monitor_addrs(),
        ClientOptions {
            op_timeout: Duration::from_millis(cfg.global.client_op_timeout_ms),
            credentials,
            ..Default::default()
        },
    )
    .await
    .with_context(|| format!("connect to the cluster of {}", cfg.path.display()))
}

/// Runs gateway `id` until SIGTERM/SIGINT, then drains requests in flight.
pub async fn run(mut cfg: Config, id: String) -> anyhow::Result<()> {
    let section = cfg.gateway_section(&id)?.clone();
    let wanted = section
        .tls_listeners()
        .map_err(|e| anyhow::anyhow!("[gateway.{id}]: {e}"))?;
    // Certificates first: a bad one is a configuration error, reported
    // before anything else starts.
    let tls = match &wanted.https {
        Some((_, cert, key)) => Some(tls::acceptor(cert, key).with_context(|| {
            format!("gateway.{id}: TLS (tls_cert/tls_key or --tls-cert/--tls-key)")
        })?),
        None => None,
    };
    peer::trust_ca_file(std::path::Path::new(&cfg.global.tls_ca_file))
        .map_err(|e| anyhow::anyhow!("tls_ca_file: {e}"))?;
    // Fault injection for tests (`FAILPOINTS=sync::apply_delay=return(2000)`).
    meridian_common::failpoints::configure_from_env()
        .map_err(|e| anyhow::anyhow!("FAILPOINTS: {e}"))?;
    let cluster = connect(&cfg, gateway_credentials(&cfg, &section, &id)?).await?;
    cluster
        .apply_central_config(
            &mut cfg,
            &meridian_common::central::gateway_chain(&id),
            &format!("gateway.{id}"),
        )
        .await
        .context("read the central configuration (`meridian config dump`)")?;
    let params = zone_params(&cfg, &id)?;
    let zone = Zone::open(cluster, params.clone())
        .await
        .with_context(|| format!("open zone {}", params.zone))?;
    let metrics_addr = section.metrics_addr.clone().or_else(|| {
        let port = cfg.global.rgw_prometheus_port;
        let host = section.addr.rsplit_once(':').map(|(h, _)| h.to_string());
        (port != 0).then(|| format!("{}:{port}", host.unwrap_or_else(|| "127.0.0.1".into())))
    });
    if let Some(m) = &metrics_addr {
        let bound = meridian_common::metrics::serve(m)
            .await
            .with_context(|| format!("serve gateway.{id} metrics on {m}"))?;
        tracing::info!(gateway = %id, %bound, "metrics on http://{bound}/metrics");
    }
    tokio::spawn(zone.clone().gc_worker(Duration::from_secs(
        cfg.global.rgw_gc_processor_period_s.max(1),
    )));
    let (lc_day, lc_every) = lifecycle_days(&cfg.global);
    tokio::spawn(zone.clone().lc_worker(
        lc_day,
        lc_every,
        format!("gateway.{id}.{}", std::process::id()),
    ));
    let site = site::Site::follow(zone.cluster().clone(), params.zone.clone());
    let realm = site
        .role()
        .realm
        .as_ref()
        .map(|r| r.name.clone())
        .unwrap_or_default();
    if !cfg.global.rgw_realm.is_empty() && cfg.global.rgw_realm != realm {
        anyhow::bail!(
            "gateway.{id}: rgw_realm is {:?} but zone {} is {}",
            cfg.global.rgw_realm,
            params.zone,
            if realm.is_empty() {
                "in no realm".to_string()
            } else {
                format!("in realm {realm:?}")
            }
        );
    }
    // Trimming is the zone's own log upkeep: it runs whether or not this
    // gateway runs sync (one gateway of the zone at a time, by lease).
    let trimmer = meridian_sync::trim::LogTrimmer::new(
        zone.clone(),
        meridian_sync::SyncSettings::from_global(&cfg.global),
        format!("gateway.{id}.{}", std::process::id()),
    );
    let warnings = trimmer.warnings();
    tokio::spawn(trimmer.run());
    tokio::spawn(beacons(
        site.clone(),
        id.clone(),
        (section.addr.clone(), section.endpoint_url()),
        cfg.monitor_addrs(),
        zone.cluster().credential(),
        warnings,
    ));
    tokio::spawn(follow_master_period(
        zone.cluster().clone(),
        site.clone(),
        Duration::from_secs(cfg.global.rgw_period_poll_s.max(1)),
    ));
    if cfg.global.rgw_run_sync_thread {
        tokio::spawn(meridian_sync::agent::run(
            zone.clone(),
            meridian_sync::SyncSettings::from_global(&cfg.global),
            format!("gateway.{id}.{}", std::process::id()),
            false,
        ));
    }
    let dns = (!cfg.global.rgw_dns_name.is_empty()).then(|| cfg.global.rgw_dns_name.clone());
    let remote_addr = http::remote_addr_header(&cfg.global.rgw_remote_addr_param)
        .map_err(|e| anyhow::anyhow!("gateway.{id}: {e}"))?;
    let service = http::service(zone.clone(), site, dns, remote_addr);
    let mut listeners = Vec::new();
    for (addr, tls) in [
        wanted.http.as_ref().map(|a| (a, None)),
        wanted.https.as_ref().map(|(a, _, _)| (a, tls.clone())),
    ]
    .into_iter()
    .flatten()
    {
        let tcp = tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("gateway.{id}: listen on {addr}"))?;
        let scheme = if tls.is_some() { "https" } else { "http" };
        tracing::info!(
            gateway = %id,
            zone = %params.zone,
            url = %format!("{scheme}://{addr}"),
            "S3 gateway listening"
        );
        listeners.push(http::Listener { tcp, tls });
    }
    http::serve(
        listeners,
        Arc::new(service),
        shutdown_signal(),
        DRAIN_TIMEOUT,
    )
    .await;
    tracing::info!(gateway = %id, "S3 gateway stopped");
    Ok(())
}

/// How long a lifecycle day lasts and how often passes run
/// (`rgw_lc_debug_interval` shortens both for tests, as in RGW).
pub fn lifecycle_days(g: &meridian_common::GlobalSection) -> (Duration, Duration) {
    if g.rgw_lc_debug_interval > 0 {
        let d = Duration::from_secs(g.rgw_lc_debug_interval);
        (d, d)
    } else {
        (
            Duration::from_secs(24 * 3600),
            Duration::from_secs(g.rgw_lc_interval_s.max(1)),
        )
    }
}

/// Gateway `id`'s key (`client.gateway.ID`) from its keyring.
fn gateway_credentials(
    cfg: &Config,
    section: &meridian_common::GatewaySection,
    id: &str,
) -> anyhow::Result<Option<Credentials>> {
    let path = cfg.gateway_keyring_path(section);
    let name: meridian_auth::EntityName = format!("client.gateway.{id}")
        .parse()
        .with_context(|| format!("gateway id {id:?}"))?;
    match Credentials::from_keyring(&path, &name) {
        Ok(c) => Ok(Some(c)),
        Err(e) if cfg.global.auth_required => Err(anyhow::anyhow!(
            "{e}: create the gateway's key with `meridian auth get-or-create {name} \
             mon 'allow rwx' osd 'allow rwx' -o {}`",
            path.display()
        )),
        Err(_) => Ok(None),
    }
}

/// Tells every monitor, every few seconds, which zone this gateway serves
/// (`meridian status` lists the gateways seen recently).
async fn beacons(
    site: site::Site,
    id: String,
    (addr, url): (String, String),
    mons: Vec<String>,
    cred: Credential,
    warnings: Arc<std::sync::Mutex<Vec<String>>>,
) {
    loop {
        let role = site.role();
        let b = meridian_proto::mon::GatewayBeacon {
            id: id.clone(),
            addr: addr.clone(),
            zone: role.zone.clone(),
            zonegroup: role.zonegroup.clone(),
            realm: role
                .realm
                .as_ref()
                .map(|r| r.name.clone())
                .unwrap_or_default(),
            period: role
                .period
                .as_ref()
                .map(|p| p.id.clone())
                .unwrap_or_default(),
            period_epoch: role.period.as_ref().map(|p| p.epoch).unwrap_or(0),
            master: role.is_master,
            read_only: role.read_only,
            last_seen_ms_ago: 0,
            url: url.clone(),
            health_warnings: warnings
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .iter()
                .take(16)
                .map(|w| w.chars().take(512).collect())
                .collect(),
        };
        for m in &mons {
            if let Ok(mut c) = meridian_client::mon_client(m, &cred) {
                let _ = tokio::time::timeout(Duration::from_secs(2), c.beacon(b.clone())).await;
            }
        }
        tokio::time::sleep(Duration::from_secs(5)).await;
    }
}

/// Every `period`: a secondary asks the master zone for its current
/// period; the master asks every other zone (one promoted in an emergency
/// while this one was unreachable holds a newer period). A newer period is
/// installed here: a zone that missed a push catches up without a `period
/// pull`, and an old master that returns becomes a secondary instead of
/// diverging.
async fn follow_master_period(cluster: Cluster, site: site::Site, period: Duration) {
    use meridian_proto::mon::mon_command::Cmd;
    use meridian_proto::multisite::{self as ms, multisite_command};
    loop {
        tokio::time::sleep(period).await;
        let role = site.role();
        let (Some(realm), Some(cur), Some(key)) = (&role.realm, &role.period, &role.system_key)
        else {
            continue;
        };
        let asked: Vec<&Vec<String>> = if role.is_master {
            role.peers.iter().map(|(_, eps)| eps).collect()
        } else {
            vec![&role.master_endpoints]
        };
        let req = ms::GetPeriodRequest {
            auth: None,
            realm_id: realm.id.clone(),
            period_id: String::new(),
        };
        let mut found = None;
        for eps in asked.into_iter().filter(|e| !e.is_empty()) {
            let got = peer::on_any(eps, |mut c| {
                let req = peer::sign(req.clone(), key);
                async move { c.get_period(req).await }
            })
            .await;
            let Ok(p) = got else { continue };
            let newer = p.realm_epoch > cur.realm_epoch || (p.id == cur.id && p.epoch > cur.epoch);
            if newer {
                found = Some(p);
                break;
            }
        }
        let Some(p) = found else { continue };
        if role.is_master {
            tracing::warn!(
                period = %p.id,
                master = %p.master_zone,
                "another zone committed a newer period (an emergency failover while this zone was unreachable): this zone follows it as a secondary"
            );
        }
        let r = cluster
            .mon_command(Cmd::Multisite(ms::MultisiteCommand {
                cmd: Some(multisite_command::Cmd::PeriodInstall(ms::PeriodInstall {
                    realm: Some(realm.clone()),
                    period: Some(p.clone()),
                })),
            }))
            .await;
        match r {
            Ok(r) => tracing::info!(period = %p.id, epoch = p.epoch, "{}", r.message),
            Err(e) => {
                tracing::warn!(period = %p.id, error = %e, "could not install the master's period")
            }
        }
    }
}

async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        // Without signal handlers the gateway runs until killed.
        std::future::pending::<()>().await;
        return;
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
}
