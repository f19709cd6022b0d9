//! Shared helpers: engine constructors, a reference model, and the conformance
//! suite (generic over `impl ObjectStore`).
#![allow(dead_code)]

use meridian_objectstore::*;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::collections::BTreeMap;
use std::path::Path;

pub const KIB: usize = 1024;
pub const MIB: usize = 1024 * 1024;

/// A block store in a fresh temp dir (kept alive by the returned guard).
pub struct TempBlock {
    pub dir: tempfile::TempDir,
    pub cfg: StoreConfig,
    pub store: Option<BlockStore>,
}

impl TempBlock {
    pub fn new(engine: IoEngine, size: u64) -> TempBlock {
        let dir = tempfile::tempdir().unwrap();
        let mut cfg = StoreConfig::new("test-fsid-0001", 3);
        cfg.block_size_bytes = size;
        cfg.cache_bytes = 32 << 20;
        cfg.engine = engine;
        BlockStore::mkfs(dir.path(), &cfg).unwrap();
        let store = match BlockStore::open(dir.path(), &cfg) {
            Ok(s) => s,
            Err(e)
                if engine == IoEngine::IoUring
                    && std::env::var_os("MERIDIAN_STORE_ALLOW_NO_URING").is_some() =>
            {
                eprintln!(
                    "io_uring unavailable ({e}); MERIDIAN_STORE_ALLOW_NO_URING is set: using auto"
                );
                cfg.engine = IoEngine::Auto;
                BlockStore::open(dir.path(), &cfg).unwrap()
            }
            Err(e) => panic!(
                "open block store ({engine:?}): {e}; where io_uring is not allowed, set \
                 MERIDIAN_STORE_ALLOW_NO_URING=1 to run the io_uring suite on the fallback"
            ),
        };
        if engine == IoEngine::IoUring && cfg.engine == IoEngine::IoUring {
            assert_eq!(store.engine_name(), "io_uring");
        }
        if engine == IoEngine::Pread {
            assert_eq!(store.engine_name(), "pread");
        }
        TempBlock {
            dir,
            cfg,
            store: Some(store),
        }
    }

    pub fn s(&self) -> &BlockStore {
        self.store.as_ref().unwrap()
    }

    pub fn reopen(&mut self) {
        self.store = None;
        self.store = Some(BlockStore::open(self.dir.path(), &self.cfg).unwrap());
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// fsck must be clean and fully accounted on an idle store.
    pub fn check(&self) {
        let r = self.s().fsck(true).unwrap();
        assert!(r.errors.is_empty(), "fsck errors: {:?}", r.errors);
        assert_eq!(r.unaccounted_bytes, 0, "fsck: {r:?}");
    }
}

pub fn pg(n: u32) -> PgId {
    PgId::new(1, n)
}

pub fn key(p: u32, name: &str) -> ObjectKey {
    ObjectKey::new(pg(p), name)
}

/// Deterministic pseudo-random bytes.
pub fn pattern(seed: u64, len: usize) -> Vec<u8> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut v = vec![0u8; len];
    rng.fill(&mut v[..]);
    v
}

pub fn b(s: &str) -> Bytes {
    Bytes::copy_from_slice(s.as_bytes())
}

// ---- reference model -----------------------------------------------------

#[derive(Clone, Debug, Default, PartialEq)]
pub struct MObj {
    pub data: Vec<u8>,
    pub xattrs: BTreeMap<String, Bytes>,
    pub omap: BTreeMap<Bytes, Bytes>,
}

/// The simplest possible implementation of the documented semantics.
#[derive(Clone, Debug, Default)]
pub struct Model {
    pub objs: BTreeMap<ObjectKey, MObj>,
}

impl Model {
    pub fn apply(&mut self, txn: &Transaction) {
        for op in &txn.ops {
            match op.clone() {
                StoreOp::Touch { key } => {
                    self.objs.entry(key).or_default();
                }
                StoreOp::Write { key, offset, data } => {
                    let o = self.objs.entry(key).or_default();
                    if !data.is_empty() {
                        let end = offset as usize + data.len();
                        if o.data.len() < end {
                            o.data.resize(end, 0);
                        }
                        o.data[offset as usize..end].copy_from_slice(&data);
                    }
                }
                StoreOp::WriteFull { key, data } => {
                    self.objs.entry(key).or_default().data = data.to_vec();
                }
                StoreOp::Truncate { key, size } => {
                    self.objs
                        .entry(key)
                        .or_default()
                        .data
                        .resize(size as usize, 0);
                }
                StoreOp::Remove { key } => {
                    self.objs.remove(&key);
                }
                StoreOp::SetXattrs { key, attrs } => {
                    let o = self.objs.entry(key).or_default();
                    for (k, v) in attrs {
                        o.xattrs.insert(k, v);
                    }
                }
                StoreOp::RmXattr { key, name } => {
                    if let Some(o) = self.objs.get_mut(&key) {
                        o.xattrs.remove(&name);
                    }
                }
                StoreOp::OmapSet { key, entries } => {
                    let o = self.objs.entry(key).or_default();
                    for (k, v) in entries {
                        o.omap.insert(k, v);
                    }
                }
                StoreOp::OmapRm { key, keys } => {
                    if let Some(o) = self.objs.get_mut(&key) {
                        for k in keys {
                            o.omap.remove(&k);
                        }
                    }
                }
                StoreOp::OmapRmRange { key, start, end } => {
                    if let Some(o) = self.objs.get_mut(&key) {
                        o.omap
                            .retain(|k, _| !(*k >= start && (end.is_empty() || *k < end)));
                    }
                }
                StoreOp::OmapClear { key } => {
                    if let Some(o) = self.objs.get_mut(&key) {
                        o.omap.clear();
                    }
                }
                StoreOp::RemoveCollection { pg } => {
                    self.objs.retain(|k, _| k.pg != pg);
                }
            }
        }
    }

    /// Asserts the store holds exactly what the model holds (for the given PGs).
    pub fn verify(&self, s: &impl ObjectStore, pgs: &[PgId]) {
        for p in pgs {
            let want: Vec<String> = self
                .objs
                .keys()
                .filter(|k| k.pg == *p && !k.name.is_empty())
                .map(|k| k.name.clone())
                .collect();
            let got = s.list_objects(*p, None, usize::MAX).unwrap();
            assert_eq!(got, want, "list_objects({p})");
        }
        for (k, o) in &self.objs {
            self.verify_obj(s, k, Some(o));
        }
        let mut cols: Vec<PgId> = self.objs.keys().map(|k| k.pg).collect();
        cols.dedup();
        assert_eq!(s.list_collections().unwrap(), cols, "list_collections");
        assert_eq!(s.statfs().unwrap().objects, self.objs.len() as u64);
    }

    pub fn verify_key(&self, s: &impl ObjectStore, k: &ObjectKey) {
        self.verify_obj(s, k, self.objs.get(k));
    }

    fn verify_obj(&self, s: &impl ObjectStore, k: &ObjectKey, o: Option<&MObj>) {
        match o {
            None => {
                assert_eq!(s.stat(k).unwrap(), None, "{k} should be absent");
                assert!(s.read(k, 0, None).unwrap_err().is_not_found());
                assert!(s.getxattrs(k).unwrap_err().is_not_found());
                assert!(s.omap_get(k, None, b"", 10).unwrap_err().is_not_found());
            }
            Some(o) => {
                assert_eq!(
                    s.stat(k).unwrap(),
                    Some(ObjectStat {
                        size: o.data.len() as u64
                    }),
                    "stat {k}"
                );
                let got = s.read(k, 0, None).unwrap();
                if got[..] != o.data[..] {
                    let first = got
                        .iter()
                        .zip(&o.data)
                        .position(|(a, b)| a != b)
                        .unwrap_or(got.len().min(o.data.len()));
                    panic!(
                        "{k}: data differs (len {} vs {}, first difference at {first})",
                        got.len(),
                        o.data.len()
                    );
                }
                let xs: Vec<(String, Bytes)> = o
                    .xattrs
                    .iter()
                    .map(|(a, b)| (a.clone(), b.clone()))
                    .collect();
                assert_eq!(s.getxattrs(k).unwrap(), xs, "xattrs of {k}");
                let om: Vec<(Bytes, Bytes)> =
                    o.omap.iter().map(|(a, b)| (a.clone(), b.clone())).collect();
                assert_eq!(
                    s.omap_get(k, None, b"", usize::MAX).unwrap(),
                    om,
                    "omap of {k}"
                );
            }
        }
    }
}

// ---- conformance suite ---------------------------------------------------

fn check_data(s: &impl ObjectStore, k: &ObjectKey, want: &[u8]) {
    assert_eq!(
        s.stat(k).unwrap().map(|st| st.size),
        Some(want.len() as u64),
        "size of {k}"
    );
    let got = s.read(k, 0, None).unwrap();
    assert!(
        got[..] == want[..],
        "content of {k} (len {} vs {})",
        got.len(),
        want.len()
    );
    // A few sub-ranges, including ones crossing chunk boundaries and EOF.
    for (off, len) in [
        (0u64, 1u64),
        (4095, 2),
        (65535, 3),
        (65536 * 2 - 10, 70_000),
        (want.len() as u64 / 2, 100_000),
        (want.len() as u64 + 5, 10),
    ] {
        let r = s.read(k, off, Some(len)).unwrap();
        let start = (off as usize).min(want.len());
        let end = (off.saturating_add(len) as usize).min(want.len());
        assert!(r[..] == want[start..end], "{k} read({off}, {len})");
    }
}

pub fn sizes_and_offsets(s: &impl ObjectStore) {
    // Sizes 0 B .. 9 MiB, written whole.
    let sizes = [
        0,
        1,
        100,
        4095,
        4096,
        4097,
        8 * KIB - 1,
        8 * KIB,
        8 * KIB + 1,
        64 * KIB - 1,
        64 * KIB,
        64 * KIB + 1,
        200 * KIB + 7,
        MIB + 3,
        9 * MIB,
    ];
    for (i, &n) in sizes.iter().enumerate() {
        let k = key(1, &format!("size-{n}"));
        let data = pattern(i as u64, n);
        s.submit(Transaction::new().write_full(&k, data.clone()))
            .unwrap();
        check_data(s, &k, &data);
    }
    // Appends that cross the inline threshold and chunk boundaries.
    let k = key(1, "append");
    let mut want = Vec::new();
    for (i, n) in [1000usize, 7000, 300, 60_000, 5000, 70_000, 1, 200_000]
        .into_iter()
        .enumerate()
    {
        let d = pattern(100 + i as u64, n);
        s.submit(Transaction::new().write(&k, want.len() as u64, d.clone()))
            .unwrap();
        want.extend_from_slice(&d);
        check_data(s, &k, &want);
    }
    // Overwrites inside, across chunk boundaries, and past the end.
    for (i, (off, n)) in [
        (10usize, 10usize),
        (65_530, 20),
        (4096, 4096),
        (60_000, 140_000),
        (want.len() - 5, 10),
        (want.len() + 100_000, 3),
        (0, 65_536),
        (131_072, 65_536),
    ]
    .into_iter()
    .enumerate()
    {
        let d = pattern(200 + i as u64, n);
        s.submit(Transaction::new().write(&k, off as u64, d.clone()))
            .unwrap();
        if want.len() < off + n {
            want.resize(off + n, 0);
        }
        want[off..off + n].copy_from_slice(&d);
        check_data(s, &k, &want);
    }
    // Sparse: a write far past the end leaves zeros.
    let k = key(1, "sparse");
    s.submit(Transaction::new().write(&k, 3 * MIB as u64 + 17, b("tail")))
        .unwrap();
    let mut want = vec![0u8; 3 * MIB + 17];
    want.extend_from_slice(b"tail");
    check_data(s, &k, &want);
    // Zero-length write creates without extending.
    let k = key(1, "zero");
    s.submit(Transaction::new().write(&k, 1000, Bytes::new()))
        .unwrap();
    check_data(s, &k, &[]);
}

pub fn truncate_and_write_full(s: &impl ObjectStore) {
    let k = key(2, "t");
    let mut want = pattern(1, 300_000);
    s.submit(Transaction::new().write_full(&k, want.clone()))
        .unwrap();
    for size in [
        250_000usize,
        131_072,
        131_071,
        70_000,
        300_000,
        9000,
        8192,
        100,
        100_000,
        0,
        5,
    ] {
        s.submit(Transaction::new().truncate(&k, size as u64))
            .unwrap();
        want.resize(size, 0);
        check_data(s, &k, &want);
    }
    // Shrink then grow: the old bytes must not come back.
    let d = pattern(2, 200_000);
    s.submit(
        Transaction::new()
            .write_full(&k, d.clone())
            .truncate(&k, 70_001)
            .truncate(&k, 200_000),
    )
    .unwrap();
    let mut want = d[..70_001].to_vec();
    want.resize(200_000, 0);
    check_data(s, &k, &want);
    // Truncate creates.
    let k2 = key(2, "t2");
    s.submit(Transaction::new().truncate(&k2, 100_000)).unwrap();
    check_data(s, &k2, &vec![0u8; 100_000]);
    // write_full replaces larger with smaller and back; xattrs survive it.
    let k3 = key(2, "wf");
    s.submit(
        Transaction::new()
            .write_full(&k3, pattern(3, 500_000))
            .set_xattr(&k3, "a", b("1")),
    )
    .unwrap();
    s.submit(Transaction::new().write_full(&k3, b("small")))
        .unwrap();
    check_data(s, &k3, b"small");
    let big = pattern(4, 150_000);
    s.submit(Transaction::new().write_full(&k3, big.clone()))
        .unwrap();
    check_data(s, &k3, &big);
    s.submit(Transaction::new().write_full(&k3, Bytes::new()))
        .unwrap();
    check_data(s, &k3, &[]);
    assert_eq!(s.getxattr(&k3, "a").unwrap(), Some(b("1")));
}

pub fn xattrs(s: &impl ObjectStore) {
    let k = key(3, "x");
    assert!(s.getxattr(&k, "a").unwrap_err().is_not_found());
    s.submit(
        Transaction::new()
            .set_xattrs(&k, vec![("b".into(), b("2")), ("a".into(), b("1"))])
            .set_xattr(&k, "c", Bytes::new()),
    )
    .unwrap();
    assert_eq!(s.stat(&k).unwrap(), Some(ObjectStat { size: 0 }));
    assert_eq!(s.getxattr(&k, "a").unwrap(), Some(b("1")));
    assert_eq!(s.getxattr(&k, "zz").unwrap(), None);
    assert_eq!(
        s.getxattrs(&k).unwrap(),
        vec![
            ("a".into(), b("1")),
            ("b".into(), b("2")),
            ("c".into(), Bytes::new())
        ]
    );
    s.submit(
        Transaction::new()
            .set_xattr(&k, "a", b("one"))
            .rm_xattr(&k, "b")
            .rm_xattr(&k, "missing"),
    )
    .unwrap();
    assert_eq!(
        s.getxattrs(&k).unwrap(),
        vec![("a".into(), b("one")), ("c".into(), Bytes::new())]
    );
    // Removal ops on an absent object do not create it.
    let k2 = key(3, "absent");
    s.submit(Transaction::new().rm_xattr(&k2, "a").omap_clear(&k2))
        .unwrap();
    assert_eq!(s.stat(&k2).unwrap(), None);
    // Objects with a name that is a prefix of another keep separate xattrs.
    let k3 = key(3, "xa");
    s.submit(Transaction::new().set_xattr(&k3, "", b("v")))
        .unwrap();
    assert_eq!(s.getxattrs(&k3).unwrap(), vec![(String::new(), b("v"))]);
    assert_eq!(s.getxattrs(&k).unwrap().len(), 2);
}

pub fn omap(s: &impl ObjectStore) {
    let k = key(4, "o");
    let entries: Vec<(Bytes, Bytes)> = ["a", "b/1", "b/2", "b/3", "ba", "c", "d\u{0}", "e"]
        .iter()
        .map(|x| (b(x), b(&format!("v-{x}"))))
        .collect();
    s.submit(Transaction::new().omap_set(&k, entries.clone()))
        .unwrap();
    let names = |v: Vec<(Bytes, Bytes)>| -> Vec<String> {
        v.into_iter()
            .map(|(k, _)| String::from_utf8(k.to_vec()).unwrap())
            .collect()
    };
    assert_eq!(s.omap_get(&k, None, b"", 100).unwrap(), entries);
    assert_eq!(
        names(s.omap_get(&k, None, b"b/", 100).unwrap()),
        ["b/1", "b/2", "b/3"]
    );
    assert_eq!(
        names(s.omap_get(&k, Some(b"b/1"), b"b/", 100).unwrap()),
        ["b/2", "b/3"]
    );
    assert_eq!(
        names(s.omap_get(&k, Some(b"a"), b"b/", 1).unwrap()),
        ["b/1"]
    );
    assert_eq!(
        names(s.omap_get(&k, Some(b"b/3"), b"b/", 100).unwrap()),
        Vec::<String>::new()
    );
    assert_eq!(
        names(s.omap_get(&k, Some(b"b"), b"", 3).unwrap()),
        ["b/1", "b/2", "b/3"]
    );
    assert_eq!(
        names(s.omap_get(&k, None, b"zz", 10).unwrap()),
        Vec::<String>::new()
    );
    assert!(s.omap_get(&k, None, b"", 0).unwrap().is_empty());
    // start_after past the whole prefix range, or equal to its last key.
    assert!(s.omap_get(&k, Some(b"c"), b"b/", 10).unwrap().is_empty());
    assert!(s.omap_get(&k, Some(b"b0"), b"b/", 10).unwrap().is_empty());
    assert!(s.omap_get(&k, Some(b"e"), b"", 10).unwrap().is_empty());
    assert!(s.omap_get(&k, Some(b"\xff"), b"", 10).unwrap().is_empty());
    // Inverted and empty removal ranges remove nothing.
    s.submit(
        Transaction::new()
            .omap_rm_range(&k, b("c"), b("a"))
            .omap_rm_range(&k, b("b/1"), b("b/1")),
    )
    .unwrap();
    assert_eq!(s.omap_get(&k, None, b"", 100).unwrap(), entries);
    // Pagination visits everything once.
    let mut all = Vec::new();
    let mut after: Option<Bytes> = None;
    loop {
        let page = s.omap_get(&k, after.as_deref(), b"", 3).unwrap();
        if page.is_empty() {
            break;
        }
        after = Some(page.last().unwrap().0.clone());
        all.extend(page);
    }
    assert_eq!(all, entries);
    assert_eq!(
        s.omap_get_values(&k, &[b("c"), b("zz"), b("a"), b("c")])
            .unwrap(),
        vec![(b("a"), b("v-a")), (b("c"), b("v-c"))]
    );
    // Remove keys, ranges, everything.
    s.submit(Transaction::new().omap_rm(&k, vec![b("a"), b("nope")]))
        .unwrap();
    s.submit(Transaction::new().omap_rm_range(&k, b("b/2"), b("c")))
        .unwrap();
    assert_eq!(
        names(s.omap_get(&k, None, b"", 100).unwrap()),
        ["b/1", "c", "d\u{0}", "e"]
    );
    s.submit(Transaction::new().omap_rm_range(&k, b("d"), Bytes::new()))
        .unwrap();
    assert_eq!(names(s.omap_get(&k, None, b"", 100).unwrap()), ["b/1", "c"]);
    s.submit(Transaction::new().omap_clear(&k)).unwrap();
    assert!(s.omap_get(&k, None, b"", 100).unwrap().is_empty());
    assert_eq!(s.stat(&k).unwrap(), Some(ObjectStat { size: 0 }));
    // Binary keys with 0x00 and 0xff.
    let bin = vec![
        (Bytes::from_static(&[0]), b("z")),
        (Bytes::from_static(&[0xff, 0xff]), b("f")),
    ];
    s.submit(Transaction::new().omap_set(&k, bin.clone()))
        .unwrap();
    assert_eq!(s.omap_get(&k, None, b"", 10).unwrap(), bin);
    assert_eq!(
        s.omap_get(&k, None, &[0xff], 10).unwrap(),
        bin[1..].to_vec()
    );
}

pub fn listing(s: &impl ObjectStore) {
    let p = pg(5);
    let mut names: Vec<String> = (0..57).map(|i| format!("obj-{i:03}")).collect();
    names.extend(
        ["a", "a\u{0}", "é", "Z", "obj-", "~"]
            .iter()
            .map(|x| x.to_string()),
    );
    let mut t = Transaction::new().touch(&ObjectKey::meta(p));
    for n in &names {
        t = t.touch(&ObjectKey::new(p, n.clone()));
    }
    // Neighbouring PGs must not leak into the listing.
    t = t.touch(&ObjectKey::new(pg(4), "zzz"));
    t = t.touch(&ObjectKey::new(pg(6), "aaa"));
    t = t.touch(&ObjectKey::new(PgId::new(2, 5), "aaa"));
    s.submit(t).unwrap();
    names.sort();
    assert_eq!(s.list_objects(p, None, 1000).unwrap(), names);
    let mut got = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let page = s.list_objects(p, after.as_deref(), 10).unwrap();
        if page.is_empty() {
            break;
        }
        assert!(page.len() <= 10);
        after = page.last().cloned();
        got.extend(page);
    }
    assert_eq!(got, names);
    assert_eq!(
        s.list_objects(p, Some("obj-050"), 3).unwrap(),
        ["obj-051", "obj-052", "obj-053"]
    );
    assert!(s.list_objects(p, None, 0).unwrap().is_empty());
    assert!(s.list_objects(pg(77), None, 10).unwrap().is_empty());
    let cols = s.list_collections().unwrap();
    for c in [p, pg(4), pg(6), PgId::new(2, 5)] {
        assert!(cols.contains(&c), "{c} missing from {cols:?}");
    }
    // Only the meta object: the PG still holds something, lists nothing.
    let q = pg(9);
    s.submit(Transaction::new().omap_set(&ObjectKey::meta(q), vec![(b("info"), b("x"))]))
        .unwrap();
    assert!(s.list_objects(q, None, 10).unwrap().is_empty());
    assert!(s.list_collections().unwrap().contains(&q));
    assert_eq!(
        s.omap_get(&ObjectKey::meta(q), None, b"", 10)
            .unwrap()
            .len(),
        1
    );
}

pub fn remove_and_collections(s: &impl ObjectStore) {
    let k = key(7, "r");
    s.submit(
        Transaction::new()
            .write_full(&k, pattern(1, 100_000))
            .set_xattr(&k, "a", b("1"))
            .omap_set(&k, vec![(b("k"), b("v"))]),
    )
    .unwrap();
    s.submit(Transaction::new().remove(&k)).unwrap();
    assert_eq!(s.stat(&k).unwrap(), None);
    assert!(s.read(&k, 0, None).unwrap_err().is_not_found());
    // Re-created: no leftovers.
    s.submit(Transaction::new().touch(&k)).unwrap();
    assert!(s.getxattrs(&k).unwrap().is_empty());
    assert!(s.omap_get(&k, None, b"", 10).unwrap().is_empty());
    s.submit(Transaction::new().remove(&k).remove(&k)).unwrap();
    // RemoveCollection removes everything of the PG, meta included.
    let p = pg(8);
    let mut t = Transaction::new()
        .omap_set(&ObjectKey::meta(p), vec![(b("log"), b("x"))])
        .write_full(&key(88, "other"), b("keep"));
    for i in 0..20 {
        let k = ObjectKey::new(p, format!("o{i}"));
        t = t
            .write_full(&k, pattern(i, 20_000 * i as usize))
            .set_xattr(&k, "x", b("y"))
            .omap_set(&k, vec![(b("k"), b("v"))]);
    }
    s.submit(t).unwrap();
    assert_eq!(s.list_objects(p, None, 100).unwrap().len(), 20);
    s.submit(Transaction::new().remove_collection(p)).unwrap();
    assert!(s.list_objects(p, None, 100).unwrap().is_empty());
    assert!(!s.list_collections().unwrap().contains(&p));
    assert_eq!(s.stat(&ObjectKey::meta(p)).unwrap(), None);
    assert_eq!(s.stat(&ObjectKey::new(p, "o3")).unwrap(), None);
    assert_eq!(s.read(&key(88, "other"), 0, None).unwrap(), b("keep"));
    // Recreating in the removed PG starts clean.
    let k = ObjectKey::new(p, "o3");
    s.submit(Transaction::new().touch(&k)).unwrap();
    assert!(s.getxattrs(&k).unwrap().is_empty());
    assert!(s.omap_get(&k, None, b"", 10).unwrap().is_empty());
}

pub fn transaction_order(s: &impl ObjectStore) {
    let mut m = Model::default();
    let k = key(10, "ord");
    let k2 = key(10, "ord2");
    let txns = vec![
        // Later ops see earlier ones: write, partial overwrite in the same
        // transaction (read-modify-write of a chunk written moments before).
        Transaction::new()
            .write(&k, 0, pattern(1, 150_000))
            .write(&k, 70_000, pattern(2, 10))
            .write(&k, 65_530, pattern(3, 20))
            .truncate(&k, 140_000)
            .write(&k, 139_990, pattern(4, 30)),
        // Remove then recreate inside one transaction.
        Transaction::new()
            .set_xattr(&k2, "a", b("1"))
            .omap_set(&k2, vec![(b("x"), b("1")), (b("y"), b("2"))])
            .remove(&k2)
            .touch(&k2)
            .omap_set(&k2, vec![(b("z"), b("3"))]),
        // Set then remove a range that includes the new key.
        Transaction::new()
            .omap_set(
                &k2,
                vec![(b("a1"), b("1")), (b("a2"), b("2")), (b("b1"), b("3"))],
            )
            .omap_rm_range(&k2, b("a"), b("b"))
            .omap_set(&k2, vec![(b("a3"), b("4"))]),
        // Grow past the inline threshold and shrink back in one transaction.
        Transaction::new()
            .write_full(&k2, pattern(5, 5000))
            .write(&k2, 5000, pattern(6, 100_000))
            .truncate(&k2, 6000)
            .write(&k2, 3, b("abc")),
        // Collection removal followed by new objects in the same PG.
        Transaction::new()
            .remove_collection(pg(10))
            .write_full(&k, b("after"))
            .set_xattr(&k, "v", b("2")),
    ];
    for t in txns {
        m.apply(&t);
        s.submit(t).unwrap();
        m.verify(s, &[pg(10)]);
    }
}

pub fn invalid_arguments(s: &impl ObjectStore) {
    let long = "x".repeat(MAX_OBJECT_NAME_LEN + 1);
    let k = key(11, &long);
    let e = s.submit(Transaction::new().touch(&k)).unwrap_err();
    assert!(matches!(e, StoreError::InvalidArgument(_)), "{e}");
    let k = key(11, "big");
    let e = s
        .submit(Transaction::new().write(&k, u64::MAX - 1, b("xx")))
        .unwrap_err();
    assert!(matches!(e, StoreError::InvalidArgument(_)), "{e}");
    // The invalid transaction changed nothing, even its valid ops.
    let e = s
        .submit(
            Transaction::new()
                .touch(&k)
                .truncate(&k, MAX_OBJECT_SIZE + 1),
        )
        .unwrap_err();
    assert!(matches!(e, StoreError::InvalidArgument(_)), "{e}");
    assert_eq!(s.stat(&k).unwrap(), None);
    s.submit(Transaction::new()).unwrap();
}

/// Random transactions checked against the model.
pub fn random_vs_model(s: &impl ObjectStore, seed: u64, rounds: usize) -> Model {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut m = Model::default();
    let pgs = [pg(20), pg(21)];
    let names = ["", "a", "b", "c", "d", "e"];
    let pick_key = |rng: &mut StdRng| {
        ObjectKey::new(
            pgs[rng.gen_range(0..pgs.len())],
            names[rng.gen_range(0..names.len())],
        )
    };
    for round in 0..rounds {
        let mut t = Transaction::new();
        for _ in 0..rng.gen_range(1..=4) {
            let k = pick_key(&mut rng);
            let size = |rng: &mut StdRng| -> usize {
                match rng.gen_range(0..10) {
                    0 => 0,
                    1..=4 => rng.gen_range(1..10_000),
                    5..=7 => rng.gen_range(1..150_000),
                    _ => rng.gen_range(1..400_000),
                }
            };
            let op = match rng.gen_range(0..100) {
                0..=29 => {
                    let n = size(&mut rng);
                    let off = rng.gen_range(0..300_000u64);
                    StoreOp::Write {
                        key: k,
                        offset: off,
                        data: pattern(rng.r#gen(), n).into(),
                    }
                }
                30..=44 => StoreOp::WriteFull {
                    key: k,
                    data: pattern(rng.r#gen(), size(&mut rng)).into(),
                },
                45..=54 => StoreOp::Truncate {
                    key: k,
                    size: size(&mut rng) as u64,
                },
                55..=59 => StoreOp::Remove { key: k },
                60..=64 => StoreOp::Touch { key: k },
                65..=71 => StoreOp::SetXattrs {
                    key: k,
                    attrs: vec![(
                        format!("x{}", rng.gen_range(0..4)),
                        pattern(rng.r#gen(), 8).into(),
                    )],
                },
                72..=74 => StoreOp::RmXattr {
                    key: k,
                    name: format!("x{}", rng.gen_range(0..4)),
                },
                75..=84 => StoreOp::OmapSet {
                    key: k,
                    entries: (0..rng.gen_range(1..5))
                        .map(|_| {
                            (
                                Bytes::from(format!("k{:02}", rng.gen_range(0..30))),
                                Bytes::from(pattern(rng.r#gen(), 16)),
                            )
                        })
                        .collect(),
                },
                85..=88 => StoreOp::OmapRm {
                    key: k,
                    keys: vec![Bytes::from(format!("k{:02}", rng.gen_range(0..30)))],
                },
                89..=92 => {
                    let a = rng.gen_range(0..30);
                    let end = if rng.gen_bool(0.3) {
                        Bytes::new()
                    } else {
                        Bytes::from(format!("k{:02}", rng.gen_range(a..31)))
                    };
                    StoreOp::OmapRmRange {
                        key: k,
                        start: Bytes::from(format!("k{a:02}")),
                        end,
                    }
                }
                93..=96 => StoreOp::OmapClear { key: k },
                _ => StoreOp::RemoveCollection {
                    pg: pgs[rng.gen_range(0..pgs.len())],
                },
            };
            t.push(op);
        }
        m.apply(&t);
        s.submit(t).unwrap();
        if round % 25 == 24 {
            m.verify(s, &pgs);
        } else {
            let k = pick_key(&mut rng);
            m.verify_key(s, &k);
        }
    }
    m.verify(s, &pgs);
    m
}

/// Generates one #[test] per conformance case for an engine.
macro_rules! conformance_tests {
    ($modname:ident, $make:expr) => {
        mod $modname {
            use super::*;

            #[test]
            fn sizes_and_offsets() {
                let h = $make;
                common::sizes_and_offsets(&*h);
            }
            #[test]
            fn truncate_and_write_full() {
                let h = $make;
                common::truncate_and_write_full(&*h);
            }
            #[test]
            fn xattrs() {
                let h = $make;
                common::xattrs(&*h);
            }
            #[test]
            fn omap() {
                let h = $make;
                common::omap(&*h);
            }
            #[test]
            fn listing() {
                let h = $make;
                common::listing(&*h);
            }
            #[test]
            fn remove_and_collections() {
                let h = $make;
                common::remove_and_collections(&*h);
            }
            #[test]
            fn transaction_order() {
                let h = $make;
                common::transaction_order(&*h);
            }
            #[test]
            fn invalid_arguments() {
                let h = $make;
                common::invalid_arguments(&*h);
            }
            #[test]
            fn random_vs_model() {
                let h = $make;
                common::random_vs_model(&*h, 42, 300);
            }
        }
    };
}
