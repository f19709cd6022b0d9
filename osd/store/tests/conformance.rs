//! The conformance suite against every engine: MemStore, BlockStore on
//! io_uring and BlockStore on the pread pool.

#[macro_use]
mod common;

use common::TempBlock;
use meridian_objectstore::*;
use std::ops::Deref;

/// A block store that runs a deep fsck when the test body succeeded.
struct Checked(TempBlock);

impl Deref for Checked {
    type Target = BlockStore;
    fn deref(&self) -> &BlockStore {
        self.0.s()
    }
}

impl Drop for Checked {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            self.0.check();
            // And everything survives a reopen with a clean allocator.
            self.0.reopen();
            self.0.check();
        }
    }
}

fn block(engine: IoEngine) -> Checked {
    Checked(TempBlock::new(engine, 256 << 20))
}

conformance_tests!(mem, Box::new(MemStore::new()));
conformance_tests!(block_io_uring, block(IoEngine::IoUring));
conformance_tests!(block_pread, block(IoEngine::Pread));
