//! The speed helper times a describing function without knowing what it runs.

use std::time::Duration;

use desdis_eval::{measure_throughput, Error, MIN_TIMED_CALLS};

#[test]
fn sleeping_function_runs_at_most_batch_per_sleep() {
    let sleep = Duration::from_millis(4);
    let mut calls = 0;
    let mut batches_seen = Vec::new();
    let t = measure_throughput(
        |batch| {
            calls += 1;
            batches_seen.push(batch);
            std::thread::sleep(sleep);
            Ok::<_, std::io::Error>(())
        },
        16,
        0.05,
    )
    .unwrap();
    assert!(batches_seen.iter().all(|&b| b == 16));
    assert_eq!(calls, t.calls + 1, "one warm-up call is not timed");
    assert!(t.calls >= MIN_TIMED_CALLS);
    assert!(t.total_seconds >= 0.05);
    let ceiling = 16.0 / sleep.as_secs_f64();
    assert!(t.patches_per_s > 0.0 && t.patches_per_s <= ceiling, "{} patches/s", t.patches_per_s);
    assert!(t.min_call_seconds >= sleep.as_secs_f64() && t.min_call_seconds <= t.median_call_seconds);
    let expected = (t.batch * t.calls) as f64 / t.total_seconds;
    assert!((t.patches_per_s - expected).abs() < 1e-9 * expected);
}

#[test]
fn zero_seconds_still_times_the_minimum_number_of_calls() {
    let t = measure_throughput(|_| Ok::<_, std::io::Error>(()), 1, 0.0).unwrap();
    assert_eq!(t.calls, MIN_TIMED_CALLS);
}

#[test]
fn a_failing_function_stops_the_measurement_with_its_error() {
    let mut calls = 0;
    let err = measure_throughput(
        |_| {
            calls += 1;
            if calls == 3 {
                anyhow::bail!("device lost")
            }
            Ok(())
        },
        8,
        10.0,
    )
    .unwrap_err();
    assert!(matches!(err, Error::Measured(_)), "{err:?}");
    assert!(err.to_string().contains("device lost"), "{err}");
    assert_eq!(calls, 3);
}

#[test]
fn bad_arguments_are_rejected_before_any_call() {
    let never = |_| -> Result<(), std::io::Error> { panic!("must not be called") };
    assert!(matches!(measure_throughput(never, 0, 1.0), Err(Error::InvalidArgument(_))));
    for seconds in [-1.0, f64::NAN, f64::INFINITY] {
        assert!(matches!(measure_throughput(never, 4, seconds), Err(Error::InvalidArgument(_))));
    }
}
