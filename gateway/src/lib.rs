//! The S3 gateway (`meridian gateway --id N`): stateless HTTP front end of one
//! zone. s3s parses requests, verifies SigV4 (headers, presigned URLs,
//! aws-chunked payloads) and renders XML; [`s3::MeridianS3`] maps each
//! operation onto the zone storage layer (`meridian-zone`), so any number of
//! gateways of one zone serve the same data.

mod auth;
mod checksum;
mod convert;
pub mod http;
pub mod s3;

use anyhow::Context as _;
use meridian_client::{ClientOptions, Cluster};
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
    Ok(ZoneParams::from_global(
        &cfg.global,
        &zone,
        &cfg.global.rgw_zonegroup,
    ))
}

/// Connects to the cluster the way every gateway-side tool does.
pub async fn connect(cfg: &Config) -> anyhow::Result<Cluster> {
    Cluster::connect(
        cfg.monitor_addrs(),
        ClientOptions {
            op_timeout: Duration::from_millis(cfg.global.client_op_timeout_ms),
            ..Default::default()
        },
    )
    .await
    .with_context(|| format!("connect to the cluster of {}", cfg.path.display()))
}

/// Runs gateway `id` until SIGTERM/SIGINT, then drains requests in flight.
pub async fn run(cfg: Config, id: String) -> anyhow::Result<()> {
    let section = cfg.gateway_section(&id)?.clone();
    let params = zone_params(&cfg, &id)?;
    let cluster = connect(&cfg).await?;
    let zone = Zone::open(cluster, params.clone())
        .await
        .with_context(|| format!("open zone {}", params.zone))?;
    if let Some(m) = &section.metrics_addr {
        let bound = meridian_common::metrics::serve(m)
            .await
            .with_context(|| format!("serve gateway.{id} metrics on {m}"))?;
        tracing::info!(gateway = %id, %bound, "metrics on http://{bound}/metrics");
    }
    tokio::spawn(zone.clone().gc_worker(Duration::from_secs(
        cfg.global.rgw_gc_processor_period_s.max(1),
    )));
    let dns = (!cfg.global.rgw_dns_name.is_empty()).then(|| cfg.global.rgw_dns_name.clone());
    let service = http::service(zone.clone(), dns);
    let listener = tokio::net::TcpListener::bind(&section.addr)
        .await
        .with_context(|| format!("gateway.{id}: listen on {}", section.addr))?;
    tracing::info!(
        gateway = %id,
        zone = %params.zone,
        addr = %section.addr,
        "S3 gateway listening"
    );
    http::serve(
        listener,
        Arc::new(service),
        shutdown_signal(),
        DRAIN_TIMEOUT,
    )
    .await;
    tracing::info!(gateway = %id, "S3 gateway stopped");
    Ok(())
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
