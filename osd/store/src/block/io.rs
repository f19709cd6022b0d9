//! Block-file I/O: 4096-aligned buffers, and two engines behind one batched
//! interface: io_uring on a dedicated thread, or a pread/pwrite thread pool.
//!
//! Any failure of the ring itself is fatal: a failed submit, a completion the
//! current round did not ask for, or a completion that would need a blind
//! retry (EINTR/EAGAIN/ECANCELED, a short transfer). Operations of the failed
//! round may still be in the kernel or queued in the ring, and a later round
//! would take their completions for its own, so the ring is never used again:
//! the store is poisoned and every later operation fails until a reopen
//! builds a new ring.

use super::Poison;
use crate::{IoEngineKind, StoreError, failpoints};
use crossbeam::channel::{self, Receiver, Sender};
use io_uring::{EnterFlags, IoUring, opcode, types};
use std::alloc::{Layout, alloc_zeroed, dealloc};
use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::FileExt;
use std::ptr::NonNull;
use std::sync::{Arc, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Alignment of every buffer and of every offset and length sent to the device.
pub(crate) const ALIGN: usize = 4096;

/// A heap buffer aligned to 4096 bytes whose length is a multiple of 4096,
/// as O_DIRECT requires (this machine does not reject misaligned O_DIRECT,
/// so the type enforces it instead).
pub(crate) struct AlignedBuf {
    ptr: NonNull<u8>,
    len: usize,
}

// SAFETY: AlignedBuf owns its allocation exclusively, like a Box<[u8]>.
unsafe impl Send for AlignedBuf {}
// SAFETY: shared access is read-only through &self.
unsafe impl Sync for AlignedBuf {}

impl AlignedBuf {
    /// A zero-filled buffer of `len` rounded up to a multiple of 4096 (at least 4096).
    pub fn zeroed(len: usize) -> Self {
        let len = len.max(1).div_ceil(ALIGN) * ALIGN;
        let layout = Self::layout(len);
        // SAFETY: layout has non-zero size.
        let ptr = unsafe { alloc_zeroed(layout) };
        let Some(ptr) = NonNull::new(ptr) else {
            std::alloc::handle_alloc_error(layout)
        };
        AlignedBuf { ptr, len }
    }

    fn layout(len: usize) -> Layout {
        // len is a non-zero multiple of ALIGN and ALIGN is a power of two.
        Layout::from_size_align(len, ALIGN).unwrap_or_else(|_| unreachable!("valid layout"))
    }

    /// Length in bytes (a multiple of 4096).
    pub fn len(&self) -> usize {
        self.len
    }

    /// The bytes.
    pub fn as_slice(&self) -> &[u8] {
        // SAFETY: ptr is valid for len initialized (zeroed) bytes while self lives.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }

    /// The bytes, mutably.
    pub fn as_mut_slice(&mut self) -> &mut [u8] {
        // SAFETY: as above, and &mut self guarantees exclusivity.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.len) }
    }
}

impl AsRef<[u8]> for AlignedBuf {
    fn as_ref(&self) -> &[u8] {
        self.as_slice()
    }
}

impl Drop for AlignedBuf {
    fn drop(&mut self) {
        // SAFETY: allocated in `zeroed` with the same layout.
        unsafe { dealloc(self.ptr.as_ptr(), Self::layout(self.len)) }
    }
}

/// One device operation. Offsets and lengths are multiples of 4096.
pub(crate) enum IoOp {
    /// Read `len` bytes at `offset`.
    Read { offset: u64, len: usize },
    /// Write the whole buffer at `offset`.
    Write { offset: u64, buf: AlignedBuf },
}

/// Result of one [`IoOp`].
pub(crate) enum IoDone {
    Read(AlignedBuf),
    Write,
}

struct UringBatch {
    ops: Vec<IoOp>,
    reply: Sender<io::Result<Vec<IoDone>>>,
}

struct PoolJob {
    op: IoOp,
    idx: usize,
    reply: Sender<(usize, io::Result<IoDone>)>,
}

enum Backend {
    Uring {
        tx: Sender<UringBatch>,
        /// Why the ring failed; once set, no operation reaches it again.
        dead: Arc<OnceLock<String>>,
    },
    Pool(Sender<PoolJob>),
}

/// The running I/O engine. Dropping it stops and joins its threads.
pub(crate) struct Io {
    backend: Option<Backend>,
    threads: Vec<JoinHandle<()>>,
    kind: IoEngineKind,
}

/// How the engine should be chosen.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Want {
    Auto,
    Uring,
    Pread,
}

impl Io {
    /// Starts the engine; `setup` creates the ring (injectable for tests).
    /// A ring failure poisons `poison`.
    pub fn start(
        file: Arc<File>,
        want: Want,
        ring_entries: u32,
        pool_threads: usize,
        poison: Poison,
        setup: impl FnOnce(u32) -> io::Result<IoUring>,
    ) -> Result<Io, StoreError> {
        let ring = match want {
            Want::Pread => {
                tracing::info!(
                    engine = "pread",
                    "block store I/O uses the pread/pwrite thread pool (configured)"
                );
                None
            }
            Want::Uring => Some(setup(ring_entries).and_then(probe).map_err(|e| {
                StoreError::io(
                    "set up io_uring (engine = \"io_uring\" is configured; use \"auto\" or \
                     \"pread\" where io_uring is not allowed)",
                    e,
                )
            })?),
            Want::Auto => match setup(ring_entries).and_then(probe) {
                Ok(r) => Some(r),
                Err(e) => {
                    tracing::warn!(
                        error = %e,
                        engine = "pread",
                        "io_uring is not available (seccomp profile or old kernel?); the block \
                         store falls back to a pread/pwrite thread pool"
                    );
                    None
                }
            },
        };
        match ring {
            Some(ring) => {
                let (tx, rx) = channel::bounded::<UringBatch>(1024);
                let dead = Arc::new(OnceLock::new());
                let thread = UringThread {
                    file,
                    rx,
                    batch_ops: ring_entries as usize * 8,
                    dead: dead.clone(),
                    poison,
                };
                let t = std::thread::Builder::new()
                    .name("store-uring".into())
                    .spawn(move || thread.run(ring))
                    .map_err(|e| StoreError::io("spawn the io_uring thread", e))?;
                Ok(Io {
                    backend: Some(Backend::Uring { tx, dead }),
                    threads: vec![t],
                    kind: IoEngineKind::IoUring,
                })
            }
            None => {
                let (tx, rx) = channel::bounded::<PoolJob>(1024);
                let mut threads = Vec::new();
                for i in 0..pool_threads.max(1) {
                    let rx = rx.clone();
                    let file = file.clone();
                    let t = std::thread::Builder::new()
                        .name(format!("store-pio-{i}"))
                        .spawn(move || pool_loop(&file, rx))
                        .map_err(|e| StoreError::io("spawn a pread thread", e))?;
                    threads.push(t);
                }
                Ok(Io {
                    backend: Some(Backend::Pool(tx)),
                    threads,
                    kind: IoEngineKind::Pread,
                })
            }
        }
    }

    /// Which engine runs.
    pub fn kind(&self) -> IoEngineKind {
        self.kind
    }

    /// Runs all ops (as one batched submission on io_uring) and waits for all.
    /// Results are in op order; any failed op fails the call.
    pub fn run(&self, ops: Vec<IoOp>) -> io::Result<Vec<IoDone>> {
        if ops.is_empty() {
            return Ok(Vec::new());
        }
        let closed = || io::Error::other("the I/O engine has stopped");
        match self.backend.as_ref().ok_or_else(closed)? {
            Backend::Uring { tx, dead } => {
                if let Some(reason) = dead.get() {
                    return Err(ring_dead(reason));
                }
                let (rtx, rrx) = channel::bounded(1);
                tx.send(UringBatch { ops, reply: rtx })
                    .map_err(|_| closed())?;
                rrx.recv().map_err(|_| closed())?
            }
            Backend::Pool(tx) => {
                let n = ops.len();
                let (rtx, rrx) = channel::bounded(n);
                for (idx, op) in ops.into_iter().enumerate() {
                    tx.send(PoolJob {
                        op,
                        idx,
                        reply: rtx.clone(),
                    })
                    .map_err(|_| closed())?;
                }
                drop(rtx);
                let mut out: Vec<Option<IoDone>> = (0..n).map(|_| None).collect();
                let mut first_err = None;
                for _ in 0..n {
                    let (idx, res) = rrx.recv().map_err(|_| closed())?;
                    match res {
                        Ok(d) => out[idx] = Some(d),
                        Err(e) => {
                            first_err.get_or_insert(e);
                        }
                    }
                }
                if let Some(e) = first_err {
                    return Err(e);
                }
                out.into_iter()
                    .map(|d| d.ok_or_else(|| io::Error::other("lost I/O result")))
                    .collect()
            }
        }
    }
}

impl Drop for Io {
    fn drop(&mut self) {
        self.backend = None;
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

/// Checks the ring really works (a seccomp profile may allow setup but not enter).
fn probe(mut ring: IoUring) -> io::Result<IoUring> {
    let nop = opcode::Nop::new().build().user_data(u64::MAX);
    // SAFETY: a NOP references no memory.
    unsafe {
        ring.submission()
            .push(&nop)
            .map_err(|_| io::Error::other("io_uring submission queue is full"))?;
    }
    ring.submit_and_wait(1)?;
    let cqe = ring
        .completion()
        .next()
        .ok_or_else(|| io::Error::other("io_uring returned no completion for a NOP"))?;
    if cqe.result() < 0 {
        return Err(io::Error::from_raw_os_error(-cqe.result()));
    }
    Ok(ring)
}

/// The error every operation gets once the ring has failed.
fn ring_dead(reason: &str) -> io::Error {
    io::Error::other(format!("{reason}; no I/O goes through this ring any more"))
}

/// Most consecutive transient submit errors (EINTR, EAGAIN, EBUSY) or
/// submits that took nothing, before the ring is declared broken.
const MAX_SUBMIT_STALLS: u32 = 1000;
/// Longest wait for the operations a failed ring still holds.
const DRAIN_LIMIT: Duration = Duration::from_secs(30);

/// `user_data` of an operation: the round in the high half, the slot in the
/// low half (a round holds far fewer than 2^32 operations), so a completion
/// left over from another round is never taken for one of this round's.
fn tag(round: u32, slot: usize) -> u64 {
    (u64::from(round) << 32) | slot as u64
}

/// The slot a completion belongs to, if it belongs to `round`.
fn untag(user_data: u64, round: u32) -> Option<usize> {
    (user_data >> 32 == u64::from(round)).then_some((user_data & 0xffff_ffff) as usize)
}

struct Slot {
    batch: usize,
    write: bool,
    offset: u64,
    buf: AlignedBuf,
    len: usize,
    /// Handed to the ring and not completed yet.
    in_flight: bool,
    err: Option<io::Error>,
}

/// A ring failure: what happened, and how many operations the kernel may
/// still be running.
struct RingFailure {
    reason: String,
    in_kernel: usize,
}

/// The io_uring thread: runs queued batches, one ring round at a time.
struct UringThread {
    file: Arc<File>,
    rx: Receiver<UringBatch>,
    /// Most operations gathered into one round.
    batch_ops: usize,
    dead: Arc<OnceLock<String>>,
    poison: Poison,
}

impl UringThread {
    fn run(self, ring: IoUring) {
        let fd = types::Fd(self.file.as_raw_fd());
        let mut ring = Some(ring);
        // Round numbers tag user_data; u32::MAX is left to the setup probe.
        let mut round: u32 = 0;
        while let Ok(first) = self.rx.recv() {
            // Take every batch queued right now: one submission for all of them.
            let mut batches = vec![first];
            let mut nops = batches[0].ops.len();
            while nops < self.batch_ops {
                match self.rx.try_recv() {
                    Ok(b) => {
                        nops += b.ops.len();
                        batches.push(b);
                    }
                    Err(_) => break,
                }
            }
            let Some(r) = ring.as_mut() else {
                let reason = self.dead.get().map_or("io_uring failed", String::as_str);
                for b in batches {
                    let _ = b.reply.send(Err(ring_dead(reason)));
                }
                continue;
            };
            let mut slots = Vec::with_capacity(nops);
            let mut replies = Vec::with_capacity(batches.len());
            for (bi, b) in batches.into_iter().enumerate() {
                for op in b.ops {
                    let (write, offset, buf) = match op {
                        IoOp::Read { offset, len } => (false, offset, AlignedBuf::zeroed(len)),
                        IoOp::Write { offset, buf } => (true, offset, buf),
                    };
                    slots.push(Slot {
                        batch: bi,
                        write,
                        offset,
                        len: buf.len(),
                        buf,
                        in_flight: false,
                        err: None,
                    });
                }
                replies.push(b.reply);
            }
            round = if round >= u32::MAX - 1 { 1 } else { round + 1 };
            if let Err(f) = drive_ring(r, fd, round, &mut slots) {
                let reason = format!("io_uring failed: {}", f.reason);
                // Dead before anyone hears of it: a caller that retries at
                // once must not reach the ring again.
                let _ = self.dead.set(reason.clone());
                self.poison.set(reason.clone());
                for reply in replies {
                    let _ = reply.send(Err(ring_dead(&reason)));
                }
                // The kernel may still own buffers of this round: never free them.
                std::mem::forget(slots);
                // Let the ring go only once the kernel is done with it, so no
                // write of this round lands after the store is reopened.
                let left = drain(r, f.in_kernel);
                if left > 0 {
                    tracing::error!(
                        operations = left,
                        "io_uring operations still unfinished when the failed ring was closed"
                    );
                }
                ring = None;
                continue;
            }
            let mut results: Vec<io::Result<Vec<IoDone>>> =
                (0..replies.len()).map(|_| Ok(Vec::new())).collect();
            for s in slots {
                let r = &mut results[s.batch];
                if let Some(e) = s.err {
                    if r.is_ok() {
                        *r = Err(e);
                    }
                    continue;
                }
                if let Ok(v) = r {
                    v.push(if s.write {
                        IoDone::Write
                    } else {
                        IoDone::Read(s.buf)
                    });
                }
            }
            for (reply, res) in replies.into_iter().zip(results) {
                let _ = reply.send(res);
            }
        }
    }
}

/// Submits every slot once and waits until all have completed. An operation
/// that fails on the device sets its slot's `err`; anything that makes the
/// ring itself untrustworthy is returned as a [`RingFailure`].
fn drive_ring(
    ring: &mut IoUring,
    fd: types::Fd,
    round: u32,
    slots: &mut [Slot],
) -> Result<(), RingFailure> {
    // Never more in flight than the completion queue holds, so no completion
    // can be dropped, whatever the kernel's overflow handling.
    let max_in_flight = (ring.params().cq_entries() as usize).max(1);
    let mut next = 0usize;
    let mut in_flight = 0usize;
    let mut stalls = 0u32;
    let fail = |ring: &mut IoUring, in_flight: usize, reason: String| RingFailure {
        // Entries still in the submission queue never reached the kernel.
        in_kernel: in_flight.saturating_sub(ring.submission().len()),
        reason,
    };
    loop {
        {
            let mut sq = ring.submission();
            while next < slots.len() && in_flight < max_in_flight && !sq.is_full() {
                let s = &mut slots[next];
                let len = s.len as u32;
                let entry = if s.write {
                    opcode::Write::new(fd, s.buf.as_slice().as_ptr(), len)
                        .offset(s.offset)
                        .build()
                } else {
                    opcode::Read::new(fd, s.buf.as_mut_slice().as_mut_ptr(), len)
                        .offset(s.offset)
                        .build()
                };
                // SAFETY: the buffer lives in `slots`, which outlives the
                // operation: we return Ok only once every pushed entry has
                // completed, and on a ring failure the caller leaks the slots.
                if unsafe { sq.push(&entry.user_data(tag(round, next))) }.is_err() {
                    break;
                }
                s.in_flight = true;
                next += 1;
                in_flight += 1;
            }
        }
        if in_flight == 0 {
            return Ok(());
        }
        let queued = ring.submission().len();
        match ring_submit(ring, 1) {
            Ok(n) if n == 0 && queued > 0 => {
                stalls += 1;
                if stalls > MAX_SUBMIT_STALLS {
                    let reason = format!("the kernel took none of {queued} queued operations");
                    return Err(fail(ring, in_flight, reason));
                }
            }
            Ok(_) => stalls = 0,
            // Nothing was consumed from the submission queue: retrying submits
            // the same entries (EBUSY: reap completions first, below).
            Err(e)
                if matches!(
                    e.raw_os_error(),
                    Some(libc::EINTR | libc::EAGAIN | libc::EBUSY)
                ) =>
            {
                stalls += 1;
                if stalls > MAX_SUBMIT_STALLS {
                    let reason = format!("io_uring_enter kept failing: {e}");
                    return Err(fail(ring, in_flight, reason));
                }
                if e.raw_os_error() != Some(libc::EINTR) {
                    std::thread::sleep(Duration::from_micros(100));
                }
            }
            Err(e) => return Err(fail(ring, in_flight, format!("io_uring_enter: {e}"))),
        }
        let mut bad = None;
        for cqe in ring.completion() {
            let ud = cqe.user_data();
            let Some(s) = untag(ud, round)
                .and_then(|i| slots.get_mut(i))
                .filter(|s| s.in_flight)
            else {
                bad = Some(format!(
                    "a completion this round never asked for (user_data {ud:#x})"
                ));
                break;
            };
            s.in_flight = false;
            in_flight -= 1;
            let res = cqe.result();
            let what = if s.write { "write" } else { "read" };
            if res < 0 {
                let errno = -res;
                if matches!(errno, libc::EINTR | libc::EAGAIN | libc::ECANCELED) {
                    // The ring did not run it; a resubmission would be blind.
                    bad = Some(format!(
                        "{what} of {} bytes at block offset {} was not performed: {}",
                        s.len,
                        s.offset,
                        io::Error::from_raw_os_error(errno)
                    ));
                    break;
                }
                s.err = Some(io::Error::from_raw_os_error(errno));
            } else if res as usize != s.len {
                // The block file is preallocated and every transfer aligned:
                // a short one means the device or file changed under us.
                bad = Some(format!(
                    "short {what}: {res} of {} bytes at block offset {}",
                    s.len, s.offset
                ));
                break;
            }
        }
        if let Some(reason) = bad {
            return Err(fail(ring, in_flight, reason));
        }
    }
}

/// After a ring failure: waits (at most [`DRAIN_LIMIT`]) for the `outstanding`
/// operations the kernel still holds, without submitting the entries left in
/// the submission queue. Returns how many did not complete.
fn drain(ring: &mut IoUring, mut outstanding: usize) -> usize {
    let deadline = Instant::now() + DRAIN_LIMIT;
    let timed = ring.params().is_feature_ext_arg();
    loop {
        outstanding = outstanding.saturating_sub(ring.completion().count());
        if outstanding == 0 || Instant::now() >= deadline {
            return outstanding;
        }
        let ts = types::Timespec::new().nsec(100_000_000);
        let args = types::SubmitArgs::new().timespec(&ts);
        let submitter = ring.submitter();
        // SAFETY: to_submit = 0, so nothing queued (entries of the failed
        // round) is handed to the kernel; `args` is the extended argument
        // that EXT_ARG announces.
        let res = unsafe {
            if timed {
                let flags = EnterFlags::GETEVENTS | EnterFlags::EXT_ARG;
                submitter.enter(0, 1, flags.bits(), Some(&args))
            } else {
                submitter.enter::<libc::sigset_t>(0, 1, EnterFlags::GETEVENTS.bits(), None)
            }
        };
        match res {
            Ok(_) => {}
            Err(e) if matches!(e.raw_os_error(), Some(libc::ETIME | libc::EINTR)) => {}
            Err(e) => {
                tracing::error!(error = %e, "cannot wait for the operations of a failed io_uring");
                return outstanding;
            }
        }
    }
}

/// `submit_and_wait`, behind the `store::ring_submit` failpoint.
fn ring_submit(ring: &IoUring, want: usize) -> io::Result<usize> {
    fail::fail_point!(failpoints::RING_SUBMIT, |arg| Err(failpoints::injected(
        failpoints::RING_SUBMIT,
        arg
    )));
    ring.submit_and_wait(want)
}

fn pool_loop(file: &File, rx: Receiver<PoolJob>) {
    while let Ok(job) = rx.recv() {
        let res = match job.op {
            IoOp::Read { offset, len } => {
                let mut buf = AlignedBuf::zeroed(len);
                file.read_exact_at(buf.as_mut_slice(), offset)
                    .map(|_| IoDone::Read(buf))
            }
            IoOp::Write { offset, buf } => file
                .write_all_at(buf.as_slice(), offset)
                .map(|_| IoDone::Write),
        };
        let _ = job.reply.send((job.idx, res));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_file(len: u64) -> (tempfile::TempDir, Arc<File>) {
        let dir = tempfile::tempdir().unwrap();
        let f = File::options()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(dir.path().join("f"))
            .unwrap();
        f.set_len(len).unwrap();
        (dir, Arc::new(f))
    }

    fn roundtrip(io: &Io) {
        let mut ops = Vec::new();
        for i in 0..600u64 {
            let mut b = AlignedBuf::zeroed(8192);
            b.as_mut_slice().fill((i % 251) as u8);
            ops.push(IoOp::Write {
                offset: i * 8192,
                buf: b,
            });
        }
        assert_eq!(io.run(ops).unwrap().len(), 600);
        let ops = (0..600u64)
            .map(|i| IoOp::Read {
                offset: i * 8192,
                len: 8192,
            })
            .collect();
        for (i, d) in io.run(ops).unwrap().into_iter().enumerate() {
            let IoDone::Read(b) = d else { panic!() };
            assert!(b.as_slice().iter().all(|&x| x == (i % 251) as u8));
        }
        // Reading past the end is an error, not garbage.
        let r = io.run(vec![IoOp::Read {
            offset: 600 * 8192,
            len: 4096,
        }]);
        assert!(r.is_err());
    }

    #[test]
    fn aligned_buf_is_aligned() {
        let b = AlignedBuf::zeroed(5000);
        assert_eq!(b.len(), 8192);
        assert_eq!(b.as_slice().as_ptr() as usize % ALIGN, 0);
        assert!(b.as_slice().iter().all(|&x| x == 0));
    }

    #[test]
    fn pread_engine_roundtrip() {
        let (_d, f) = temp_file(600 * 8192);
        let io = Io::start(f, Want::Pread, 64, 3, Poison::default(), IoUring::new).unwrap();
        assert_eq!(io.kind(), IoEngineKind::Pread);
        roundtrip(&io);
    }

    #[test]
    fn uring_engine_roundtrip_with_small_ring() {
        let (_d, f) = temp_file(600 * 8192);
        // A 16-entry ring forces many waves of submissions for 600 ops.
        let io = match Io::start(f, Want::Uring, 16, 1, Poison::default(), IoUring::new) {
            Ok(io) => io,
            Err(e) => {
                no_uring(&e);
                return;
            }
        };
        assert_eq!(io.kind(), IoEngineKind::IoUring);
        roundtrip(&io);
    }

    /// io_uring where the machine has it; without it these tests fail,
    /// unless MERIDIAN_STORE_ALLOW_NO_URING says this machine cannot run
    /// them (then they say so and do nothing), as the store suite does.
    fn no_uring(e: &dyn std::fmt::Display) {
        assert!(
            std::env::var_os("MERIDIAN_STORE_ALLOW_NO_URING").is_some(),
            "io_uring unavailable ({e}); set MERIDIAN_STORE_ALLOW_NO_URING=1 on a machine without it"
        );
        eprintln!("io_uring unavailable ({e}); MERIDIAN_STORE_ALLOW_NO_URING is set: not run");
    }

    fn ring_or_skip(entries: u32) -> Option<IoUring> {
        match IoUring::new(entries) {
            Ok(r) => Some(r),
            Err(e) => {
                no_uring(&e);
                None
            }
        }
    }

    #[test]
    fn completion_of_another_round_is_a_ring_failure() {
        let (_d, f) = temp_file(8192);
        let Some(mut ring) = ring_or_skip(8) else {
            return;
        };
        // A completion left over from round 7, with slot index 0.
        let nop = opcode::Nop::new().build().user_data(tag(7, 0));
        // SAFETY: a NOP references no memory.
        unsafe { ring.submission().push(&nop).unwrap() };
        ring.submit_and_wait(1).unwrap();
        let mut slots = vec![Slot {
            batch: 0,
            write: false,
            offset: 0,
            buf: AlignedBuf::zeroed(4096),
            len: 4096,
            in_flight: false,
            err: None,
        }];
        let fd = types::Fd(f.as_raw_fd());
        let Err(fail) = drive_ring(&mut ring, fd, 8, &mut slots) else {
            panic!("round 8 took round 7's completion for its own");
        };
        assert!(fail.reason.contains("never asked for"), "{}", fail.reason);
        // Round 8's read may still be running: the caller drains it.
        assert!(fail.in_kernel <= 1);
        assert_eq!(drain(&mut ring, fail.in_kernel), 0);
    }

    #[test]
    fn short_transfer_kills_the_ring_and_poisons() {
        let (_d, f) = temp_file(8192);
        let poison = Poison::default();
        let io = match Io::start(f, Want::Uring, 8, 1, poison.clone(), IoUring::new) {
            Ok(io) => io,
            Err(e) => {
                no_uring(&e);
                return;
            }
        };
        // 8 KiB asked, 4 KiB left before the end of the file.
        let e = io
            .run(vec![IoOp::Read {
                offset: 4096,
                len: 8192,
            }])
            .err()
            .expect("a short read is an error");
        assert!(e.to_string().contains("short read"), "{e}");
        assert!(poison.get().is_some_and(|r| r.contains("short read")));
        // A valid write no longer goes through.
        let e = io
            .run(vec![IoOp::Write {
                offset: 0,
                buf: AlignedBuf::zeroed(4096),
            }])
            .err()
            .expect("the ring is dead");
        assert!(e.to_string().contains("no I/O goes through"), "{e}");
    }

    #[test]
    fn tags_carry_round_and_slot() {
        assert_eq!(untag(tag(5, 17), 5), Some(17));
        assert_eq!(untag(tag(5, 17), 6), None);
        assert_eq!(untag(u64::MAX, 5), None);
    }

    #[test]
    fn auto_falls_back_when_setup_is_denied() {
        let (_d, f) = temp_file(600 * 8192);
        let denied = |_| Err(io::Error::from_raw_os_error(libc::EPERM));
        let io = Io::start(f.clone(), Want::Auto, 64, 2, Poison::default(), denied).unwrap();
        assert_eq!(io.kind(), IoEngineKind::Pread);
        roundtrip(&io);
        assert!(Io::start(f, Want::Uring, 64, 2, Poison::default(), denied).is_err());
    }
}
