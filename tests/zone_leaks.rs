//! Data leaks of the zone layer, driven against a real cluster: every data
//! object an S3 call writes must stay reachable from an index entry, an
//! intent, a part record of a live upload or a GC record, so that once the
//! objects, uploads and the bucket are gone and GC has run, the data pool
//! holds nothing of the bucket.
//!
//! * UploadPart racing CompleteMultipartUpload (and AbortMultipartUpload): a
//!   part committed between the completion's read and its commit must not
//!   outlive the upload.
//! * A PUT or part that outlives its intent's expiry (GC collects the intent
//!   mid-write) must not leave the stripes it writes afterwards.
//!
//! * A small PUT keeps its data inline in the key's index shard: nothing in
//!   the data pool, nothing left by a refused write, and the inline data of
//!   replaced and deleted versions collected by GC. A small version
//!   replicated from another zone is stored the same way.
//!
//! Also here, as it needs the same real zone: the lifecycle lease that lets
//! one gateway of a zone at a time run lifecycle passes.

mod common;

use bytes::Bytes;
use common::TestCluster;
use meridian_client::Cluster;
use meridian_zone::gc::GcReport;
use meridian_zone::index::{self, RangeReq};
use meridian_zone::object::{CompleteUpload, PutOptions, WriteConditions};
use meridian_zone::{BucketInfo, CannedAcl, ObjectAttrs, Zone, ZoneError, ZoneParams, data};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

const OWNER: &str = "leak-tester";

/// A zone handle like a gateway's, with a short pending-write expiry and no
/// minimum wait before GC deletes unreferenced data.
async fn zone(tc: &TestCluster, c: &Cluster, pending_expiry: Duration) -> Zone {
    let cfg = tc.config();
    let mut params = ZoneParams::from_global(&cfg.global, "default", "default");
    params.pending_expiry = pending_expiry;
    params.gc_min_wait = Duration::ZERO;
    // Few shards: every key of the test lands on a shard shared with others.
    params.index_shards = 2;
    Zone::open(c.clone(), params).await.expect("open zone")
}

/// A request body fed by the test: chunks arrive when the test sends them,
/// and the body ends when the sender is dropped.
fn gated_body() -> (mpsc::Sender<Bytes>, data::Body) {
    let (tx, mut rx) = mpsc::channel::<Bytes>(64);
    let body = futures::stream::poll_fn(move |cx| rx.poll_recv(cx).map(|c| c.map(Ok)));
    (tx, Box::pin(body))
}

fn fixed_body(b: Bytes) -> data::Body {
    Box::pin(futures::stream::iter([Ok(b)]))
}

fn bytes_of(len: usize, seed: u8) -> Bytes {
    Bytes::from(
        (0..len)
            .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
            .collect::<Vec<u8>>(),
    )
}

/// Data objects of the bucket instance in the zone's data pool.
async fn data_objects(z: &Zone, b: &BucketInfo) -> Vec<String> {
    let prefix = format!("{}_", b.id);
    let mut v: Vec<String> = z
        .cluster()
        .list(&z.pools().data)
        .await
        .expect("list the data pool")
        .into_iter()
        .filter(|n| n.starts_with(&prefix))
        .collect();
    v.sort();
    v
}

/// Deletes every current object, runs GC past the pending expiry, deletes the
/// bucket and returns what is left of its data in the pool (must be nothing).
async fn empty_and_delete(z: &Zone, b: &BucketInfo, keys: &[String]) -> Vec<String> {
    for k in keys {
        z.delete_object(b, k, None, OWNER)
            .await
            .unwrap_or_else(|e| panic!("delete {k}: {e}"));
    }
    tokio::time::sleep(z.params().pending_expiry + Duration::from_secs(1)).await;
    z.gc_process(true).await.expect("gc pass");
    z.delete_bucket(&b.name).await.expect("delete the bucket");
    data_objects(z, b).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn upload_part_racing_complete_or_abort_leaves_no_data() {
    let tc = TestCluster::start_with(1, 3, "1G", &["--gateways", "0"]);
    let c = tc.client().await;
    let z = zone(&tc, &c, Duration::from_secs(2)).await;
    let b = z
        .create_bucket_for("race-complete", OWNER, CannedAcl::Private)
        .await
        .expect("create bucket");
    const ROUNDS: u32 = 48;
    let (mut completed, mut aborted, mut late_parts_committed) = (0, 0, 0);
    let mut keys = Vec::new();
    for round in 0..ROUNDS {
        let key = format!("obj-{round}");
        let uid = z
            .create_upload(&b, &key, OWNER, ObjectAttrs::default())
            .await
            .expect("create upload");
        let p1 = z
            .upload_part(
                &b,
                &key,
                &uid,
                1,
                fixed_body(bytes_of(4096, 1)),
                None,
                None,
                None,
                None,
            )
            .await
            .expect("part 1");
        // Part 2 is under way; its body ends when released, and its commit
        // then races the completion (or abort) that leaves it out.
        let (tx, body) = gated_body();
        tx.send(bytes_of(8192, 2)).await.expect("feed part 2");
        let part2 = {
            let (z, b, key, uid) = (z.clone(), b.clone(), key.clone(), uid.clone());
            tokio::spawn(async move {
                z.upload_part(&b, &key, &uid, 2, body, None, None, None, None)
                    .await
            })
        };
        tokio::time::sleep(Duration::from_millis(30)).await;
        drop(tx);
        // Sweep the start of the completion over the part's last round trips.
        tokio::time::sleep(Duration::from_micros(u64::from(round % 8) * 1500)).await;
        let abort = round % 4 == 3;
        if abort {
            match z.abort_upload(&b, &key, &uid).await {
                Ok(()) => aborted += 1,
                Err(e) => panic!("abort {key}: {e}"),
            }
        } else {
            let r = z
                .complete_upload(
                    &b,
                    &key,
                    CompleteUpload::of(&uid, vec![(1, p1.etag.clone())]),
                    WriteConditions::default(),
                )
                .await
                .unwrap_or_else(|e| panic!("complete {key}: {e}"));
            assert_eq!(r.size, 4096);
            completed += 1;
            keys.push(key.clone());
        }
        match part2.await.expect("part 2 task") {
            Ok(_) => late_parts_committed += 1,
            Err(ZoneError::NoSuchUpload(_)) => {}
            Err(e) => panic!("part 2 of {key}: unexpected {e}"),
        }
        // Whatever won, the upload is gone for good.
        assert!(matches!(
            z.abort_upload(&b, &key, &uid).await,
            Err(ZoneError::NoSuchUpload(_))
        ));
    }
    eprintln!(
        "{completed} completed, {aborted} aborted, part 2 committed in {late_parts_committed} of {ROUNDS}"
    );
    for k in &keys {
        let e = z.lookup(&b, k, None).await.expect("completed object");
        assert_eq!((e.size, e.parts), (4096, 1), "{k}");
    }
    // Every upload is gone, so no part record may be left (GC would not be
    // the one to find them: the race must not leave any).
    let parts: Vec<String> = shard_keys(&z, &b, index::PART_PREFIX)
        .await
        .iter()
        .map(|(_, k)| String::from_utf8_lossy(k).into_owned())
        .collect();
    assert!(
        parts.is_empty(),
        "part records outlived their uploads: {parts:?}"
    );
    let left = empty_and_delete(&z, &b, &keys).await;
    assert!(
        left.is_empty(),
        "{} data objects of the deleted bucket are left, referenced by nothing: {:?}",
        left.len(),
        &left[..left.len().min(20)]
    );
}

/// Starts a write of `total` bytes whose body delivers `first` bytes now and
/// the rest when the returned sender is used.
async fn slow_write<F, Fut, T>(
    first: usize,
    start: F,
) -> (mpsc::Sender<Bytes>, tokio::task::JoinHandle<T>)
where
    F: FnOnce(data::Body) -> Fut,
    Fut: std::future::Future<Output = T> + Send + 'static,
    T: Send + 'static,
{
    let (tx, body) = gated_body();
    let task = tokio::spawn(start(body));
    for n in 0..first / (1 << 20) {
        tx.send(bytes_of(1 << 20, n as u8))
            .await
            .expect("feed the body");
    }
    (tx, task)
}

/// A PUT and a part whose writers stall mid-body past the GC's pending
/// expiry, a GC pass meanwhile, then the rest of the bodies: both writes fail
/// with Expired and nothing of their data may be left. `writer` and `gc` are
/// two gateways' handles on the zone (the same settings, or a GC that expires
/// intents sooner than the writer expects, as with a clock running ahead).
async fn outlive_intent(writer: &Zone, gc: &Zone, bucket: &str) -> GcReport {
    let b = writer
        .create_bucket_for(bucket, OWNER, CannedAcl::Private)
        .await
        .expect("create bucket");
    let total: usize = 32 << 20;
    let first: usize = 12 << 20;
    let uid = writer
        .create_upload(&b, "big-part", OWNER, ObjectAttrs::default())
        .await
        .expect("create upload");
    let (put_tx, put) = {
        let (z, b) = (writer.clone(), b.clone());
        slow_write(first, move |body| async move {
            let opts = PutOptions {
                owner: OWNER.into(),
                length: Some(total as u64),
                ..Default::default()
            };
            z.put_object(&b, "big", body, opts).await
        })
        .await
    };
    let (part_tx, part) = {
        let (z, b, uid) = (writer.clone(), b.clone(), uid.clone());
        slow_write(first, move |body| async move {
            z.upload_part(
                &b,
                "big-part",
                &uid,
                1,
                body,
                Some(total as u64),
                None,
                None,
                None,
            )
            .await
        })
        .await
    };
    // Both writers are storing their first stripes; then they stall past the
    // expiry and a GC pass collects what their intents cover.
    let deadline = Instant::now() + Duration::from_secs(30);
    while data_objects(writer, &b).await.len() < 2 {
        assert!(Instant::now() < deadline, "the first stripes never landed");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Both intents were recorded before their first stripes landed: an
    // expiry from now is past both, however slowly the writers started.
    let stalled = Instant::now();
    let expiry = gc.params().pending_expiry;
    tokio::time::sleep(
        (stalled + expiry + Duration::from_millis(500)).saturating_duration_since(Instant::now()),
    )
    .await;
    let report = gc.gc_process(false).await.expect("gc pass");
    eprintln!("{bucket}: gc while the writes stall: {report:?}");
    // The clients carry on with the rest of their bodies.
    for tx in [put_tx, part_tx] {
        for n in 0..(total - first) / (1 << 20) {
            if tx.send(bytes_of(1 << 20, n as u8)).await.is_err() {
                break; // the writer gave up on its body
            }
        }
    }
    let put = put.await.expect("put task");
    assert!(matches!(put, Err(ZoneError::Expired)), "PUT: {put:?}");
    let part = part.await.expect("part task");
    assert!(matches!(part, Err(ZoneError::Expired)), "part: {part:?}");
    assert!(matches!(
        writer.lookup(&b, "big", None).await,
        Err(ZoneError::NoSuchKey(_))
    ));
    assert!(
        writer
            .list_parts(&b, "big-part", &uid, 0, 100)
            .await
            .expect("list parts")
            .parts
            .is_empty()
    );
    writer
        .abort_upload(&b, "big-part", &uid)
        .await
        .expect("abort");
    let left = empty_and_delete(gc, &b, &[]).await;
    assert!(
        left.is_empty(),
        "{bucket}: {} data objects of the deleted bucket are left, referenced by nothing: {:?}",
        left.len(),
        &left[..left.len().min(20)]
    );
    report
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn writes_outliving_their_intent_leave_no_data() {
    let tc = TestCluster::start_with(1, 3, "1G", &["--gateways", "0"]);
    let c = tc.client().await;
    let z = zone(&tc, &c, Duration::from_secs(3)).await;
    // One gateway: the writers stall past their own expiry.
    outlive_intent(&z, &z, "outlived").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn writes_whose_intent_gc_collects_early_leave_no_data() {
    let tc = TestCluster::start_with(1, 3, "1G", &["--gateways", "0"]);
    let c = tc.client().await;
    // The GC's gateway expires intents long before the writers' gateway
    // would (as with its clock running ahead): GC takes both intents while
    // their writers still store data.
    let gc = zone(&tc, &c, Duration::from_secs(3)).await;
    let writer = zone(&tc, &c, Duration::from_secs(120)).await;
    let report = outlive_intent(&writer, &gc, "outlived-skewed").await;
    assert_eq!(report.expired_writes, 2, "{report:?}");
}

/// Of gateways racing for the lifecycle lease exactly one wins; the others
/// are refused until it lapses, and its holder renews it.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_gateway_at_a_time_holds_the_lifecycle_lease() {
    let tc = TestCluster::start_with(1, 3, "1G", &["--gateways", "0"]);
    let c = tc.client().await;
    let z = zone(&tc, &c, Duration::from_secs(30)).await;
    let ttl = Duration::from_secs(2);
    let racers: Vec<_> = (0..8)
        .map(|i| {
            let z = z.clone();
            tokio::spawn(async move { z.lc_lease(&format!("gateway.{i}"), ttl).await })
        })
        .collect();
    let mut winners = Vec::new();
    for (i, r) in racers.into_iter().enumerate() {
        if r.await.expect("join").expect("lease") {
            winners.push(i);
        }
    }
    assert_eq!(winners.len(), 1, "winners: {winners:?}");
    let (holder, other) = (
        format!("gateway.{}", winners[0]),
        format!("gateway.{}", (winners[0] + 1) % 8),
    );
    assert!(!z.lc_lease(&other, ttl).await.expect("lease"));
    assert!(z.lc_lease(&holder, ttl).await.expect("renew"));
    tokio::time::sleep(ttl + Duration::from_millis(500)).await;
    // Lapsed: another takes it over, and the old holder is refused.
    assert!(z.lc_lease(&other, ttl).await.expect("lease"));
    assert!(!z.lc_lease(&holder, ttl).await.expect("lease"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gc_collects_part_records_that_outlived_their_upload() {
    let tc = TestCluster::start_with(1, 3, "1G", &["--gateways", "0"]);
    let c = tc.client().await;
    let z = zone(&tc, &c, Duration::from_secs(2)).await;
    let b = z
        .create_bucket_for("old-leak", OWNER, CannedAcl::Private)
        .await
        .expect("create bucket");
    let uid = z
        .create_upload(&b, "k", OWNER, ObjectAttrs::default())
        .await
        .expect("create upload");
    let part = z
        .upload_part(
            &b,
            "k",
            &uid,
            1,
            fixed_body(bytes_of(6 << 20, 7)),
            None,
            None,
            None,
            None,
        )
        .await
        .expect("part 1");
    // What the race left behind before part commits rewrote the upload
    // record: the upload gone, its part record (and data) still there.
    let shard = index::shard_of("k", b.num_shards);
    c.op(
        &z.pools().index,
        &index::shard_object(&b.id, shard),
        vec![meridian_client::ops::sub::omap_rm(vec![index::upload_key(
            "k", &uid,
        )])],
    )
    .await
    .expect("drop the upload record");
    let stripes = data_objects(&z, &b).await;
    assert_eq!(stripes.len(), 2, "{stripes:?}");
    let check = z.check_bucket(&b.name).await.expect("bucket check");
    assert_eq!(
        check.orphans, stripes,
        "the dead upload's part is no reference"
    );
    let report = z.gc_process(false).await.expect("gc pass");
    assert_eq!(report.orphaned_parts, 1, "{report:?}");
    assert_eq!(report.objects_deleted, 2, "{report:?}");
    assert!(data_objects(&z, &b).await.is_empty());
    let check = z.check_bucket(&b.name).await.expect("bucket check");
    assert!(
        check.orphans.is_empty() && check.missing.is_empty(),
        "{check:?}"
    );
    assert!(matches!(
        z.complete_upload(
            &b,
            "k",
            CompleteUpload::of(&uid, vec![(1, part.etag)]),
            WriteConditions::default()
        )
        .await,
        Err(ZoneError::NoSuchUpload(_))
    ));
    z.delete_bucket(&b.name).await.expect("delete the bucket");
}

/// Full sync's group commit (`Zone::apply_versions`): versions of distinct
/// keys of one shard are stored and linked in one commit, each with its own
/// bilog entry; a copy whose bytes do not hash to its ETag, a version that
/// loses to a newer local write and a repeated key are refused one by one
/// without failing the others; nothing they wrote outlives the bucket.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_commit_of_replicated_versions_links_each_and_leaks_nothing() {
    use md5::Digest as _;
    use meridian_zone::IndexEntry;
    use meridian_zone::replica::{Applied, Incoming, Plan, Skip};
    let tc = TestCluster::start_with(1, 3, "1G", &["--gateways", "0"]);
    let c = tc.client().await;
    let z = zone(&tc, &c, Duration::from_secs(2)).await;
    let b = z
        .create_bucket_for("group-commit", OWNER, CannedAcl::Private)
        .await
        .expect("create bucket");
    let keys: Vec<String> = (0..100)
        .map(|i| format!("k{i:03}"))
        .filter(|k| index::shard_of(k, b.num_shards) == 0)
        .take(5)
        .collect();
    let now = meridian_zone::now_ns();
    let version = |key: &str, mtime: u64, body: &Bytes, zone: &str| IndexEntry {
        key: key.into(),
        version_id: "null".into(),
        order: index::order_token(mtime),
        mtime_ns: mtime,
        size: body.len() as u64,
        etag: meridian_zone::hex(&md5::Md5::digest(body)),
        owner: OWNER.into(),
        source_zone: zone.into(),
        ..Default::default()
    };
    let trace = || vec!["zone-x".to_string()];
    // keys[4] already holds a write newer than the one that arrives.
    let newer = bytes_of(300, 9);
    let stored = z
        .apply_version(
            &b,
            version(&keys[4], now + 10_000_000_000, &newer, "zone-x"),
            Some(fixed_body(newer.clone())),
            trace(),
        )
        .await
        .expect("the newer write");
    assert_eq!(stored, Applied::Stored { beat: None });

    let bodies: Vec<Bytes> = [5_000, 100, 70_000]
        .iter()
        .enumerate()
        .map(|(i, n)| bytes_of(*n, i as u8))
        .collect();
    let mut items = Vec::new();
    for (k, body) in keys.iter().zip(&bodies) {
        items.push((
            version(k, now, body, "zone-x"),
            Some(fixed_body(body.clone())),
            trace(),
        ));
    }
    // A copy whose bytes are not the ones its ETag names.
    let mut forged = version(&keys[3], now, &bytes_of(64, 1), "zone-x");
    forged.etag = meridian_zone::hex(&md5::Md5::digest(b"something else"));
    items.push((forged, Some(fixed_body(bytes_of(64, 1))), trace()));
    // An older write of keys[4], and keys[0] a second time.
    let older_again = || bytes_of(200, 7);
    let older = older_again();
    items.push((
        version(&keys[4], now, &older, "zone-x"),
        Some(fixed_body(older)),
        trace(),
    ));
    items.push((
        version(&keys[0], now + 1, &bodies[1], "zone-x"),
        Some(fixed_body(bodies[1].clone())),
        trace(),
    ));
    let results = z.apply_versions(&b, 0, items).await.expect("the batch");
    assert_eq!(results.len(), 6);
    for r in &results[..3] {
        assert!(matches!(r, Ok(Applied::Stored { beat: None })), "{r:?}");
    }
    assert!(
        matches!(results[3], Err(ZoneError::BadDigest)),
        "{:?}",
        results[3]
    );
    assert!(
        matches!(results[4], Ok(Applied::Skipped(Skip::Lost { .. }))),
        "{:?}",
        results[4]
    );
    assert!(
        matches!(results[5], Err(ZoneError::InvalidArgument(_))),
        "{:?}",
        results[5]
    );
    for (k, body) in keys.iter().zip(&bodies) {
        let e = z.lookup(&b, k, None).await.expect("linked");
        assert_eq!((e.size, e.mtime_ns), (body.len() as u64, now), "{k}");
    }
    assert_eq!(z.lookup(&b, &keys[4], None).await.unwrap().size, 300);
    assert!(
        z.lookup(&b, &keys[3], None).await.is_err(),
        "the forged copy is not linked"
    );
    // Copies of at most `inline_max` bytes are inline in their shard, as
    // local PUTs of their size are: only keys[2] (70,000 bytes) has a data
    // object, and the forged and losing copies wrote nothing inline.
    assert_eq!(data_objects(&z, &b).await.len(), 1);
    let mut linked_inline = Vec::new();
    for (k, body) in [&keys[0], &keys[1], &keys[4]]
        .into_iter()
        .zip([&bodies[0], &bodies[1], &newer])
    {
        let e = z.lookup(&b, k, None).await.expect("linked");
        assert_eq!(e.manifest.runs[0].inline_shard, Some(0), "{k}");
        linked_inline.push((0, index::inline_key(k, &e.manifest.runs[0].inst)));
        assert_eq!(read_object(&z, &b, &e).await[..], body[..], "{k}");
    }
    linked_inline.sort();
    let mut inline = inline_runs(&z, &b).await;
    inline.sort();
    assert_eq!(inline, linked_inline);
    let big = z.lookup(&b, &keys[2], None).await.expect("linked");
    assert_eq!(big.manifest.runs[0].inline_shard, None);
    assert_eq!(read_object(&z, &b, &big).await[..], bodies[2][..]);
    // One bilog entry per change, in order: the single apply, then the batch.
    let (log, _) = z.bilog_list(&b, 0, "", 1000).await.expect("bilog");
    let logged: Vec<&str> = log.iter().map(|l| l.entry.key.as_str()).collect();
    assert_eq!(logged, [&keys[4], &keys[0], &keys[1], &keys[2]]);
    let markers: Vec<&str> = log.iter().map(|l| l.marker.as_str()).collect();
    let mut sorted = markers.clone();
    sorted.sort();
    assert_eq!(markers, sorted, "markers sort in log order");
    // A listing page's look-up in one read decides as a read per key does:
    // the linked copies and the older keys[4] are skipped, keys[3] is missing.
    let page: Vec<Incoming> = keys
        .iter()
        .zip(bodies.iter().chain([&bytes_of(64, 1), &older_again()]))
        .map(|(k, body)| Incoming::Version(Box::new(version(k, now, body, "zone-x"))))
        .collect();
    let plans = z.replica_plans(&b, 0, &page).await.expect("one read");
    assert_eq!(plans.len(), page.len());
    for (inc, plan) in page.iter().zip(&plans) {
        let alone = z.replica_plan(&b, inc).await.expect("a read per key");
        assert_eq!(plan, &alone, "{}", inc.key());
    }
    let skipped: Vec<bool> = plans.iter().map(|p| matches!(p, Plan::Skip(_))).collect();
    assert_eq!(skipped, [true, true, true, false, true]);
    let other_shard = (0..100)
        .map(|i| format!("k{i:03}"))
        .find(|k| index::shard_of(k, b.num_shards) != 0)
        .expect("a key of another shard");
    let stray = Incoming::Version(Box::new(version(&other_shard, now, &newer, "zone-x")));
    assert!(matches!(
        z.replica_plans(&b, 0, &[stray]).await,
        Err(ZoneError::InvalidArgument(_))
    ));
    let mut live = keys[..3].to_vec();
    live.push(keys[4].clone());
    assert_eq!(
        empty_and_delete(&z, &b, &live).await,
        Vec::<String>::new(),
        "data left behind by the batch"
    );
}

/// A gateway's object data stays within its buffer budgets: more PUTs and
/// GETs of multi-stripe objects than the budgets hold at once (and a copy,
/// which reads while it holds write budget) all complete byte for byte; a
/// GET's bytes hold read budget until its reader drops them; and once
/// everything is done, every byte of budget is back.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn object_data_stays_within_the_buffer_budgets_and_every_permit_returns() {
    use futures::StreamExt as _;
    use meridian_zone::data::{BufferRoom, STRIPE};
    let tc = TestCluster::start_with(1, 3, "1G", &["--gateways", "0"]);
    let c = tc.client().await;
    let cfg = tc.config();
    // The smallest target: 8 MiB (two stripes) each way.
    let budget = meridian_common::gateway_memory_budget("32M").expect("budget");
    let params = ZoneParams::from_global(&cfg.global, "default", "default").with_memory(budget);
    let z = Zone::open(c.clone(), params).await.expect("open zone");
    let full = BufferRoom {
        write: 8 << 20,
        read: 8 << 20,
    };
    assert_eq!(z.buffer_room(), full);
    let b = z
        .create_bucket_for("buffer-budget", OWNER, CannedAcl::Private)
        .await
        .expect("create bucket");
    // 6 writers of 2.5 stripes each: each wants up to 3 stripes at once.
    let objects: Vec<(String, Bytes)> = (0..6u8)
        .map(|i| (format!("obj-{i}"), bytes_of(STRIPE as usize * 5 / 2, i)))
        .collect();
    let puts = objects.iter().map(|(k, d)| {
        let opts = PutOptions {
            owner: OWNER.into(),
            length: Some(d.len() as u64),
            ..Default::default()
        };
        z.put_object(&b, k, fixed_body(d.clone()), opts)
    });
    for r in tokio::time::timeout(Duration::from_secs(120), futures::future::join_all(puts))
        .await
        .expect("PUTs beyond the write budget wait, they do not deadlock")
    {
        r.expect("put");
    }
    assert_eq!(z.buffer_room(), full, "every PUT returned its write budget");

    let read_all = |key: String| {
        let (z, b) = (z.clone(), b.clone());
        async move {
            let e = z.lookup(&b, &key, None).await.expect("lookup");
            let mut s = z.read_runs((&b.id, &e.key), &e.manifest.runs, (0, e.size), None);
            let mut got = Vec::with_capacity(e.size as usize);
            while let Some(chunk) = s.next().await {
                got.extend_from_slice(&chunk.expect("read"));
            }
            got
        }
    };
    // A copy of obj-0 (reads while it writes) beside 6 readers.
    let copy = async {
        let src = z.lookup(&b, "obj-0", None).await.expect("lookup");
        let body = z.copy_source((&b.id, &src.key), &src.manifest.runs, (0, src.size), None);
        let opts = PutOptions {
            owner: OWNER.into(),
            length: Some(src.size),
            ..Default::default()
        };
        z.put_object(&b, "copy-of-0", body, opts).await
    };
    let reads = futures::future::join_all(objects.iter().map(|(k, _)| read_all(k.clone())));
    let (got, copied) = tokio::time::timeout(Duration::from_secs(120), async {
        tokio::join!(reads, copy)
    })
    .await
    .expect("GETs and a copy beyond the read budget wait, they do not deadlock");
    copied.expect("copy");
    for ((k, want), got) in objects.iter().zip(&got) {
        assert!(got[..] == want[..], "{k} read back different bytes");
    }
    assert!(read_all("copy-of-0".into()).await[..] == objects[0].1[..]);
    assert_eq!(z.buffer_room(), full, "every GET returned its read budget");

    // The first piece of a read holds its share until it is dropped.
    let e = z.lookup(&b, "obj-1", None).await.expect("lookup");
    let mut s = z.read_runs((&b.id, &e.key), &e.manifest.runs, (0, e.size), None);
    let first = s.next().await.expect("a piece").expect("read");
    drop(s);
    assert_eq!(first.len() as u64, STRIPE);
    let held = z.buffer_room();
    assert_eq!(held.write, full.write);
    assert!(
        held.read <= full.read - STRIPE,
        "a piece handed out holds its read budget: {held:?}"
    );
    drop(first);
    assert_eq!(
        z.buffer_room(),
        full,
        "dropping the bytes returns the budget"
    );
}

/// The omap keys with `prefix` in the bucket's index shards (up to 1,000 per
/// shard), with their shard.
async fn shard_keys(z: &Zone, b: &BucketInfo, prefix: &'static [u8]) -> Vec<(u32, Bytes)> {
    let mut out = Vec::new();
    for shard in 0..b.num_shards {
        let snap = z
            .shard_read(
                b,
                shard,
                &[],
                &[RangeReq::prefix(Bytes::from_static(prefix), 1000)],
            )
            .await
            .expect("read an index shard");
        for (k, _) in snap.ranges.into_iter().next().unwrap_or_default().0 {
            out.push((shard, k));
        }
    }
    out
}

/// The inline data keys (`d<inst>`) in the bucket's index shards.
/// The whole of version `e`'s bytes.
async fn read_object(z: &Zone, b: &BucketInfo, e: &meridian_zone::IndexEntry) -> Vec<u8> {
    use futures::StreamExt as _;
    let mut s = z.read_runs((&b.id, &e.key), &e.manifest.runs, (0, e.size), None);
    let mut got = Vec::new();
    while let Some(chunk) = s.next().await {
        got.extend_from_slice(&chunk.expect("read"));
    }
    got
}

async fn inline_runs(z: &Zone, b: &BucketInfo) -> Vec<(u32, Bytes)> {
    shard_keys(z, b, index::INLINE_PREFIX).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn small_puts_keep_their_data_inline_and_gc_collects_it() {
    use futures::StreamExt as _;
    let tc = TestCluster::start_with(1, 3, "1G", &["--gateways", "0"]);
    let c = tc.client().await;
    let z = zone(&tc, &c, Duration::from_secs(60)).await;
    let inline_max = z.params().inline_max;
    assert_eq!(inline_max, 8 << 10, "the default inline bound");
    let b = z
        .create_bucket_for("inline-data", OWNER, CannedAcl::Private)
        .await
        .expect("create bucket");
    let put = |key: &'static str, data: Bytes, opts: PutOptions| {
        let (z, b) = (z.clone(), b.clone());
        async move {
            let opts = PutOptions {
                owner: OWNER.into(),
                length: Some(data.len() as u64),
                ..opts
            };
            z.put_object(&b, key, fixed_body(data), opts).await
        }
    };
    let read = |key: &'static str, range: Option<(u64, u64)>| {
        let (z, b) = (z.clone(), b.clone());
        async move {
            let e = z.lookup(&b, key, None).await?;
            let range = range.unwrap_or((0, e.size));
            let mut s = z.read_runs((&b.id, &e.key), &e.manifest.runs, range, None);
            let mut got = Vec::new();
            while let Some(chunk) = s.next().await {
                got.extend_from_slice(&chunk?);
            }
            Ok::<_, ZoneError>(got)
        }
    };

    let small = bytes_of(5000, 1);
    let at_bound = bytes_of(inline_max as usize, 2);
    let over = bytes_of(inline_max as usize + 1, 3);
    put("small", small.clone(), PutOptions::default())
        .await
        .expect("small");
    put("at-bound", at_bound.clone(), PutOptions::default())
        .await
        .expect("at the bound");
    put("over", over.clone(), PutOptions::default())
        .await
        .expect("over the bound");
    put("empty", Bytes::new(), PutOptions::default())
        .await
        .expect("empty");
    // Only the object over the bound has a data object; the empty one has
    // no data at all, the other two have theirs in their keys' shards.
    assert_eq!(data_objects(&z, &b).await.len(), 1);
    let inline = inline_runs(&z, &b).await;
    assert_eq!(inline.len(), 2, "{inline:?}");
    let e = z.lookup(&b, "small", None).await.expect("lookup");
    let shard = index::shard_of("small", b.num_shards);
    assert_eq!(e.manifest.runs.len(), 1);
    assert_eq!(e.manifest.runs[0].inline_shard, Some(shard));
    assert!(inline.contains(&(shard, index::inline_key(&e.key, &e.manifest.runs[0].inst))));
    assert!(
        z.lookup(&b, "empty", None)
            .await
            .expect("lookup")
            .manifest
            .runs
            .is_empty()
    );
    assert_eq!(read("small", None).await.expect("read")[..], small[..]);
    assert_eq!(
        read("small", Some((100, 4321))).await.expect("range")[..],
        small[100..4321]
    );
    assert_eq!(
        read("at-bound", None).await.expect("read")[..],
        at_bound[..]
    );
    assert_eq!(read("over", None).await.expect("read")[..], over[..]);
    assert!(read("empty", None).await.expect("read").is_empty());
    // A look-up before a read brings the inline data along.
    let e = z.lookup_with_data(&b, "small", None).await.expect("lookup");
    assert_eq!(e.manifest.runs[0].prefetched.as_deref(), Some(&small[..]));
    for (from, to) in [(0, small.len() as u64), (100, 4321), (4999, 5000)] {
        let mut s = z.read_runs((&b.id, &e.key), &e.manifest.runs, (from, to), None);
        let mut got = Vec::new();
        while let Some(chunk) = s.next().await {
            got.extend_from_slice(&chunk.expect("read the prefetched bytes"));
        }
        assert_eq!(got[..], small[from as usize..to as usize]);
    }
    let e = z.lookup_with_data(&b, "over", None).await.expect("lookup");
    assert_eq!(e.manifest.runs[0].prefetched, None);

    // Refused writes store nothing: a wrong Content-MD5, a body shorter than
    // declared, a failed If-None-Match.
    let bad_md5 = PutOptions {
        content_md5: Some([0; 16]),
        ..Default::default()
    };
    assert!(matches!(
        put("refused", bytes_of(100, 4), bad_md5).await,
        Err(ZoneError::BadDigest)
    ));
    let short = PutOptions {
        owner: OWNER.into(),
        length: Some(200),
        ..Default::default()
    };
    assert!(
        z.put_object(&b, "refused", fixed_body(bytes_of(100, 4)), short)
            .await
            .is_err()
    );
    let exists = PutOptions {
        conditions: WriteConditions {
            if_none_match: Some("*".into()),
            ..Default::default()
        },
        ..Default::default()
    };
    assert!(matches!(
        put("small", bytes_of(10, 5), exists).await,
        Err(ZoneError::PreconditionFailed)
    ));
    assert_eq!(inline_runs(&z, &b).await.len(), 2);
    assert!(z.lookup(&b, "refused", None).await.is_err());

    // An overwrite leaves the old version's data to GC, which removes it
    // from the shard.
    let newer = bytes_of(6000, 6);
    put("small", newer.clone(), PutOptions::default())
        .await
        .expect("overwrite");
    assert_eq!(inline_runs(&z, &b).await.len(), 3);
    // Newest first: the look-up finds the new version's data, not the old.
    let e = z.lookup_with_data(&b, "small", None).await.expect("lookup");
    assert_eq!(e.manifest.runs[0].prefetched.as_deref(), Some(&newer[..]));
    // A key whose current version outgrew the bound while its old inline
    // data waits for GC: nothing prefetched, the data pool is read.
    put("grew", bytes_of(100, 7), PutOptions::default())
        .await
        .expect("small first");
    let grown = bytes_of(inline_max as usize * 2, 8);
    put("grew", grown.clone(), PutOptions::default())
        .await
        .expect("then large");
    let e = z.lookup_with_data(&b, "grew", None).await.expect("lookup");
    assert_eq!(e.manifest.runs[0].prefetched, None);
    assert_eq!(read("grew", None).await.expect("read")[..], grown[..]);
    assert_eq!(inline_runs(&z, &b).await.len(), 4);
    let report = z.gc_process(true).await.expect("gc pass");
    assert_eq!(report.objects_deleted, 2, "{report:?}");
    assert_eq!(inline_runs(&z, &b).await.len(), 2);
    assert_eq!(read("small", None).await.expect("read")[..], newer[..]);
    let check = z.check_bucket(&b.name).await.expect("bucket check");
    assert!(
        check.orphans.is_empty() && check.missing.is_empty(),
        "{check:?}"
    );
    assert_eq!(check.data_objects, 4, "{check:?}");

    // Break it: the live version's inline data removed by hand is reported
    // missing by the check, and a read fails rather than return nothing
    // (with or without the look-up that brings inline data along).
    let e = z.lookup(&b, "at-bound", None).await.expect("lookup");
    let lost = index::inline_key(&e.key, &e.manifest.runs[0].inst);
    let at_shard = index::shard_object(&b.id, index::shard_of("at-bound", b.num_shards));
    c.op(
        &z.pools().index,
        &at_shard,
        vec![meridian_client::ops::sub::omap_rm(vec![lost])],
    )
    .await
    .expect("drop inline data");
    let check = z.check_bucket(&b.name).await.expect("bucket check");
    assert_eq!(check.missing.len(), 1, "{check:?}");
    assert!(matches!(
        read("at-bound", None).await,
        Err(ZoneError::Corrupt { .. })
    ));
    let e = z
        .lookup_with_data(&b, "at-bound", None)
        .await
        .expect("lookup");
    let mut s = z.read_runs((&b.id, &e.key), &e.manifest.runs, (0, e.size), None);
    assert!(matches!(
        s.next().await,
        Some(Err(ZoneError::Corrupt { .. }))
    ));

    // Deleting everything and collecting leaves no inline data.
    let keys: Vec<String> = ["small", "at-bound", "over", "empty", "grew"]
        .map(String::from)
        .to_vec();
    for k in &keys {
        z.delete_object(&b, k, None, OWNER)
            .await
            .unwrap_or_else(|e| panic!("delete {k}: {e}"));
    }
    z.gc_process(true).await.expect("gc pass");
    assert!(inline_runs(&z, &b).await.is_empty());
    assert!(data_objects(&z, &b).await.is_empty());
    z.delete_bucket(&b.name).await.expect("delete the bucket");
}
