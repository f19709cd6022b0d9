//! `meridian bench`: the `rados bench` workload and report, against a pool
//! (`-p POOL`) or through an S3 gateway (`--s3 URL`, objects in `--bucket`).
//!
//! `write` stores objects of `-b` bytes with `-t` ops in flight for the given
//! seconds and records what it wrote in `benchmark_last_metadata`; `seq` and
//! `rand` read those objects back (checking every byte); without
//! `--no-cleanup` a write run removes its objects at the end.

pub mod s3;
pub mod sync;
pub mod tls;

use anyhow::{Context as _, bail};
use bytes::Bytes;
use meridian_client::Cluster;
use serde_json::json;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Name of the object recording the last write run (as rados bench does).
pub const METADATA_OBJECT: &str = "benchmark_last_metadata";

/// Which workload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Mode {
    /// Write new objects.
    Write,
    /// Read the objects of the last write run in order.
    Seq,
    /// Read random objects of the last write run.
    Rand,
}

/// `meridian bench -p POOL SECONDS MODE [-b SIZE] [-t N] [--no-cleanup]`,
/// or `meridian bench --s3 URL SECONDS MODE ...` through a gateway.
#[derive(clap::Args, Debug, Clone)]
pub struct BenchArgs {
    /// Pool to run against (RADOS ops straight to the OSDs).
    #[arg(
        short = 'p',
        long,
        required_unless_present = "s3",
        conflicts_with = "s3"
    )]
    pub pool: Option<String>,
    /// S3 endpoint to run against instead (PUT / GET of whole objects).
    #[arg(long)]
    pub s3: Option<String>,
    /// Bucket of the S3 run (created if missing).
    #[arg(long, default_value = "meridian-bench")]
    pub bucket: String,
    /// S3 access key.
    #[arg(long = "access-key", env = "AWS_ACCESS_KEY_ID", hide_env_values = true)]
    pub access_key: Option<String>,
    /// S3 secret key.
    #[arg(long = "secret", env = "AWS_SECRET_ACCESS_KEY", hide_env_values = true)]
    pub secret: Option<String>,
    /// CA certificates (PEM) that sign an `https://` S3 endpoint's certificate.
    #[arg(long = "ca-bundle", env = "AWS_CA_BUNDLE", requires = "s3")]
    pub ca_bundle: Option<std::path::PathBuf>,
    /// Signing region of the S3 run.
    #[arg(long, default_value = "us-east-1")]
    pub region: String,
    /// Duration in seconds.
    pub seconds: u64,
    /// write, seq or rand.
    #[arg(value_enum)]
    pub mode: Mode,
    /// Object size for writes (e.g. 4M, 4K).
    #[arg(short = 'b', long = "block-size", default_value = "4M")]
    pub block_size: String,
    /// Concurrent operations.
    #[arg(short = 't', long = "concurrent-ios", default_value_t = 16)]
    pub concurrency: usize,
    /// Write at most this many objects (0: no limit; rados bench's
    /// `--max-objects`): the run ends at whichever comes first.
    #[arg(long = "max-objects", default_value_t = 0)]
    pub max_objects: u64,
    /// Keep the written objects (for a following seq/rand run).
    #[arg(long = "no-cleanup")]
    pub no_cleanup: bool,
    /// Prefix of object names.
    #[arg(long = "run-name", default_value = "benchmark_data")]
    pub run_name: String,
    /// With --s3 (zone A): measure replication lag to this zone B endpoint
    /// (write mode; needs --rate).
    #[arg(long, requires = "s3")]
    pub sync: Option<String>,
    /// PUTs per second (a steady rate) for --sync.
    #[arg(long, default_value_t = 0)]
    pub rate: u64,
}

/// `meridian cleanup -p POOL`.
#[derive(clap::Args, Debug, Clone)]
pub struct CleanupArgs {
    /// Pool to clean.
    #[arg(short = 'p', long)]
    pub pool: String,
    /// Prefix of the objects to remove.
    #[arg(long = "prefix", default_value = "benchmark_data")]
    pub prefix: String,
}

/// The summary numbers `rados bench` prints.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Report {
    /// write / seq / rand.
    pub mode: String,
    /// Seconds the run took.
    pub total_time_s: f64,
    /// Operations completed.
    pub ops: u64,
    /// Bytes per op.
    pub op_size: u64,
    /// MB/s (10^6 bytes, as rados bench).
    pub bandwidth_mb_s: f64,
    /// Stddev of per-second bandwidth.
    pub stddev_bandwidth: f64,
    /// Max per-second bandwidth.
    pub max_bandwidth: f64,
    /// Min per-second bandwidth.
    pub min_bandwidth: f64,
    /// Average IOPS.
    pub iops: f64,
    /// Stddev of per-second IOPS.
    pub stddev_iops: f64,
    /// Max per-second IOPS.
    pub max_iops: u64,
    /// Min per-second IOPS.
    pub min_iops: u64,
    /// Latency in seconds.
    pub avg_latency_s: f64,
    /// Median latency in seconds.
    pub p50_latency_s: f64,
    /// 99th percentile latency in seconds.
    pub p99_latency_s: f64,
    /// Latency stddev in seconds.
    pub stddev_latency_s: f64,
    /// Max latency in seconds.
    pub max_latency_s: f64,
    /// Min latency in seconds.
    pub min_latency_s: f64,
    /// Errors seen (the run fails if non-zero).
    pub errors: u64,
}

fn mean_sd(v: &[f64]) -> (f64, f64) {
    if v.is_empty() {
        return (0.0, 0.0);
    }
    let m = v.iter().sum::<f64>() / v.len() as f64;
    let var = if v.len() > 1 {
        v.iter().map(|x| (x - m) * (x - m)).sum::<f64>() / (v.len() - 1) as f64
    } else {
        0.0
    };
    (m, var.sqrt())
}

/// Object content of `size` bytes seeded by `seed`, generated once per size:
/// objects differ in their first 16 bytes ([`payload`]).
fn pattern(size: usize) -> Bytes {
    static PATTERNS: std::sync::Mutex<Vec<(usize, Bytes)>> = std::sync::Mutex::new(Vec::new());
    let mut cache = PATTERNS.lock().unwrap_or_else(|p| p.into_inner());
    if let Some((_, p)) = cache.iter().find(|(s, _)| *s == size) {
        return p.clone();
    }
    let mut v = vec![0u8; size];
    let mut x = (size as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    for chunk in v.chunks_mut(8) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        chunk.copy_from_slice(&x.to_le_bytes()[..chunk.len()]);
    }
    let p = Bytes::from(v);
    cache.push((size, p.clone()));
    p
}

/// Object `seed`'s 16-byte header: its number and size, as rados bench
/// heads each object with its name, so a read of the wrong object fails.
fn header(seed: u64, size: usize) -> [u8; 16] {
    let mut h = [0u8; 16];
    h[..8].copy_from_slice(&seed.to_le_bytes());
    h[8..].copy_from_slice(&(size as u64).to_le_bytes());
    h
}

/// Deterministic object content, so reads can be verified without storing
/// it: the header, then the size's shared pattern.
fn payload(seed: u64, size: usize) -> Bytes {
    let base = pattern(size);
    let h = header(seed, size);
    let n = h.len().min(size);
    let mut v = Vec::with_capacity(size);
    v.extend_from_slice(&h[..n]);
    v.extend_from_slice(&base[n..]);
    Bytes::from(v)
}

/// Whether `data` is exactly `payload(seed, size)`: a compare against the
/// cached pattern, so verifying a read costs the client one memcmp (on a
/// small machine the client shares the OSDs' cores).
fn payload_matches(seed: u64, size: usize, data: &[u8]) -> bool {
    let h = header(seed, size);
    let n = h.len().min(size);
    data.len() == size && data[..n] == h[..n] && data[n..] == pattern(size)[n..]
}

fn object_name(prefix: &str, run: &str, i: u64) -> String {
    format!("{prefix}_{run}_object{i}")
}

/// What the bench talks to.
#[derive(Clone)]
pub enum Target {
    /// A pool, through the cluster client.
    Rados {
        /// The cluster.
        cluster: Cluster,
        /// The pool.
        pool: String,
    },
    /// A bucket, through an S3 gateway.
    S3 {
        /// The client.
        client: Box<s3::S3Client>,
        /// The bucket.
        bucket: String,
    },
}

/// True for "the cluster is full" (RADOS `Full`, or S3's 507).
fn is_full(e: &anyhow::Error) -> bool {
    matches!(
        e.downcast_ref::<meridian_client::ClientError>(),
        Some(meridian_client::ClientError::Full(_))
    ) || e.to_string().contains("HTTP 507")
}

impl Target {
    /// The target `a` names (`connect` is used for a pool).
    pub async fn from_args<F>(a: &BenchArgs, connect: F) -> anyhow::Result<Target>
    where
        F: std::future::Future<Output = anyhow::Result<Cluster>>,
    {
        match (&a.pool, &a.s3) {
            (_, Some(url)) => {
                let (Some(ak), Some(sk)) = (&a.access_key, &a.secret) else {
                    bail!(
                        "--s3 needs --access-key/--secret (or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY)"
                    );
                };
                let client = s3::S3Client::new(url, ak, sk, &a.region, a.ca_bundle.as_deref())?;
                if a.mode == Mode::Write {
                    client.ensure_bucket(&a.bucket).await?;
                }
                Ok(Target::S3 {
                    client: Box::new(client),
                    bucket: a.bucket.clone(),
                })
            }
            (Some(pool), None) => {
                let cluster = connect.await?;
                if cluster.map().pool_by_name(pool).is_none() {
                    bail!("pool '{pool}' does not exist");
                }
                Ok(Target::Rados {
                    cluster,
                    pool: pool.clone(),
                })
            }
            (None, None) => bail!("give -p POOL or --s3 URL"),
        }
    }

    async fn put(&self, name: &str, data: Bytes) -> anyhow::Result<()> {
        match self {
            Target::Rados { cluster, pool } => {
                cluster.write_full(pool, name, data).await?;
                Ok(())
            }
            Target::S3 { client, bucket } => client.put(bucket, name, data).await,
        }
    }

    async fn get(&self, name: &str) -> anyhow::Result<Bytes> {
        match self {
            Target::Rados { cluster, pool } => Ok(cluster.read(pool, name).await?),
            Target::S3 { client, bucket } => client.get(bucket, name).await,
        }
    }

    async fn remove(&self, name: &str) -> anyhow::Result<()> {
        match self {
            Target::Rados { cluster, pool } => match cluster.remove(pool, name).await {
                Ok(()) | Err(meridian_client::ClientError::NotFound(_)) => Ok(()),
                Err(e) => Err(e.into()),
            },
            Target::S3 { client, bucket } => client.delete(bucket, name).await,
        }
    }

    fn describe(&self) -> String {
        match self {
            Target::Rados { pool, .. } => format!("pool '{pool}'"),
            Target::S3 { bucket, .. } => format!("bucket '{bucket}'"),
        }
    }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

struct Shared {
    next: AtomicU64,
    done: AtomicU64,
    errors: AtomicU64,
    stop: AtomicBool,
    lat: std::sync::Mutex<Vec<f64>>,
    last_lat: std::sync::Mutex<f64>,
}

/// Runs `--sync`: replication lag from the `--s3` zone to the `--sync` zone.
async fn run_sync(a: &BenchArgs, zone_b: &str, json_out: bool) -> anyhow::Result<()> {
    let (Some(url), Some(ak), Some(sk)) = (&a.s3, &a.access_key, &a.secret) else {
        bail!("--sync needs --s3, --access-key and --secret");
    };
    if a.mode != Mode::Write {
        bail!("--sync measures writes: use `write`");
    }
    let size =
        meridian_common::size::parse_size(&a.block_size).map_err(anyhow::Error::msg)? as usize;
    let zone = |endpoint: &str| {
        s3::S3Client::new(endpoint, ak, sk, &a.region, a.ca_bundle.as_deref())
            .map(std::sync::Arc::new)
    };
    let (za, zb) = (zone(url)?, zone(zone_b)?);
    let r = sync::run(za, zb, &a.bucket, a.seconds, a.rate, size, a.concurrency).await?;
    if json_out {
        println!("{}", serde_json::to_string_pretty(&r)?);
    } else {
        println!(
            "Replication lag {url} -> {zone_b}, {} B objects",
            r.object_size
        );
        println!(
            "PUTs acknowledged:      {} ({:.1}/s, {} errors)",
            r.puts, r.put_rate, r.errors
        );
        println!(
            "Objects timed:          {} ({} missing after 120 s)",
            r.samples, r.missing
        );
        println!(
            "Lag p50 / p99 / max:    {:.3} / {:.3} / {:.3} s",
            r.lag_p50_s, r.lag_p99_s, r.lag_max_s
        );
        println!("New bucket visible in:  {:.3} s", r.new_bucket_visible_s);
    }
    if r.missing > 0 {
        bail!("{} objects never reached zone B", r.missing);
    }
    Ok(())
}

/// Runs a bench and prints rados-bench-style progress and summary.
pub async fn run(c: &Target, a: BenchArgs, json_out: bool) -> anyhow::Result<()> {
    if let Some(zone_b) = a.sync.clone() {
        return run_sync(&a, &zone_b, json_out).await;
    }
    if a.concurrency == 0 || a.concurrency > 1024 {
        bail!("-t must be 1..=1024");
    }
    let (size, count_limit, run_id) = match a.mode {
        Mode::Write => {
            let size = meridian_common::size::parse_size(&a.block_size)
                .map_err(anyhow::Error::msg)? as usize;
            if size == 0 {
                bail!("-b must be at least 1 byte");
            }
            let run_id = format!("{}_{}", hostname(), std::process::id());
            let limit = match a.max_objects {
                0 => u64::MAX,
                n => n,
            };
            (size, limit, run_id)
        }
        Mode::Seq | Mode::Rand => {
            let meta = c.get(METADATA_OBJECT).await.map_err(|e| {
                anyhow::anyhow!(
                    "no previous `bench write --no-cleanup` run in {} ({e})",
                    c.describe()
                )
            })?;
            let m: serde_json::Value =
                serde_json::from_slice(&meta).context("decode bench metadata")?;
            let size = m["op_size"].as_u64().unwrap_or(0) as usize;
            let count = m["objects"].as_u64().unwrap_or(0);
            let run_id = m["run"].as_str().unwrap_or("").to_string();
            if count == 0 {
                bail!("the last write run left no objects");
            }
            (size, count, run_id)
        }
    };
    let shared = Arc::new(Shared {
        next: AtomicU64::new(0),
        done: AtomicU64::new(0),
        errors: AtomicU64::new(0),
        stop: AtomicBool::new(false),
        lat: std::sync::Mutex::new(Vec::new()),
        last_lat: std::sync::Mutex::new(0.0),
    });
    let mode_name = format!("{:?}", a.mode).to_lowercase();
    if !json_out {
        println!(
            "Maintaining {} concurrent writes of {} bytes to objects of size {} for up to {} seconds or {} objects",
            a.concurrency, size, size, a.seconds, a.max_objects
        );
        println!("Object prefix: {}_{run_id}", a.run_name);
    }
    let start = Instant::now();
    let deadline = start + Duration::from_secs(a.seconds);
    let mut workers = Vec::new();
    for _ in 0..a.concurrency {
        let (c, a, shared, run_id) = (c.clone(), a.clone(), shared.clone(), run_id.clone());
        workers.push(tokio::spawn(async move {
            while !shared.stop.load(Ordering::Relaxed) && Instant::now() < deadline {
                let i = match a.mode {
                    Mode::Rand => rand::random::<u64>() % count_limit,
                    _ => {
                        let i = shared.next.fetch_add(1, Ordering::Relaxed);
                        if i >= count_limit {
                            shared.stop.store(true, Ordering::Relaxed);
                            break;
                        }
                        i
                    }
                };
                let name = object_name(&a.run_name, &run_id, i);
                let t0 = Instant::now();
                let ok = match a.mode {
                    Mode::Write => match c.put(&name, payload(i, size)).await {
                        Ok(()) => true,
                        Err(e) if is_full(&e) => {
                            // Every later write would fail the same way: stop now.
                            if !shared.stop.swap(true, Ordering::Relaxed) {
                                eprintln!("error: {e:#}; stopping the benchmark");
                            }
                            shared.errors.fetch_add(1, Ordering::Relaxed);
                            break;
                        }
                        Err(_) => false,
                    },
                    Mode::Seq | Mode::Rand => match c.get(&name).await {
                        Ok(d) => payload_matches(i, size, &d),
                        Err(_) => false,
                    },
                };
                let l = t0.elapsed().as_secs_f64();
                if ok {
                    shared.done.fetch_add(1, Ordering::Relaxed);
                    shared.lat.lock().unwrap_or_else(|p| p.into_inner()).push(l);
                    *shared.last_lat.lock().unwrap_or_else(|p| p.into_inner()) = l;
                } else {
                    shared.errors.fetch_add(1, Ordering::Relaxed);
                    eprintln!(
                        "error: {mode:?} {name} failed or read back wrong bytes",
                        mode = a.mode
                    );
                }
            }
        }));
    }
    // Per-second progress.
    let mut per_sec_ops: Vec<u64> = Vec::new();
    let mut prev_done = 0;
    let mut sec = 0u64;
    if !json_out {
        println!("  sec Cur ops   started  finished  avg MB/s  cur MB/s last lat(s)  avg lat(s)");
    }
    while workers.iter().any(|w| !w.is_finished()) {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let elapsed = start.elapsed().as_secs();
        if elapsed > sec {
            sec = elapsed;
            let done = shared.done.load(Ordering::Relaxed);
            let cur = done - prev_done;
            prev_done = done;
            per_sec_ops.push(cur);
            if !json_out {
                let lat = shared.lat.lock().unwrap_or_else(|p| p.into_inner());
                let avg_lat = if lat.is_empty() {
                    0.0
                } else {
                    lat.iter().sum::<f64>() / lat.len() as f64
                };
                let started = shared.next.load(Ordering::Relaxed).max(done);
                println!(
                    "{:>5} {:>7} {:>9} {:>9} {:>9.3} {:>9.3} {:>11.6} {:>11.6}",
                    sec - 1,
                    started.saturating_sub(done).min(a.concurrency as u64),
                    started,
                    done,
                    (done as f64 * size as f64 / 1e6) / sec as f64,
                    cur as f64 * size as f64 / 1e6,
                    *shared.last_lat.lock().unwrap_or_else(|p| p.into_inner()),
                    avg_lat
                );
            }
        }
    }
    for w in workers {
        let _ = w.await;
    }
    let total = start.elapsed().as_secs_f64();
    let ops = shared.done.load(Ordering::Relaxed);
    let errors = shared.errors.load(Ordering::Relaxed);
    let mut lat = shared.lat.lock().unwrap_or_else(|p| p.into_inner()).clone();
    let (lat_avg, lat_sd) = mean_sd(&lat);
    lat.sort_by(f64::total_cmp);
    let bw: Vec<f64> = per_sec_ops
        .iter()
        .map(|o| *o as f64 * size as f64 / 1e6)
        .collect();
    let iops: Vec<f64> = per_sec_ops.iter().map(|o| *o as f64).collect();
    let (_, bw_sd) = mean_sd(&bw);
    let (_, iops_sd) = mean_sd(&iops);
    let report = Report {
        mode: mode_name.clone(),
        total_time_s: total,
        ops,
        op_size: size as u64,
        bandwidth_mb_s: ops as f64 * size as f64 / 1e6 / total,
        stddev_bandwidth: bw_sd,
        max_bandwidth: bw.iter().cloned().fold(0.0, f64::max),
        min_bandwidth: bw
            .iter()
            .cloned()
            .fold(f64::INFINITY, f64::min)
            .min(f64::MAX),
        iops: ops as f64 / total,
        stddev_iops: iops_sd,
        max_iops: per_sec_ops.iter().cloned().max().unwrap_or(0),
        min_iops: per_sec_ops.iter().cloned().min().unwrap_or(0),
        avg_latency_s: lat_avg,
        p50_latency_s: percentile(&lat, 0.50),
        p99_latency_s: percentile(&lat, 0.99),
        stddev_latency_s: lat_sd,
        max_latency_s: lat.iter().cloned().fold(0.0, f64::max),
        min_latency_s: lat
            .iter()
            .cloned()
            .fold(f64::INFINITY, f64::min)
            .min(f64::MAX),
        errors,
    };
    if a.mode == Mode::Write {
        let meta = json!({"run": run_id, "objects": ops_written(&shared), "op_size": size});
        c.put(METADATA_OBJECT, Bytes::from(meta.to_string()))
            .await
            .context("record bench metadata")?;
    }
    if json_out {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        let verb = if a.mode == Mode::Write {
            "writes"
        } else {
            "reads"
        };
        println!("Total time run:         {:.4}", report.total_time_s);
        println!("Total {verb} made:      {}", report.ops);
        println!(
            "{} size:             {}",
            if a.mode == Mode::Write {
                "Write"
            } else {
                "Read "
            },
            size
        );
        println!("Object size:            {size}");
        println!("Bandwidth (MB/sec):     {:.3}", report.bandwidth_mb_s);
        println!("Stddev Bandwidth:       {:.3}", report.stddev_bandwidth);
        println!("Max bandwidth (MB/sec): {:.3}", report.max_bandwidth);
        println!("Min bandwidth (MB/sec): {:.3}", report.min_bandwidth);
        println!("Average IOPS:           {:.0}", report.iops);
        println!("Stddev IOPS:            {:.3}", report.stddev_iops);
        println!("Max IOPS:               {}", report.max_iops);
        println!("Min IOPS:               {}", report.min_iops);
        println!("Average Latency(s):     {:.6}", report.avg_latency_s);
        println!("Stddev Latency(s):      {:.6}", report.stddev_latency_s);
        println!("Max latency(s):         {:.6}", report.max_latency_s);
        println!("Min latency(s):         {:.6}", report.min_latency_s);
        println!("p50 latency(s):         {:.6}", report.p50_latency_s);
        println!("p99 latency(s):         {:.6}", report.p99_latency_s);
    }
    if a.mode == Mode::Write && !a.no_cleanup {
        let n = ops_written(&shared);
        if !json_out {
            println!("Cleaning up (deleting benchmark objects)");
        }
        remove_run(c, &a.run_name, &run_id, n, a.concurrency).await?;
        let _ = c.remove(METADATA_OBJECT).await;
    }
    if errors > 0 {
        bail!("{errors} operations failed");
    }
    Ok(())
}

/// Objects 0..n were attempted; n is where a following read run stops.
fn ops_written(s: &Shared) -> u64 {
    s.next.load(Ordering::Relaxed)
}

async fn remove_run(
    c: &Target,
    prefix: &str,
    run: &str,
    n: u64,
    conc: usize,
) -> anyhow::Result<()> {
    let next = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for _ in 0..conc.max(1) {
        let (c, prefix, run, next) = (c.clone(), prefix.to_string(), run.to_string(), next.clone());
        tasks.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= n {
                    return;
                }
                let _ = c.remove(&object_name(&prefix, &run, i)).await;
            }
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
    Ok(())
}

/// Removes every object whose name starts with the prefix (and the metadata object).
pub async fn cleanup(c: &Cluster, a: CleanupArgs) -> anyhow::Result<()> {
    let names = c.list(&a.pool).await?;
    let victims: Vec<String> = names
        .into_iter()
        .filter(|n| n.starts_with(&a.prefix) || n == METADATA_OBJECT)
        .collect();
    for n in &victims {
        match c.remove(&a.pool, n).await {
            Ok(()) | Err(meridian_client::ClientError::NotFound(_)) => {}
            Err(e) => return Err(e.into()),
        }
    }
    println!("Removed {} objects", victims.len());
    Ok(())
}

fn hostname() -> String {
    std::fs::read_to_string("/etc/hostname")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "localhost".into())
}

#[cfg(test)]
mod tests {
    use super::{payload, payload_matches};

    #[test]
    fn payload_matches_its_payload_and_nothing_else() {
        for size in [0, 1, 7, 8, 9, 4096, 4 << 20] {
            let p = payload(42, size);
            assert!(payload_matches(42, size, &p), "size {size}");
            assert!(!payload_matches(43, size, &p) || size == 0, "size {size}");
            if size > 0 {
                let mut bad = p.to_vec();
                bad[size - 1] ^= 1;
                assert!(
                    !payload_matches(42, size, &bad),
                    "flipped last byte, size {size}"
                );
                assert!(
                    !payload_matches(42, size, &p[..size - 1]),
                    "short, size {size}"
                );
            }
        }
    }
}
