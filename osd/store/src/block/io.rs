//! Block-file I/O: 4096-aligned buffers, and two engines behind one batched
//! interface: io_uring on a dedicated thread, or a pread/pwrite thread pool.

use crate::{IoEngineKind, StoreError, failpoints};
use crossbeam::channel::{self, Receiver, Sender};
use io_uring::{IoUring, opcode, types};
use std::alloc::{Layout, alloc_zeroed, dealloc};
use std::collections::VecDeque;
use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::FileExt;
use std::ptr::NonNull;
use std::sync::Arc;
use std::thread::JoinHandle;

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
    Uring(Sender<UringBatch>),
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
    pub fn start(
        file: Arc<File>,
        want: Want,
        ring_entries: u32,
        pool_threads: usize,
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
                let entries = ring_entries as usize;
                let t = std::thread::Builder::new()
                    .name("store-uring".into())
                    .spawn(move || uring_loop(ring, file, rx, entries))
                    .map_err(|e| StoreError::io("spawn the io_uring thread", e))?;
                Ok(Io {
                    backend: Some(Backend::Uring(tx)),
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
            Backend::Uring(tx) => {
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

struct Slot {
    batch: usize,
    write: bool,
    offset: u64,
    buf: AlignedBuf,
    len: usize,
    done: usize,
    err: Option<io::Error>,
}

fn uring_loop(mut ring: IoUring, file: Arc<File>, rx: Receiver<UringBatch>, entries: usize) {
    let fd = types::Fd(file.as_raw_fd());
    while let Ok(first) = rx.recv() {
        // Take every batch queued right now: one submission for all of them.
        let mut batches = vec![first];
        let mut nops = batches[0].ops.len();
        while nops < entries * 8 {
            match rx.try_recv() {
                Ok(b) => {
                    nops += b.ops.len();
                    batches.push(b);
                }
                Err(_) => break,
            }
        }
        let mut slots = Vec::with_capacity(nops);
        let mut replies = Vec::with_capacity(batches.len());
        for (bi, b) in batches.into_iter().enumerate() {
            for op in b.ops {
                slots.push(match op {
                    IoOp::Read { offset, len } => Slot {
                        batch: bi,
                        write: false,
                        offset,
                        buf: AlignedBuf::zeroed(len),
                        len,
                        done: 0,
                        err: None,
                    },
                    IoOp::Write { offset, buf } => Slot {
                        batch: bi,
                        write: true,
                        offset,
                        len: buf.len(),
                        buf,
                        done: 0,
                        err: None,
                    },
                });
            }
            replies.push(b.reply);
        }
        let ok = drive_ring(&mut ring, fd, &mut slots);
        if !ok {
            // The kernel may still own in-flight buffers: never free them.
            let err = || io::Error::other("io_uring submission failed; buffers leaked");
            for r in replies {
                let _ = r.send(Err(err()));
            }
            std::mem::forget(slots);
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

/// Submits every slot (re-submitting short transfers) until all complete.
/// Returns false if the ring itself failed with operations in flight.
fn drive_ring(ring: &mut IoUring, fd: types::Fd, slots: &mut [Slot]) -> bool {
    let mut queue: VecDeque<usize> = (0..slots.len()).collect();
    let mut inflight = 0usize;
    let mut failures = 0;
    loop {
        {
            let mut sq = ring.submission();
            while let Some(&i) = queue.front() {
                if sq.is_full() {
                    break;
                }
                let s = &mut slots[i];
                let remaining = (s.len - s.done) as u32;
                let off = s.offset + s.done as u64;
                let entry = if s.write {
                    // SAFETY: in bounds of the slot's buffer.
                    let p = unsafe { s.buf.as_slice().as_ptr().add(s.done) };
                    opcode::Write::new(fd, p, remaining).offset(off).build()
                } else {
                    // SAFETY: in bounds of the slot's buffer.
                    let p = unsafe { s.buf.as_mut_slice().as_mut_ptr().add(s.done) };
                    opcode::Read::new(fd, p, remaining).offset(off).build()
                };
                // SAFETY: the buffer lives in `slots`, which outlives the operation:
                // we do not return before every submitted entry has completed (or,
                // on ring failure, the caller leaks the slots).
                if unsafe { sq.push(&entry.user_data(i as u64)) }.is_err() {
                    break;
                }
                queue.pop_front();
                inflight += 1;
            }
        }
        if inflight == 0 {
            return true;
        }
        match ring_submit(ring, 1) {
            Ok(_) => failures = 0,
            Err(e)
                if matches!(
                    e.raw_os_error(),
                    Some(libc::EINTR | libc::EAGAIN | libc::EBUSY)
                ) =>
            {
                failures += 1;
                if failures > 1000 {
                    return false;
                }
                if e.raw_os_error() != Some(libc::EINTR) {
                    std::thread::sleep(std::time::Duration::from_micros(100));
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "io_uring_enter failed");
                return false;
            }
        }
        for cqe in ring.completion() {
            let i = cqe.user_data() as usize;
            let Some(s) = slots.get_mut(i) else { continue };
            inflight -= 1;
            let res = cqe.result();
            if res < 0 {
                if matches!(-res, libc::EINTR | libc::EAGAIN) {
                    queue.push_back(i);
                } else {
                    s.err = Some(io::Error::from_raw_os_error(-res));
                }
            } else if res == 0 {
                s.err = Some(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!(
                        "zero-length transfer at block offset {}",
                        s.offset + s.done as u64
                    ),
                ));
            } else {
                s.done += res as usize;
                if s.done < s.len {
                    queue.push_back(i);
                }
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
        let io = Io::start(f, Want::Pread, 64, 3, IoUring::new).unwrap();
        assert_eq!(io.kind(), IoEngineKind::Pread);
        roundtrip(&io);
    }

    #[test]
    fn uring_engine_roundtrip_with_small_ring() {
        let (_d, f) = temp_file(600 * 8192);
        // A 16-entry ring forces many waves of submissions for 600 ops.
        let io = match Io::start(f, Want::Uring, 16, 1, IoUring::new) {
            Ok(io) => io,
            Err(e) => {
                eprintln!("io_uring unavailable here, skipping: {e}");
                return;
            }
        };
        assert_eq!(io.kind(), IoEngineKind::IoUring);
        roundtrip(&io);
    }

    #[test]
    fn auto_falls_back_when_setup_is_denied() {
        let (_d, f) = temp_file(600 * 8192);
        let denied = |_| Err(io::Error::from_raw_os_error(libc::EPERM));
        let io = Io::start(f.clone(), Want::Auto, 64, 2, denied).unwrap();
        assert_eq!(io.kind(), IoEngineKind::Pread);
        roundtrip(&io);
        assert!(Io::start(f, Want::Uring, 64, 2, denied).is_err());
    }
}
