//! BlockStore-specific behaviour: reopen, allocator, corruption, identity,
//! group commit, concurrency with readers.

#[macro_use]
#[allow(unused_macros)]
mod common;

use common::*;
use meridian_objectstore::*;
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

fn all_layouts(s: &BlockStore, m: &Model) -> Vec<(u64, u64, String)> {
    let mut ranges = Vec::new();
    for k in m.objs.keys() {
        let l = s.object_layout(k).unwrap().unwrap();
        assert_eq!(l.size, m.objs[k].data.len() as u64);
        for c in l.chunks {
            ranges.push((c.physical, c.len.div_ceil(4096) * 4096, k.to_string()));
        }
    }
    ranges.sort();
    ranges
}

fn assert_disjoint(ranges: &[(u64, u64, String)], device: u64) {
    for w in ranges.windows(2) {
        assert!(
            w[0].0 + w[0].1 <= w[1].0,
            "{} at [{}, +{}) overlaps {} at {}",
            w[0].2,
            w[0].0,
            w[0].1,
            w[1].2,
            w[1].0
        );
    }
    for r in ranges {
        assert!(
            r.0 >= 4096 && r.0 % 4096 == 0 && r.0 + r.1 <= device,
            "{r:?}"
        );
    }
}

#[test]
fn reopen_keeps_everything_and_rebuilds_the_allocator() {
    let mut t = TempBlock::new(IoEngine::Auto, 128 << 20);
    let m = random_vs_model(t.s(), 7, 250);
    let before = t.s().statfs().unwrap();
    let layout = all_layouts(t.s(), &m);
    assert_disjoint(&layout, 128 << 20);
    t.check();
    t.reopen();
    m.verify(t.s(), &[pg(20), pg(21)]);
    let after = t.s().statfs().unwrap();
    assert_eq!(before.used_bytes, after.used_bytes);
    assert_eq!(before.objects, after.objects);
    assert_eq!(layout, all_layouts(t.s(), &m));
    t.check();
    // Keep working after the reopen, then reopen again.
    let k = key(20, "after-reopen");
    t.s()
        .submit(Transaction::new().write_full(&k, pattern(9, 300_000)))
        .unwrap();
    t.reopen();
    assert_eq!(t.s().read(&k, 0, None).unwrap(), pattern(9, 300_000));
    t.check();
}

#[test]
fn space_of_removed_objects_is_reused_and_no_space_is_clean() {
    // 16 MiB device: two 10 MiB objects can only fit one after the other.
    let mut t = TempBlock::new(IoEngine::Auto, 16 << 20);
    let (a, bk, c) = (key(1, "a"), key(1, "b"), key(1, "c"));
    t.s()
        .submit(Transaction::new().write_full(&a, pattern(1, 10 * MIB)))
        .unwrap();
    let e = t
        .s()
        .submit(Transaction::new().write_full(&bk, pattern(2, 10 * MIB)))
        .unwrap_err();
    assert!(matches!(e, StoreError::NoSpace { .. }), "{e}");
    assert_eq!(t.s().stat(&bk).unwrap(), None);
    t.check();
    // A failed transaction applies none of its ops.
    let e = t
        .s()
        .submit(
            Transaction::new()
                .write_full(&c, b("small"))
                .write_full(&bk, pattern(2, 10 * MIB)),
        )
        .unwrap_err();
    assert!(matches!(e, StoreError::NoSpace { .. }), "{e}");
    assert_eq!(t.s().stat(&c).unwrap(), None);
    // Remove a, then b fits: freed space is reused.
    t.s().submit(Transaction::new().remove(&a)).unwrap();
    t.s()
        .submit(Transaction::new().write_full(&bk, pattern(2, 10 * MIB)))
        .unwrap();
    assert_eq!(t.s().read(&bk, 0, None).unwrap(), pattern(2, 10 * MIB));
    t.check();
    // Same after a reopen (the free map is rebuilt from the records).
    t.reopen();
    t.check();
    t.s().submit(Transaction::new().remove(&bk)).unwrap();
    t.s()
        .submit(Transaction::new().write_full(&a, pattern(3, 12 * MIB)))
        .unwrap();
    assert_eq!(t.s().read(&a, 0, None).unwrap(), pattern(3, 12 * MIB));
    // Overwriting in place needs new space first (copy-on-write): 12 + 12 > 16.
    let e = t
        .s()
        .submit(Transaction::new().write(&a, 0, pattern(4, 12 * MIB)))
        .unwrap_err();
    assert!(matches!(e, StoreError::NoSpace { .. }), "{e}");
    assert_eq!(t.s().read(&a, 0, None).unwrap(), pattern(3, 12 * MIB));
    let u = t.s().statfs().unwrap();
    assert_eq!(u.total_bytes, 16 << 20);
    assert_eq!(u.used_bytes, 4096 + 12 * MIB as u64);
    assert_eq!(u.available_bytes, u.total_bytes - u.used_bytes);
    t.check();
}

#[test]
fn no_two_live_objects_share_a_block_under_churn() {
    let mut t = TempBlock::new(IoEngine::Auto, 24 << 20);
    // Small device + many overwrites: freed units are recycled constantly.
    for seed in 0..3 {
        let m = random_vs_model(t.s(), 100 + seed, 120);
        assert_disjoint(&all_layouts(t.s(), &m), 24 << 20);
        t.check();
        t.reopen();
        t.check();
        m.verify(t.s(), &[pg(20), pg(21)]);
        t.s()
            .submit(
                Transaction::new()
                    .remove_collection(pg(20))
                    .remove_collection(pg(21)),
            )
            .unwrap();
    }
    let u = t.s().statfs().unwrap();
    assert_eq!(
        u.used_bytes, 4096,
        "everything removed: only the label is used"
    );
}

#[test]
fn flipped_byte_is_reported_as_corrupt_and_nothing_else_breaks() {
    let mut t = TempBlock::new(IoEngine::Auto, 64 << 20);
    let (a, bk) = (key(1, "a"), key(1, "b"));
    let da = pattern(1, 200 * KIB);
    let db = pattern(2, 100 * KIB);
    t.s()
        .submit(
            Transaction::new()
                .write_full(&a, da.clone())
                .write_full(&bk, db.clone()),
        )
        .unwrap();
    let la = t.s().object_layout(&a).unwrap().unwrap();
    assert!(!la.inline && la.chunks.len() == 4);
    let victim = la.chunks[1];
    assert_eq!(victim.logical, 65536);
    t.store = None;
    flip_byte(&t.path().join("block"), victim.physical + 1234);
    t.reopen();
    let e = t.s().read(&a, 0, None).unwrap_err();
    match &e {
        StoreError::Corrupt { key, offset } => {
            assert_eq!(key, &a);
            assert_eq!(*offset, 65536);
        }
        other => panic!("expected Corrupt, got {other}"),
    }
    assert!(
        e.to_string().contains("replica"),
        "message says what to do: {e}"
    );
    // Ranges outside the damaged chunk still read; so does the other object.
    assert_eq!(t.s().read(&a, 0, Some(65536)).unwrap(), da[..65536]);
    assert_eq!(t.s().read(&a, 131072, None).unwrap(), da[131072..]);
    assert!(t.s().read(&a, 65536 + 5, Some(1)).is_err());
    assert_eq!(t.s().read(&bk, 0, None).unwrap(), db);
    let r = t.s().fsck(true).unwrap();
    assert_eq!(r.errors.len(), 1, "{:?}", r.errors);
    // A partial overwrite needing the damaged chunk fails alone...
    let e = t
        .s()
        .submit(Transaction::new().write(&a, 70_000, b("x")))
        .unwrap_err();
    assert!(matches!(e, StoreError::Corrupt { .. }), "{e}");
    // ...while a full rewrite (repair from a replica) fixes the object.
    t.s()
        .submit(Transaction::new().write_full(&a, da.clone()))
        .unwrap();
    assert_eq!(t.s().read(&a, 0, None).unwrap(), da);
    t.check();
}

fn flip_byte(path: &Path, at: u64) {
    use std::os::unix::fs::FileExt;
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .unwrap();
    let mut byte = [0u8; 1];
    f.read_exact_at(&mut byte, at).unwrap();
    byte[0] ^= 0x40;
    f.write_all_at(&byte, at).unwrap();
    f.sync_all().unwrap();
}

/// (relative path -> (len, blake3, mtime)) of every file under `dir`.
fn snapshot_files(dir: &Path) -> BTreeMap<String, (u64, String, std::time::SystemTime)> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            let p = e.path();
            let md = e.metadata().unwrap();
            if md.is_dir() {
                stack.push(p);
            } else {
                let content = std::fs::read(&p).unwrap();
                let rel = p.strip_prefix(dir).unwrap().display().to_string();
                out.insert(
                    rel,
                    (
                        md.len(),
                        blake3::hash(&content).to_hex().to_string(),
                        md.modified().unwrap(),
                    ),
                );
            }
        }
    }
    out
}

#[test]
fn foreign_stores_are_refused_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = StoreConfig::new("cluster-a", 1);
    cfg.block_size_bytes = 16 << 20;
    cfg.cache_bytes = 16 << 20;
    BlockStore::mkfs(dir.path(), &cfg).unwrap();
    {
        let s = BlockStore::open(dir.path(), &cfg).unwrap();
        s.submit(Transaction::new().write_full(&key(1, "x"), pattern(1, 100_000)))
            .unwrap();
        assert_eq!(s.superblock().fsid, "cluster-a");
        assert_eq!(s.superblock().osd_id, 1);
        assert_eq!(s.superblock().engine, "blockstore");
    }
    let before = snapshot_files(dir.path());
    let other = StoreConfig {
        fsid: "cluster-b".into(),
        ..cfg.clone()
    };
    let e = BlockStore::open(dir.path(), &other).err().unwrap();
    assert!(
        matches!(&e, StoreError::FsidMismatch { expected, found } if expected == "cluster-b" && found == "cluster-a"),
        "{e}"
    );
    let msg = e.to_string();
    assert!(
        msg.contains("cluster-a") && msg.contains("cluster-b"),
        "{msg}"
    );
    let wrong_osd = StoreConfig {
        osd_id: 2,
        ..cfg.clone()
    };
    let e = BlockStore::open(dir.path(), &wrong_osd).err().unwrap();
    assert!(
        matches!(
            e,
            StoreError::OsdIdMismatch {
                expected: 2,
                found: 1
            }
        ),
        "{e}"
    );
    assert!(e.to_string().contains("osd.1") && e.to_string().contains("osd.2"));
    assert_eq!(
        before,
        snapshot_files(dir.path()),
        "a refused open changed files"
    );
    // mkfs refuses to overwrite; open of an empty dir says to mkfs.
    let e = BlockStore::mkfs(dir.path(), &cfg).unwrap_err();
    assert!(matches!(e, StoreError::AlreadyFormatted { .. }), "{e}");
    let empty = tempfile::tempdir().unwrap();
    let e = BlockStore::open(empty.path(), &cfg).err().unwrap();
    assert!(matches!(e, StoreError::NotFormatted { .. }), "{e}");
    // The right identity opens, and only once at a time.
    let s = BlockStore::open(dir.path(), &cfg).unwrap();
    let e = BlockStore::open(dir.path(), &cfg).err().unwrap();
    assert!(matches!(e, StoreError::Locked { .. }), "{e}");
    assert_eq!(s.read(&key(1, "x"), 0, None).unwrap(), pattern(1, 100_000));
}

fn group_commit_run(
    engine: IoEngine,
    threads: usize,
    per_thread: usize,
    size: usize,
) -> (StoreCounters, f64) {
    let t = TempBlock::new(engine, 1 << 30);
    let s = Arc::new(t.store.unwrap());
    let start = std::time::Instant::now();
    let hs: Vec<_> = (0..threads)
        .map(|i| {
            let s = s.clone();
            std::thread::spawn(move || {
                for j in 0..per_thread {
                    let k = key(i as u32 % 8, &format!("t{i}-{j}"));
                    s.submit(
                        Transaction::new()
                            .write_full(&k, pattern((i * 1000 + j) as u64, size))
                            .set_xattr(&k, "v", b("1")),
                    )
                    .unwrap();
                }
            })
        })
        .collect();
    for h in hs {
        h.join().unwrap();
    }
    let secs = start.elapsed().as_secs_f64();
    for i in 0..threads {
        let k = key(i as u32 % 8, &format!("t{i}-{}", per_thread - 1));
        assert_eq!(s.read(&k, 0, None).unwrap().len(), size);
    }
    (s.counters(), secs)
}

#[test]
fn group_commit_shares_syncs_between_concurrent_submits() {
    let (c, secs) = group_commit_run(IoEngine::Auto, 64, 20, 16 * KIB);
    eprintln!(
        "64 threads x 20 submits of 16 KiB: {} txns, {} KV commits, {} data syncs, {:.0} txn/s",
        c.txns_committed,
        c.kv_commits,
        c.data_syncs,
        c.txns_committed as f64 / secs
    );
    assert_eq!(c.submits, 1280);
    assert_eq!(c.txns_committed, 1280);
    assert!(c.kv_commits * 4 <= c.submits, "{c:?}");
    assert!(c.data_syncs <= c.kv_commits, "{c:?}");
}

#[test]
fn readers_never_see_recycled_space_under_overwrites() {
    // Tiny device: freed extents get reused almost immediately, while readers
    // keep reading the objects being replaced.
    let t = TempBlock::new(IoEngine::Auto, 5 << 20);
    let s = Arc::new(t.store.unwrap());
    let keys: Vec<ObjectKey> = (0..4).map(|i| key(1, &format!("o{i}"))).collect();
    let self_describing = |seed: u64, n: usize| {
        let rest = pattern(seed, n);
        let mut v = blake3::hash(&rest).as_bytes().to_vec();
        v.extend_from_slice(&rest);
        v
    };
    for (i, k) in keys.iter().enumerate() {
        s.submit(Transaction::new().write_full(k, self_describing(i as u64, 500_000)))
            .unwrap();
    }
    // Readers hold an old record for 150 ms before reading its extents: many
    // commits (and allocator wrap-arounds) happen meanwhile.
    s.debug_set_read_pause(std::time::Duration::from_millis(150));
    let stop = Arc::new(AtomicBool::new(false));
    let reads = Arc::new(AtomicU64::new(0));
    let readers: Vec<_> = (0..4)
        .map(|r| {
            let (s, stop, reads, keys) = (s.clone(), stop.clone(), reads.clone(), keys.clone());
            std::thread::spawn(move || {
                let mut i = r;
                while !stop.load(Ordering::Relaxed) {
                    let k = &keys[i % keys.len()];
                    i += 1;
                    let v = s
                        .read(k, 0, None)
                        .unwrap_or_else(|e| panic!("read {k}: {e}"));
                    assert_eq!(
                        &v[..32],
                        blake3::hash(&v[32..]).as_bytes(),
                        "{k}: torn read"
                    );
                    reads.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    let writers: Vec<_> = (0..2u64)
        .map(|w| {
            let (s, keys) = (s.clone(), keys.clone());
            std::thread::spawn(move || {
                for round in 0..80u64 {
                    let k = &keys[(w * 2 + round % 2) as usize];
                    let n = 200_000 + (round as usize * 7919) % 500_000;
                    let seed = 1000 + w * 1000 + round;
                    s.submit(Transaction::new().write_full(k, self_describing(seed, n)))
                        .unwrap();
                }
            })
        })
        .collect();
    for w in writers {
        w.join().unwrap();
    }
    stop.store(true, Ordering::Relaxed);
    for r in readers {
        r.join().unwrap();
    }
    let c = s.counters();
    eprintln!(
        "{} concurrent reads; reclaim deferred {} times",
        reads.load(Ordering::Relaxed),
        c.reclaim_deferred
    );
    let r = s.fsck(true).unwrap();
    assert!(r.errors.is_empty(), "{:?}", r.errors);
}

#[test]
fn concurrent_submits_to_one_object_apply_in_queue_order() {
    // Each thread appends records to one shared object and to its own log in
    // the same transaction; the shared object must be an interleaving in which
    // every thread's records appear in its own order, and the total size must
    // equal the sum (no lost or overlapping appends).
    let t = TempBlock::new(IoEngine::Auto, 64 << 20);
    let s = Arc::new(t.store.unwrap());
    let shared = key(1, "shared");
    let lock = Arc::new(std::sync::Mutex::new(0u64));
    let hs: Vec<_> = (0..16u8)
        .map(|i| {
            let (s, shared, lock) = (s.clone(), shared.clone(), lock.clone());
            std::thread::spawn(move || {
                for j in 0..30u8 {
                    // The offset is reserved under a lock, submitted outside it:
                    // transactions may queue in either order, and must still
                    // all land.
                    let off = {
                        let mut g = lock.lock().unwrap();
                        let o = *g;
                        *g += 1000;
                        o
                    };
                    let rec = vec![i; 999].into_iter().chain([j]).collect::<Vec<u8>>();
                    s.submit(Transaction::new().write(&shared, off, rec))
                        .unwrap();
                }
            })
        })
        .collect();
    for h in hs {
        h.join().unwrap();
    }
    let v = s.read(&shared, 0, None).unwrap();
    assert_eq!(v.len(), 16 * 30 * 1000);
    let mut next = [0u8; 16];
    for rec in v.chunks(1000) {
        let i = rec[0] as usize;
        assert!(rec[..999].iter().all(|&x| x as usize == i));
        assert_eq!(rec[999], next[i], "thread {i}'s records out of order");
        next[i] += 1;
    }
}

/// `cargo test --release -p meridian-objectstore -- --ignored --nocapture`
#[test]
#[ignore = "a benchmark, not a test: run it on purpose in release mode"]
fn bench_group_commit() {
    for engine in [IoEngine::IoUring, IoEngine::Pread] {
        for (threads, per, size) in [
            (1, 300, 4 * KIB),
            (1, 300, 16 * KIB),
            (8, 100, 16 * KIB),
            (64, 40, 4 * KIB),
            (64, 40, 16 * KIB),
            (64, 10, 256 * KIB),
        ] {
            let (c, secs) = group_commit_run(engine, threads, per, size);
            eprintln!(
                "{engine:?} {threads:>2} threads x {per:>3} x {:>4} KiB: {:>6.0} txn/s, {:>5.1} txn per KV commit, {:>4} data syncs, {:>6.1} MB/s",
                size / KIB,
                c.txns_committed as f64 / secs,
                c.txns_committed as f64 / c.kv_commits.max(1) as f64,
                c.data_syncs,
                c.bytes_written as f64 / secs / 1e6
            );
        }
    }
}
