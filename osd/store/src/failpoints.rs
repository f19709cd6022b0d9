//! Named failpoints (the `fail` crate) for fault-injection tests of the store
//! and of the OSD above it.
//!
//! | name | where | effect when it fires |
//! | --- | --- | --- |
//! | `store::ring_submit` | each `io_uring_enter` of a batch (io_uring engine only) | the submit fails; the ring is no longer trusted and the store is poisoned |
//! | `store::data_sync` | the `fdatasync` of the block file in a group commit that wrote data | the sync fails; the store is poisoned |
//! | `store::kv_commit` | the durable metadata commit of a group, before anything of it is written | the commit fails; the store is poisoned |
//!
//! A point fires with the action `return` (the call fails with EIO) or
//! `return(N)` (errno `N`, e.g. `return(28)` for ENOSPC). The other actions of
//! [`fail::cfg`] work as documented there: `off`, `sleep(ms)`, `pause`,
//! `panic`, a count `N*` or a probability `P%` in front, and chains with `->`:
//! `2*off->return` lets two calls pass and fails every later one.
//!
//! Arming:
//! - in a process: `FAILPOINTS="store::data_sync=return;store::kv_commit=1*off->return"`,
//!   read by [`configure_from_env`], which every OSD calls at startup;
//! - in tests: `let _s = fail::FailScenario::setup();` (serializes the tests
//!   that use it and clears every point when dropped), then
//!   `fail::cfg("store::data_sync", "return")`.
//!
//! Points are process-wide: every store open in the process sees them.
//!
//! Cost when nothing is armed: evaluating a point takes a read lock on the
//! `fail` registry and finds the registry empty (tens of nanoseconds). Each
//! point runs once per group commit or per ring submission, next to an
//! `fdatasync` or a system call, never per byte.

use crate::StoreError;

/// The io_uring submit (`io_uring_enter`) of a batch fails.
pub const RING_SUBMIT: &str = "store::ring_submit";
/// The `fdatasync` of the block file fails.
pub const DATA_SYNC: &str = "store::data_sync";
/// The durable metadata commit of a group fails (nothing of it is written).
pub const KV_COMMIT: &str = "store::kv_commit";
/// Every failpoint of the store.
pub const ALL: [&str; 3] = [RING_SUBMIT, DATA_SYNC, KV_COMMIT];

/// Arms the failpoints listed in the `FAILPOINTS` environment variable
/// (`name=actions;...`); returns the names armed (none if it is unset).
pub fn configure_from_env() -> Result<Vec<String>, StoreError> {
    meridian_common::failpoints::configure_from_env().map_err(StoreError::InvalidArgument)
}

/// Arms failpoints from a `name=actions;...` list (the `FAILPOINTS` syntax);
/// returns the names armed. On a malformed entry nothing stays armed.
pub fn configure(spec: &str) -> Result<Vec<String>, StoreError> {
    meridian_common::failpoints::configure(spec).map_err(StoreError::InvalidArgument)
}

/// The error a fired failpoint injects: errno from `return(N)`, else EIO.
pub(crate) fn injected(name: &str, arg: Option<String>) -> std::io::Error {
    let errno = arg
        .as_deref()
        .and_then(|a| a.trim().parse::<i32>().ok())
        .filter(|e| *e > 0)
        .unwrap_or(libc::EIO);
    tracing::warn!(failpoint = name, errno, "failpoint fired");
    std::io::Error::from_raw_os_error(errno)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn injected_error_takes_the_errno_argument() {
        assert_eq!(
            injected(DATA_SYNC, Some("28".into())).raw_os_error(),
            Some(libc::ENOSPC)
        );
        assert_eq!(injected(DATA_SYNC, None).raw_os_error(), Some(libc::EIO));
        assert_eq!(
            injected(DATA_SYNC, Some("junk".into())).raw_os_error(),
            Some(libc::EIO)
        );
    }

    #[test]
    fn malformed_spec_arms_nothing() {
        // Names no store code evaluates, so parallel tests are unaffected.
        let e = configure("test::fp_a=return;test::fp_b").unwrap_err();
        assert!(matches!(e, StoreError::InvalidArgument(_)), "{e}");
        assert!(fail::list().iter().all(|(n, _)| n != "test::fp_a"));
        let e = configure("test::fp_c=bogus(").unwrap_err();
        assert!(matches!(e, StoreError::InvalidArgument(_)), "{e}");
        assert_eq!(
            configure(" test::fp_d=return ; ;test::fp_e=off").unwrap(),
            vec!["test::fp_d".to_string(), "test::fp_e".to_string()]
        );
        fail::remove("test::fp_d");
        fail::remove("test::fp_e");
    }
}
