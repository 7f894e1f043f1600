//! Throughput of the streaming CSV check on a file, in 256 KB chunks (as downloads arrive).
//! Run: `cargo run --release --example csv_check_speed FILE`
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a test or measuring program: a failure may panic
use std::time::Instant;

fn main() {
    let path = std::env::args()
        .nth(1)
        .expect("usage: csv_check_speed FILE");
    let data = std::fs::read(&path).unwrap();
    for _ in 0..3 {
        let t = Instant::now();
        let mut c = opsdeck::export::csv_check::CsvCheck::new();
        for chunk in data.chunks(256 * 1024) {
            c.feed(chunk).unwrap();
        }
        let s = c.finish().unwrap();
        let secs = t.elapsed().as_secs_f64();
        println!(
            "{} rows, {:.1} MB in {:.3} s = {:.0} MB/s",
            s.rows,
            s.bytes as f64 / 1e6,
            secs,
            s.bytes as f64 / 1e6 / secs
        );
    }
}
