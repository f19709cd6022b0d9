//! `meridian bench --s3 ZONE_A --sync ZONE_B ... SECONDS write`: replication
//! lag between two zones. Objects are PUT into zone A at a steady rate
//! (`--rate`); a sample of them (at most `SAMPLES_PER_S` a second) is polled
//! in zone B from the moment A acknowledged it until B serves it with the
//! same bytes. Also measured: how long a new bucket takes to appear in B.

use crate::s3::S3Client;
use anyhow::bail;
use bytes::Bytes;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Objects tracked per second at most (polling every object at 1,000 PUT/s
/// would load zone B more than the replication does).
const SAMPLES_PER_S: u64 = 20;
/// How often a tracked object is polled in zone B at first; later polls
/// are spaced by a fiftieth of the time waited so far (up to `POLL_MAX`),
/// so a measured lag is at most 2% (or 5 ms) late. Polling every 5 ms
/// throughout made the measurement its own load: at 200 PUT/s and a second
/// of lag, 4,000 GETs a second to zone B, which slowed zone B's sync.
const POLL: Duration = Duration::from_millis(5);
/// Widest spacing of polls.
const POLL_MAX: Duration = Duration::from_millis(100);
/// A tracked object not in zone B after this long counts as missing.
const GIVE_UP: Duration = Duration::from_secs(120);

/// What a sync lag run measured.
#[derive(Debug, Clone, serde::Serialize)]
pub struct SyncReport {
    /// PUTs acknowledged by zone A.
    pub puts: u64,
    /// PUT rate reached (objects/s).
    pub put_rate: f64,
    /// Object size.
    pub object_size: usize,
    /// Objects whose arrival in zone B was timed.
    pub samples: usize,
    /// Lag percentiles (s): from A's acknowledgement to B serving it.
    pub lag_p50_s: f64,
    /// 99th percentile.
    pub lag_p99_s: f64,
    /// Largest.
    pub lag_max_s: f64,
    /// Tracked objects zone B never served within two minutes.
    pub missing: usize,
    /// Failed PUTs.
    pub errors: u64,
    /// Seconds until a bucket created in A could be used in B.
    pub new_bucket_visible_s: f64,
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    sorted[(((sorted.len() - 1) as f64) * p).round() as usize]
}

/// Polls `key` in B until it serves `want`; the lag from `acked`.
async fn track(
    b: Arc<S3Client>,
    bucket: String,
    key: String,
    want: Bytes,
    acked: Instant,
) -> Option<f64> {
    loop {
        if let Ok(got) = b.get(&bucket, &key).await
            && got == want
        {
            return Some(acked.elapsed().as_secs_f64());
        }
        if acked.elapsed() > GIVE_UP {
            return None;
        }
        tokio::time::sleep((acked.elapsed() / 50).clamp(POLL, POLL_MAX)).await;
    }
}

/// Runs the lag measurement.
pub async fn run(
    a: Arc<S3Client>,
    b: Arc<S3Client>,
    bucket_prefix: &str,
    seconds: u64,
    rate: u64,
    size: usize,
    concurrency: usize,
) -> anyhow::Result<SyncReport> {
    if rate == 0 {
        bail!("--sync needs --rate N (PUTs per second)");
    }
    // A new bucket: created in A, usable in B.
    let bucket = format!("{bucket_prefix}-{}", std::process::id());
    let t0 = Instant::now();
    a.ensure_bucket(&bucket).await?;
    let created = Instant::now();
    loop {
        match b.get(&bucket, "no-such-object").await {
            Err(e) if e.to_string().contains("NoSuchKey") => break,
            _ if t0.elapsed() > GIVE_UP => bail!("bucket {bucket} never appeared in zone B"),
            _ => tokio::time::sleep(POLL).await,
        }
    }
    let new_bucket_visible_s = created.elapsed().as_secs_f64();
    let total = rate * seconds;
    let every = (rate / SAMPLES_PER_S).max(1);
    let start = Instant::now();
    let sem = Arc::new(tokio::sync::Semaphore::new(concurrency.max(1)));
    let mut puts = Vec::new();
    let mut tracks = Vec::new();
    let errors = Arc::new(std::sync::atomic::AtomicU64::new(0));
    for i in 0..total {
        let due = start + Duration::from_secs_f64(i as f64 / rate as f64);
        tokio::time::sleep_until(due.into()).await;
        let permit = sem.clone().acquire_owned().await?;
        let (a, b, bucket) = (a.clone(), b.clone(), bucket.clone());
        let errors = errors.clone();
        let tracked = i % every == 0;
        let (tx, rx) = tokio::sync::oneshot::channel();
        puts.push(tokio::spawn(async move {
            let key = format!("lag/{i:08}");
            let mut data = vec![0u8; size];
            for (j, byte) in data.iter_mut().enumerate() {
                *byte = (i as usize).wrapping_mul(31).wrapping_add(j) as u8;
            }
            let data = Bytes::from(data);
            let r = a.put(&bucket, &key, data.clone()).await;
            drop(permit);
            match r {
                Ok(()) if tracked => {
                    let _ = tx.send(Some((b, bucket, key, data, Instant::now())));
                }
                Ok(()) => {}
                Err(_) => {
                    errors.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
            }
        }));
        if tracked {
            tracks.push(tokio::spawn(async move {
                match rx.await {
                    Ok(Some((b, bucket, key, data, acked))) => {
                        Some(track(b, bucket, key, data, acked).await)
                    }
                    _ => None,
                }
            }));
        }
    }
    for p in puts {
        p.await?;
    }
    let elapsed = start.elapsed().as_secs_f64();
    let mut lags = Vec::new();
    let mut missing = 0;
    for t in tracks {
        match t.await? {
            Some(Some(l)) => lags.push(l),
            Some(None) => missing += 1,
            None => {}
        }
    }
    lags.sort_by(f64::total_cmp);
    let errors = errors.load(std::sync::atomic::Ordering::Relaxed);
    Ok(SyncReport {
        puts: total - errors,
        put_rate: (total - errors) as f64 / elapsed,
        object_size: size,
        samples: lags.len(),
        lag_p50_s: percentile(&lags, 0.50),
        lag_p99_s: percentile(&lags, 0.99),
        lag_max_s: lags.last().copied().unwrap_or(0.0),
        missing,
        errors,
        new_bucket_visible_s,
    })
}
