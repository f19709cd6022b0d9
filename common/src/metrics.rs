//! The Prometheus endpoint every daemon serves (`GET /metrics`), over the
//! process-wide `metrics` recorder. Metric names are documented in
//! `docs/metrics.md`; add a line there when you add one.

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use std::net::SocketAddr;
use std::sync::OnceLock;

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Latency buckets (seconds) shared by every `*_latency_seconds` histogram:
/// 100 µs to 30 s, so both a 4 KiB op and a 64 MiB upload land in a bucket.
const LATENCY_BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0, 30.0,
];

/// Installs the process-wide recorder once and returns its handle.
pub fn recorder() -> &'static PrometheusHandle {
    HANDLE.get_or_init(|| {
        let builder = PrometheusBuilder::new()
            .set_buckets(LATENCY_BUCKETS)
            .expect("latency buckets are not empty");
        let recorder = builder.build_recorder();
        let handle = recorder.handle();
        // A second recorder (a test that runs two daemons in one process) keeps the first.
        let _ = metrics::set_global_recorder(recorder);
        handle
    })
}

/// Serves `GET /metrics` on `addr` until the process ends. Binding errors are
/// returned so a daemon with a bad `metrics_addr` fails at start-up, loudly.
pub async fn serve(addr: &str) -> std::io::Result<SocketAddr> {
    let handle = recorder();
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let io = hyper_util::rt::TokioIo::new(stream);
            let svc =
                hyper::service::service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                    let (status, body) = if req.uri().path() == "/metrics" {
                        (200, handle.render())
                    } else {
                        (404, "try /metrics\n".to_string())
                    };
                    async move {
                        hyper::Response::builder()
                            .status(status)
                            .header("content-type", "text/plain; version=0.0.4")
                            .body(http_body_util::Full::new(bytes::Bytes::from(body)))
                    }
                });
            tokio::spawn(async move {
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(io, svc)
                    .await;
            });
        }
    });
    Ok(bound)
}
