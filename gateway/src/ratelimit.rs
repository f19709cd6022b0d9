//! RGW's `ratelimit`: per-minute limits of a user's and a bucket's read
//! and write requests and bytes. As in RGW, each gateway enforces them on
//! its own (a zone with N gateways admits up to N times the limit: divide
//! by the gateway count when setting them). Each limit is a token bucket
//! holding one minute's worth, refilled continuously; a request that finds
//! a bucket empty gets 503 SlowDown. Bytes sent are charged once a GET has
//! its object, bytes received when a write starts (its Content-Length), so
//! a bytes limit may be overrun by one request, then holds the next ones
//! back until the debt is paid.

use meridian_zone::RateLimit;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Instant;

/// Buckets of one user or bucket.
#[derive(Debug, Clone, Copy)]
struct Tokens {
    at: Instant,
    read_ops: f64,
    write_ops: f64,
    read_bytes: f64,
    write_bytes: f64,
}

impl Tokens {
    fn full(l: &RateLimit, at: Instant) -> Self {
        Self {
            at,
            read_ops: l.max_read_ops as f64,
            write_ops: l.max_write_ops as f64,
            read_bytes: l.max_read_bytes as f64,
            write_bytes: l.max_write_bytes as f64,
        }
    }

    fn refill(&mut self, l: &RateLimit, now: Instant) {
        let minutes = now.saturating_duration_since(self.at).as_secs_f64() / 60.0;
        self.at = now;
        for (t, max) in [
            (&mut self.read_ops, l.max_read_ops),
            (&mut self.write_ops, l.max_write_ops),
            (&mut self.read_bytes, l.max_read_bytes),
            (&mut self.write_bytes, l.max_write_bytes),
        ] {
            *t = (*t + max as f64 * minutes).min(max as f64);
        }
    }
}

/// Entries kept before idle ones are dropped (bounds memory).
const MAX_TRACKED: usize = 100_000;

/// The token buckets of this gateway, by `user:<uid>` / `bucket:<name>`.
#[derive(Debug, Default)]
pub struct RateLimiter {
    tokens: Mutex<HashMap<String, Tokens>>,
}

/// What a request is, for the limits.
#[derive(Debug, Clone, Copy)]
pub enum Request {
    /// GET or HEAD.
    Read,
    /// Anything else, with the bytes it sends.
    Write(u64),
}

impl RateLimiter {
    /// Admits a request under `limit` of `key` and charges it, or names the
    /// limit it is past.
    pub fn admit(&self, key: &str, limit: &RateLimit, req: Request) -> Result<(), &'static str> {
        if !limit.active() {
            return Ok(());
        }
        let now = Instant::now();
        let mut map = self.tokens.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() >= MAX_TRACKED && !map.contains_key(key) {
            // Whoever has been idle a minute is full again anyway.
            map.retain(|_, t| now.saturating_duration_since(t.at).as_secs() < 60);
        }
        let t = map
            .entry(key.to_string())
            .or_insert_with(|| Tokens::full(limit, now));
        t.refill(limit, now);
        match req {
            Request::Read => {
                if limit.max_read_ops > 0 && t.read_ops < 1.0 {
                    return Err("read ops");
                }
                if limit.max_read_bytes > 0 && t.read_bytes <= 0.0 {
                    return Err("read bytes");
                }
                t.read_ops -= 1.0;
            }
            Request::Write(bytes) => {
                if limit.max_write_ops > 0 && t.write_ops < 1.0 {
                    return Err("write ops");
                }
                if limit.max_write_bytes > 0 && t.write_bytes <= 0.0 {
                    return Err("write bytes");
                }
                t.write_ops -= 1.0;
                t.write_bytes -= bytes as f64;
            }
        }
        Ok(())
    }

    /// Charges bytes sent to `key` (after a GET found its object).
    pub fn charge_read(&self, key: &str, limit: &RateLimit, bytes: u64) {
        if !limit.active() || limit.max_read_bytes == 0 {
            return;
        }
        let now = Instant::now();
        let mut map = self.tokens.lock().unwrap_or_else(|p| p.into_inner());
        let t = map
            .entry(key.to_string())
            .or_insert_with(|| Tokens::full(limit, now));
        t.refill(limit, now);
        t.read_bytes -= bytes as f64;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limit() -> RateLimit {
        RateLimit {
            enabled: true,
            max_read_ops: 3,
            max_write_ops: 0,
            max_read_bytes: 0,
            max_write_bytes: 1000,
        }
    }

    #[test]
    fn a_minute_of_ops_then_slow_down() {
        let r = RateLimiter::default();
        for _ in 0..3 {
            r.admit("user:a", &limit(), Request::Read).unwrap();
        }
        assert_eq!(r.admit("user:a", &limit(), Request::Read), Err("read ops"));
        // Another user has its own budget; write ops are unlimited here.
        r.admit("user:b", &limit(), Request::Read).unwrap();
        r.admit("user:a", &limit(), Request::Write(10)).unwrap();
    }

    #[test]
    fn a_bytes_limit_is_overrun_once_then_holds() {
        let r = RateLimiter::default();
        r.admit("bucket:x", &limit(), Request::Write(5000)).unwrap();
        assert_eq!(
            r.admit("bucket:x", &limit(), Request::Write(1)),
            Err("write bytes")
        );
    }

    #[test]
    fn disabled_or_empty_limits_admit_everything() {
        let r = RateLimiter::default();
        let off = RateLimit {
            enabled: false,
            ..limit()
        };
        let none = RateLimit {
            enabled: true,
            ..RateLimit::default()
        };
        for _ in 0..100 {
            r.admit("user:a", &off, Request::Read).unwrap();
            r.admit("user:a", &none, Request::Read).unwrap();
        }
    }
}
