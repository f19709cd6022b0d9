//! RGW's `ratelimit` (the seed's "Rate Limiting"), word for word: a user
//! limit set on the secondary zone is made on the metadata master and
//! enforced by the gateways of both zones (503 SlowDown past it); a bucket
//! limit likewise; `disable` lifts a limit, `get` shows it; bad input is
//! refused naming what is wrong.

mod common;

use common::TestCluster;
use meridian_bench::s3::S3Client;
use serde_json::Value;
use std::time::{Duration, Instant};

fn cli_json(tc: &TestCluster, args: &[&str]) -> Value {
    tc.cli_json(args)
}

fn s3(tc: &TestCluster, k: &(String, String)) -> S3Client {
    S3Client::new(&tc.s3_endpoint(), &k.0, &k.1, "dev", None).expect("S3 client")
}

/// Polls `ok` every 250 ms until it holds; panics naming `what` after `within`.
fn wait_for(what: &str, within: Duration, mut ok: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !ok() {
        assert!(Instant::now() < deadline, "{what} within {within:?}");
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// PUTs until one is refused; returns how many were accepted and the error.
async fn puts_until_refused(
    c: &S3Client,
    bucket: &str,
    prefix: &str,
    max: usize,
) -> (usize, String) {
    for i in 0..max {
        if let Err(e) = c
            .put(
                bucket,
                &format!("{prefix}{i}"),
                bytes::Bytes::from_static(b"x"),
            )
            .await
        {
            return (i, e.to_string());
        }
    }
    (max, String::new())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn user_and_bucket_rate_limits_answer_slow_down_in_every_zone() {
    let (a, b) = TestCluster::start_zones(2, &[]);
    // `dev up --zones 2` made zone.user, the zones' system user (the seed
    // limits that very user); its S3 requests are limited like anyone's.
    let k = a.user_keys("zone.user");
    let (ca, cb) = (s3(&a, &k), s3(&b, &k));
    ca.ensure_bucket("limited").await.unwrap();
    wait_for(
        "the user and bucket reach zone B",
        Duration::from_secs(60),
        || {
            b.cli(&["user", "info", "--uid=zone.user"]).status.success()
                && b.cli(&["bucket", "stats", "--bucket=limited"])
                    .status
                    .success()
        },
    );

    // The seed's commands, on the secondary zone: made on the master.
    let v = cli_json(
        &b,
        &[
            "ratelimit",
            "set",
            "--ratelimit-scope=user",
            "--uid=zone.user",
            "--max-read-ops=10000",
            "--max-write-ops=5",
            "--enabled=true",
        ],
    );
    assert_eq!(v["user_ratelimit"]["max_write_ops"], 5, "{v}");
    assert_eq!(v["user_ratelimit"]["enabled"], true, "{v}");
    cli_json(
        &b,
        &[
            "ratelimit",
            "enable",
            "--ratelimit-scope=user",
            "--uid=zone.user",
        ],
    );
    let on_master = cli_json(
        &a,
        &[
            "ratelimit",
            "get",
            "--ratelimit-scope=user",
            "--uid=zone.user",
        ],
    );
    assert_eq!(
        on_master["user_ratelimit"]["max_write_ops"], 5,
        "{on_master}"
    );
    assert_eq!(
        on_master["user_ratelimit"]["max_read_ops"], 10000,
        "{on_master}"
    );

    // Five writes a minute per gateway: the sixth is SlowDown, in each zone.
    let (n, err) = puts_until_refused(&ca, "limited", "a", 20).await;
    assert_eq!(n, 5, "zone A admitted {n} writes: {err}");
    assert!(err.contains("503") && err.contains("SlowDown"), "{err}");
    wait_for(
        "zone B's gateway knows the limit",
        Duration::from_secs(60),
        || {
            cli_json(
                &b,
                &[
                    "ratelimit",
                    "get",
                    "--ratelimit-scope=user",
                    "--uid=zone.user",
                ],
            )["user_ratelimit"]["max_write_ops"]
                == 5
        },
    );
    tokio::time::sleep(Duration::from_secs(3)).await; // B's record cache
    let (n, err) = puts_until_refused(&cb, "limited", "b", 20).await;
    assert_eq!(n, 5, "zone B admitted {n} writes: {err}");
    assert!(err.contains("SlowDown"), "{err}");
    // Reads have their own budget.
    ca.get("limited", "a0").await.unwrap();

    // Disabled: writes go through again (the limits are kept).
    cli_json(
        &a,
        &[
            "ratelimit",
            "disable",
            "--ratelimit-scope=user",
            "--uid=zone.user",
        ],
    );
    let (n, _) = puts_until_refused(&ca, "limited", "c", 8).await;
    assert_eq!(n, 8, "writes refused with the user limit disabled");
    let v = cli_json(
        &a,
        &[
            "ratelimit",
            "get",
            "--ratelimit-scope=user",
            "--uid=zone.user",
        ],
    );
    assert_eq!(
        (
            v["user_ratelimit"]["enabled"].clone(),
            v["user_ratelimit"]["max_write_ops"].clone()
        ),
        (Value::Bool(false), Value::from(5)),
        "{v}"
    );

    // A bucket limit holds for every caller of the bucket.
    cli_json(
        &a,
        &[
            "ratelimit",
            "set",
            "--ratelimit-scope=bucket",
            "--bucket=limited",
            "--max-read-ops=3",
            "--enabled=true",
        ],
    );
    let mut refused = None;
    for i in 0..10 {
        if let Err(e) = ca.get("limited", "a0").await {
            refused = Some((i, e.to_string()));
            break;
        }
    }
    let (i, err) = refused.expect("a read past the bucket's limit was refused");
    assert_eq!(i, 3, "{err}");
    assert!(err.contains("SlowDown"), "{err}");

    // Bad input.
    for (args, want) in [
        (
            vec![
                "ratelimit",
                "set",
                "--ratelimit-scope=user",
                "--max-read-ops=1",
            ],
            "needs --uid",
        ),
        (
            vec![
                "ratelimit",
                "get",
                "--ratelimit-scope=bucket",
                "--bucket=no-such-bucket",
            ],
            "no-such-bucket",
        ),
        (
            vec![
                "ratelimit",
                "set",
                "--ratelimit-scope=user",
                "--uid=zone.user",
            ],
            "needs at least one of",
        ),
        (
            vec![
                "ratelimit",
                "get",
                "--ratelimit-scope=realm",
                "--uid=zone.user",
            ],
            "realm",
        ),
        (
            vec![
                "ratelimit",
                "set",
                "--ratelimit-scope=user",
                "--uid=nobody",
                "--max-read-ops=1",
            ],
            "nobody",
        ),
    ] {
        let out = a.cli(&args);
        assert!(!out.status.success(), "{args:?} succeeded");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(want), "{args:?}: {err}");
    }
}
