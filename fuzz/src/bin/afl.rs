//! Coverage-guided fuzzing of one target with AFL++ (cargo-afl):
//!
//! ```text
//! cargo install cargo-afl && cargo afl config --build
//! cargo afl build --release -p meridian-fuzz --features afl --bin afl
//! MERIDIAN_FUZZ_TARGET=crush_binary cargo afl fuzz -i fuzz/corpus/crush_binary \
//!     -o target/afl/crush_binary -V 600 target/release/afl
//! ```
//!
//! Built only with the `afl` feature, so `cargo test` never needs cargo-afl.
//! Crashes land in `-o DIR/default/crashes`; run one again through the
//! corpus test by copying it into `fuzz/corpus/TARGET/regress-NAME`.

fn main() {
    let name = std::env::var("MERIDIAN_FUZZ_TARGET").unwrap_or_default();
    let Some(target) = meridian_fuzz::target(&name) else {
        let names: Vec<&str> = meridian_fuzz::TARGETS.iter().map(|t| t.name).collect();
        eprintln!(
            "set MERIDIAN_FUZZ_TARGET to one of: {} (got '{name}')",
            names.join(", ")
        );
        std::process::exit(2);
    };
    afl::fuzz!(|data: &[u8]| {
        (target.run)(data);
    });
}
