//! kill -9 in the middle of a stream of transactions: every acknowledged
//! transaction must survive whole, and no object may be half-written.
//!
//! The test re-executes its own binary as the writer (`crash_child`, a no-op
//! unless the environment variable below is set), reads its acknowledgements
//! from stdout, SIGKILLs it mid-stream and checks the store.

use meridian_objectstore::*;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;

const ENV_DIR: &str = "MERIDIAN_STORE_CRASH_CHILD_DIR";
const ENV_SEED: &str = "MERIDIAN_STORE_CRASH_CHILD_SEED";
const THREADS: u64 = 6;
const OBJECTS_PER_THREAD: u64 = 6;
const HEADER: usize = 40;

fn cfg() -> StoreConfig {
    let mut c = StoreConfig::new("crash-test-fsid", 9);
    c.block_size_bytes = 256 << 20;
    c.cache_bytes = 32 << 20;
    c
}

fn pg() -> PgId {
    PgId::new(3, 1)
}

/// `blake3(rest) | version:u64le | payload`.
fn seal(content: &mut [u8], ver: u64) {
    content[32..40].copy_from_slice(&ver.to_le_bytes());
    let h = blake3::hash(&content[32..]);
    content[..32].copy_from_slice(h.as_bytes());
}

/// Checks a sealed object; returns its version.
fn unseal(content: &[u8]) -> Result<u64, String> {
    if content.len() < HEADER {
        return Err(format!("only {} bytes", content.len()));
    }
    if blake3::hash(&content[32..]).as_bytes() != &content[..32] {
        return Err("content does not match its embedded hash (half-written?)".into());
    }
    Ok(u64::from_le_bytes(content[32..40].try_into().unwrap()))
}

fn say(line: String) {
    let out = std::io::stdout();
    let mut o = out.lock();
    o.write_all(line.as_bytes()).unwrap();
    o.flush().unwrap();
}

#[test]
fn crash_child() {
    let Some(dir) = std::env::var_os(ENV_DIR) else {
        return; // only does something when re-executed by the test below
    };
    let seed: u64 = std::env::var(ENV_SEED).unwrap().parse().unwrap();
    let s = Arc::new(BlockStore::open(Path::new(&dir), &cfg()).unwrap());
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let hs: Vec<_> = (0..THREADS)
        .map(|t| {
            let s = s.clone();
            std::thread::spawn(move || {
                let mut rng = StdRng::seed_from_u64(seed * 100 + t);
                // Current content and version of this thread's objects (recovered
                // from the store, so a second run continues where the first died).
                let mut state: HashMap<String, (u64, Option<Vec<u8>>)> = HashMap::new();
                for i in 0..OBJECTS_PER_THREAD {
                    let name = format!("t{t}-o{i}");
                    let k = ObjectKey::new(pg(), name.clone());
                    let (ver, content) = match s.read(&k, 0, None) {
                        Ok(v) => (unseal(&v).unwrap(), Some(v.to_vec())),
                        Err(e) if e.is_not_found() => {
                            let ver = s
                                .getxattr(&ObjectKey::new(pg(), format!("{name}-tomb")), "ver")
                                .ok()
                                .flatten()
                                .map(|v| u64::from_le_bytes(v[..8].try_into().unwrap()))
                                .unwrap_or(0);
                            (ver, None)
                        }
                        Err(e) => panic!("{e}"),
                    };
                    state.insert(name, (ver, content));
                }
                while std::time::Instant::now() < deadline {
                    let name = format!("t{t}-o{}", rng.gen_range(0..OBJECTS_PER_THREAD));
                    let k = ObjectKey::new(pg(), name.clone());
                    let (ver, content) = state.get(&name).cloned().unwrap();
                    let ver = ver + 1;
                    let verb = ver.to_le_bytes().to_vec();
                    let mut txn = Transaction::new();
                    let mut kind = "write";
                    let new_content = match (content, rng.gen_range(0..10)) {
                        (Some(_), 0) => {
                            kind = "remove";
                            // The tombstone object remembers the version.
                            txn = txn.remove(&k).set_xattr(
                                &ObjectKey::new(pg(), format!("{name}-tomb")),
                                "ver",
                                verb.clone(),
                            );
                            None
                        }
                        (Some(mut c), 1..=4) => {
                            // Partial overwrite (maybe extending) + new header, atomically.
                            let len = rng.gen_range(1..100_000);
                            let off = rng.gen_range(HEADER..c.len() + 10_000);
                            if c.len() < off + len {
                                c.resize(off + len, 0);
                            }
                            rng.fill(&mut c[off..off + len]);
                            seal(&mut c, ver);
                            txn = txn.write(&k, off as u64, c[off..off + len].to_vec()).write(
                                &k,
                                0,
                                c[..HEADER].to_vec(),
                            );
                            Some(c)
                        }
                        (Some(mut c), 5) => {
                            let len = rng.gen_range(HEADER..=c.len());
                            c.truncate(len);
                            seal(&mut c, ver);
                            txn = txn
                                .truncate(&k, len as u64)
                                .write(&k, 0, c[..HEADER].to_vec());
                            Some(c)
                        }
                        _ => {
                            let len = match rng.gen_range(0..3) {
                                0 => rng.gen_range(HEADER..8000),
                                1 => rng.gen_range(HEADER..200_000),
                                _ => rng.gen_range(HEADER..1_500_000),
                            };
                            let mut c = vec![0u8; len];
                            rng.fill(&mut c[HEADER..]);
                            seal(&mut c, ver);
                            txn = txn.write_full(&k, c.clone());
                            Some(c)
                        }
                    };
                    if new_content.is_some() {
                        txn = txn
                            .set_xattr(&k, "ver", verb.clone())
                            .omap_set(&k, vec![(format!("v{ver:08}").into(), verb.into())]);
                    }
                    say(format!("SUBMIT {name} {ver} {kind}\n"));
                    s.submit(txn).unwrap();
                    say(format!("ACK {name} {ver}\n"));
                    state.insert(name, (ver, new_content));
                }
            })
        })
        .collect();
    for h in hs {
        h.join().unwrap();
    }
}

#[derive(Default, Debug, Clone)]
struct Seen {
    acked: Option<(u64, bool)>,    // (version, removed)
    inflight: Option<(u64, bool)>, // submitted, not acknowledged
}

fn run_child_and_kill(dir: &Path, seed: u64, acks_before_kill: usize) -> HashMap<String, Seen> {
    let exe = std::env::current_exe().unwrap();
    let mut child = Command::new(exe)
        .args(["crash_child", "--exact", "--nocapture", "--test-threads=1"])
        .env(ENV_DIR, dir)
        .env(ENV_SEED, seed.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut seen: HashMap<String, Seen> = HashMap::new();
    let mut acks = 0;
    let mut killed = false;
    let mut line = String::new();
    loop {
        line.clear();
        if out.read_line(&mut line).unwrap() == 0 {
            break;
        }
        if !line.ends_with('\n') {
            break; // cut by the kill: not a complete statement
        }
        // libtest may print "test crash_child ... " in front of the first line.
        let start = ["SUBMIT ", "ACK "]
            .iter()
            .filter_map(|m| line.find(m))
            .min()
            .unwrap_or(line.len());
        let parts: Vec<&str> = line[start..].split_whitespace().collect();
        match parts.as_slice() {
            ["SUBMIT", name, ver, kind] => {
                let e = seen.entry(name.to_string()).or_default();
                e.inflight = Some((ver.parse().unwrap(), *kind == "remove"));
            }
            ["ACK", name, ver] => {
                let e = seen.entry(name.to_string()).or_default();
                let ver: u64 = ver.parse().unwrap();
                let inflight = e.inflight.take().unwrap();
                assert_eq!(inflight.0, ver);
                e.acked = Some(inflight);
                acks += 1;
                if acks == acks_before_kill && !killed {
                    child.kill().unwrap(); // SIGKILL
                    killed = true;
                }
            }
            _ => {}
        }
    }
    let status = child.wait().unwrap();
    assert!(killed, "child ended by itself ({status}) after {acks} acks");
    eprintln!("killed the writer after {acks} acknowledged transactions");
    seen
}

fn verify(dir: &Path, seen: &HashMap<String, Seen>) {
    let s = BlockStore::open(dir, &cfg()).unwrap();
    let fsck = s.fsck(true).unwrap();
    assert!(fsck.errors.is_empty(), "{:?}", fsck.errors);
    assert_eq!(fsck.unaccounted_bytes, 0, "{fsck:?}");
    let mut checked = 0;
    let mut unacked_but_committed = 0;
    for (name, st) in seen {
        let k = ObjectKey::new(pg(), name.clone());
        let allowed: Vec<(u64, bool)> = st.acked.into_iter().chain(st.inflight).collect();
        match s.read(&k, 0, None) {
            Ok(v) => {
                let ver = unseal(&v).unwrap_or_else(|e| panic!("{name}: {e}"));
                assert!(
                    allowed.contains(&(ver, false))
                        || (st.acked.is_none() && st.inflight.is_none()),
                    "{name}: version {ver} on disk, acknowledged {:?}, in flight {:?}",
                    st.acked,
                    st.inflight
                );
                if st.inflight == Some((ver, false)) {
                    unacked_but_committed += 1;
                }
                // Data, xattr and omap of one transaction are all there or none.
                let x = s.getxattr(&k, "ver").unwrap().unwrap();
                assert_eq!(
                    u64::from_le_bytes(x[..8].try_into().unwrap()),
                    ver,
                    "{name}"
                );
                let key = format!("v{ver:08}");
                let om = s.omap_get_values(&k, &[key.clone().into()]).unwrap();
                assert_eq!(om.len(), 1, "{name}: omap entry {key} missing");
                checked += 1;
            }
            Err(e) if e.is_not_found() => {
                let ok = allowed.iter().any(|a| a.1) || st.acked.is_none();
                assert!(
                    ok,
                    "{name} is gone, acknowledged {:?}, in flight {:?}",
                    st.acked, st.inflight
                );
            }
            Err(e) => panic!("{name}: {e}"),
        }
    }
    assert!(checked > 0);
    let inflight = seen.values().filter(|s| s.inflight.is_some()).count();
    eprintln!(
        "{checked} objects verified; {inflight} transactions were in flight at the kill, \
         {unacked_but_committed} of them had committed"
    );
    // The store keeps working after recovery.
    let k = ObjectKey::new(pg(), "after-crash");
    s.submit(Transaction::new().write_full(&k, vec![1u8; 100_000]))
        .unwrap();
    assert_eq!(s.read(&k, 0, None).unwrap().len(), 100_000);
}

#[test]
fn kill9_mid_stream_keeps_every_acknowledged_transaction() {
    let dir = tempfile::tempdir().unwrap();
    BlockStore::mkfs(dir.path(), &cfg()).unwrap();
    // Two crashes in a row: the second run starts from a recovered store.
    let mut all: HashMap<String, Seen> = HashMap::new();
    for (round, acks) in [(1u64, 250usize), (2, 180)] {
        let seen = run_child_and_kill(dir.path(), round, acks);
        for (k, v) in seen {
            let e = all.entry(k).or_default();
            if v.acked.is_some() {
                e.acked = v.acked;
            }
            e.inflight = v.inflight;
        }
        verify(dir.path(), &all);
        // Versions from this run are superseded by what is on disk now.
        for e in all.values_mut() {
            e.inflight = None;
        }
        // Re-base acked versions on the recovered state for the next round.
        let s = BlockStore::open(dir.path(), &cfg()).unwrap();
        for (name, e) in all.iter_mut() {
            let k = ObjectKey::new(pg(), name.clone());
            e.acked = match s.read(&k, 0, None) {
                Ok(v) => Some((unseal(&v).unwrap(), false)),
                Err(_) => {
                    let tomb = ObjectKey::new(pg(), format!("{name}-tomb"));
                    let ver = s
                        .getxattr(&tomb, "ver")
                        .ok()
                        .flatten()
                        .map(|v| u64::from_le_bytes(v[..8].try_into().unwrap()))
                        .unwrap_or(0);
                    Some((ver, true))
                }
            };
        }
    }
}
