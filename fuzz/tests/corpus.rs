//! Every fuzz target over its committed corpus and a fixed number of
//! mutations of each entry (bit flips, byte changes, cuts, insertions,
//! splices), with a cap on any single allocation: a panic or an outsized
//! allocation fails the test and names the target and the input.
//!
//! `MERIDIAN_FUZZ_ROUNDS` sets the mutations per corpus entry (default 2000);
//! `MERIDIAN_FUZZ_SECONDS` instead runs each target for that long on
//! stacked mutations of random entries (the long runs in the README);
//! `MERIDIAN_FUZZ_SEED` sets the random seed (default fixed, so runs repeat);
//! `MERIDIAN_FUZZ_TARGETS=a,b` runs only those targets. An input that keeps a
//! target busy for more than [`HANG_SECONDS`] is a hang: the watchdog prints
//! it in hex and aborts the run.

use meridian_fuzz::{TARGETS, Target};
use rand::{Rng as _, SeedableRng as _};
use std::alloc::{GlobalAlloc, Layout, System};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Largest single allocation a target may make on any input (a decoder
/// that trusts a length field from the input would go past it).
const MAX_ALLOCATION: usize = 256 << 20;

struct Capped;

// SAFETY: forwards to the system allocator; only refuses (null) requests
// over the cap, which Rust reports as an allocation failure (abort).
unsafe impl GlobalAlloc for Capped {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if layout.size() > MAX_ALLOCATION {
            eprintln!(
                "allocation of {} bytes refused (cap {MAX_ALLOCATION})",
                layout.size()
            );
            return std::ptr::null_mut();
        }
        // SAFETY: same layout contract as the caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: ptr came from System.alloc with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if new_size > MAX_ALLOCATION {
            eprintln!("reallocation to {new_size} bytes refused (cap {MAX_ALLOCATION})");
            return std::ptr::null_mut();
        }
        // SAFETY: as above.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Capped = Capped;

/// Longest a target may take on one input before the run counts as hung
/// (the slowest honest input takes milliseconds in a debug build).
const HANG_SECONDS: u64 = 10;

/// Inputs started so far, and the one running now (for the watchdog).
static STARTED: AtomicU64 = AtomicU64::new(0);
static RUNNING: Mutex<(&str, Vec<u8>)> = Mutex::new(("", Vec::new()));

/// Runs `t` on `data` under the watchdog; true if it panicked.
fn run_watched(t: &Target, data: &[u8]) -> bool {
    {
        let mut running = RUNNING.lock().unwrap_or_else(|e| e.into_inner());
        running.0 = t.name;
        running.1.clear();
        running.1.extend_from_slice(data);
    }
    STARTED.fetch_add(1, Ordering::Relaxed);
    std::panic::catch_unwind(|| (t.run)(data)).is_err()
}

/// Aborts the process, naming the input, when one input runs too long.
fn start_watchdog() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        std::thread::spawn(|| {
            let mut last = u64::MAX;
            loop {
                std::thread::sleep(Duration::from_secs(HANG_SECONDS));
                let now = STARTED.load(Ordering::Relaxed);
                if now == last && now != 0 {
                    let running = RUNNING.lock().unwrap_or_else(|e| e.into_inner());
                    eprintln!(
                        "{}: hang (over {HANG_SECONDS} s) on a {}-byte input: {}",
                        running.0,
                        running.1.len(),
                        running
                            .1
                            .iter()
                            .map(|x| format!("{x:02x}"))
                            .collect::<String>()
                    );
                    std::process::abort();
                }
                last = now;
            }
        });
    });
}

fn corpus_dir(t: &Target) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("corpus")
        .join(t.name)
}

fn corpus(t: &Target) -> Vec<(String, Vec<u8>)> {
    let dir = corpus_dir(t);
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("corpus of {} ({}): {e}", t.name, dir.display()))
        .map(|e| e.expect("corpus entry").path())
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|p| {
            let name = p
                .file_name()
                .unwrap_or_default()
                .to_string_lossy()
                .into_owned();
            (name, std::fs::read(&p).expect("read corpus file"))
        })
        .collect()
}

/// One mutation of `input`, sometimes spliced with `other`.
fn mutate(rng: &mut rand::rngs::StdRng, input: &[u8], other: &[u8]) -> Vec<u8> {
    let mut v = input.to_vec();
    for _ in 0..rng.gen_range(1..=4) {
        let len = v.len();
        match rng.gen_range(0..6) {
            0 if len > 0 => {
                let i = rng.gen_range(0..len);
                v[i] ^= 1 << rng.gen_range(0..8);
            }
            1 if len > 0 => {
                let i = rng.gen_range(0..len);
                v[i] = [0, 1, 0x7f, 0x80, 0xff][rng.gen_range(0..5)];
            }
            2 if len > 0 => v.truncate(rng.gen_range(0..len)),
            3 => {
                let i = rng.gen_range(0..=len);
                let n = rng.gen_range(1..=16);
                let junk: Vec<u8> = (0..n).map(|_| rng.r#gen()).collect();
                v.splice(i..i, junk);
            }
            4 if !other.is_empty() => {
                let i = rng.gen_range(0..=len);
                let a = rng.gen_range(0..other.len());
                let b = rng.gen_range(a..=other.len());
                v.splice(i..i, other[a..b].iter().copied());
            }
            _ if len >= 4 => {
                // A length-like field set large.
                let i = rng.gen_range(0..len - 3);
                v[i..i + 4].copy_from_slice(&u32::MAX.to_le_bytes());
            }
            _ => v.push(rng.r#gen()),
        }
    }
    v
}

fn hex_prefix(b: &[u8]) -> String {
    b.iter().take(64).map(|x| format!("{x:02x}")).collect()
}

fn run_target(t: &Target) {
    let rounds: usize = std::env::var("MERIDIAN_FUZZ_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2000);
    let seed: u64 = std::env::var("MERIDIAN_FUZZ_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0x6d65_7269_6469_616e);
    let entries = corpus(t);
    assert!(!entries.is_empty(), "{}: empty corpus", t.name);
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let started = std::time::Instant::now();
    let mut runs = 0usize;
    for (i, (name, input)) in entries.iter().enumerate() {
        let check = |what: &str, data: &[u8]| {
            if run_watched(t, data) {
                panic!(
                    "{}: panic on {what} ({} bytes, starting {})",
                    t.name,
                    data.len(),
                    hex_prefix(data)
                );
            }
        };
        check(&format!("corpus file {name}"), input);
        runs += 1;
        let other = &entries[(i + 1) % entries.len()].1;
        for r in 0..rounds {
            let m = mutate(&mut rng, input, other);
            check(&format!("mutation {r} of {name}"), &m);
            runs += 1;
        }
    }
    let seconds: f64 = std::env::var("MERIDIAN_FUZZ_SECONDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0);
    while started.elapsed().as_secs_f64() < seconds {
        let i = rng.gen_range(0..entries.len());
        let j = rng.gen_range(0..entries.len());
        let mut m = entries[i].1.clone();
        for _ in 0..rng.gen_range(1..=4) {
            m = mutate(&mut rng, &m, &entries[j].1);
        }
        if run_watched(t, &m) {
            panic!(
                "{}: panic on a mutation of {} ({} bytes): {}",
                t.name,
                entries[i].0,
                m.len(),
                m.iter().map(|x| format!("{x:02x}")).collect::<String>()
            );
        }
        runs += 1;
    }
    eprintln!(
        "{}: {runs} inputs in {:.2}s",
        t.name,
        started.elapsed().as_secs_f64()
    );
}

#[test]
fn every_target_survives_its_corpus_and_mutations() {
    start_watchdog();
    let only = std::env::var("MERIDIAN_FUZZ_TARGETS").unwrap_or_default();
    let chosen: Vec<&str> = only.split(',').filter(|s| !s.is_empty()).collect();
    for name in &chosen {
        assert!(
            meridian_fuzz::target(name).is_some(),
            "MERIDIAN_FUZZ_TARGETS: no target '{name}'"
        );
    }
    for t in TARGETS {
        if chosen.is_empty() || chosen.contains(&t.name) {
            run_target(t);
        }
    }
}

#[test]
fn every_grpc_request_type_is_a_target() {
    use prost::Message as _;
    let set = prost_types::FileDescriptorSet::decode(meridian_proto::FILE_DESCRIPTOR_SET)
        .expect("descriptor set");
    let mut missing = Vec::new();
    for f in &set.file {
        for s in &f.service {
            for m in &s.method {
                let input = m.input_type().rsplit('.').next().unwrap_or_default();
                let listed = meridian_fuzz::REQUEST_TYPES
                    .iter()
                    .any(|t| t.rsplit('.').next() == Some(input));
                let reflection = f.package().starts_with("grpc.");
                if !listed && !reflection {
                    missing.push(format!("{}.{}: {input}", s.name(), m.name()));
                }
            }
        }
    }
    assert!(
        missing.is_empty(),
        "request types without a fuzz target: {missing:?}"
    );
}
