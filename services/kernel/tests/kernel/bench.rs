//! Timings (not timed tests): `cargo test -p tandem-kernel --release --test kernel --
//! --ignored bench --nocapture`.

use std::time::{Duration, Instant};

use tandem_runtime::kernel::Kernel;

use crate::support::{Cell, TestKernel, options};

#[tokio::test]
#[ignore = "a measurement, not a test; run it by name"]
async fn bench_kernel_numbers() {
    let mut starts = Vec::new();
    for _ in 0..5 {
        let dir = tempfile::tempdir().unwrap();
        let began = Instant::now();
        let kernel = Kernel::start(options(&dir)).await.unwrap();
        starts.push(began.elapsed());
        drop(kernel);
    }
    let dir = tempfile::tempdir().unwrap();
    let kernel = TestKernel {
        kernel: Kernel::start(options(&dir)).await.unwrap(),
        dir,
    };

    let mut trips = Vec::new();
    for _ in 0..100 {
        let began = Instant::now();
        let cell = kernel.run("1+1").await;
        trips.push(began.elapsed());
        assert_eq!(cell.result_text(), "2");
    }

    let began = Instant::now();
    let prints: Cell = kernel.run("for i in range(100000): print(i)").await;
    let prints_time = began.elapsed();
    assert_eq!(prints.stdout().lines().count(), 100_000);

    let first = kernel.run("import matplotlib.pyplot as plt").await;
    first.assert_ok();

    println!("cold start (spawn → ready): {}", summary(&mut starts));
    println!(
        "1+1 round trip (execute → done), 100 runs: {}",
        summary(&mut trips)
    );
    println!(
        "100k prints: {:.1} ms in {} stream events",
        prints_time.as_secs_f64() * 1e3,
        prints.outputs().len()
    );
}

fn summary(times: &mut [Duration]) -> String {
    times.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    format!(
        "min {:.2} ms, p50 {:.2} ms, max {:.2} ms",
        ms(times[0]),
        ms(times[times.len() / 2]),
        ms(times[times.len() - 1])
    )
}
