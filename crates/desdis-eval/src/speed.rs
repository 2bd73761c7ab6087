//! Descriptor speed: how many patches per second a describing function gets through.

use std::time::Instant;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Timed calls made at least, whatever `min_seconds` is, so the median means something.
pub const MIN_TIMED_CALLS: usize = 3;

/// The outcome of [`measure_throughput`].
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Throughput {
    /// Patches per call.
    pub batch: usize,
    /// Timed calls (the warm-up call is not counted).
    pub calls: usize,
    /// Wall-clock seconds of all timed calls together.
    pub total_seconds: f64,
    /// `batch * calls / total_seconds`.
    pub patches_per_s: f64,
    /// Median seconds of one call; less sensitive than the mean to a stray slow call.
    pub median_call_seconds: f64,
    /// Fastest call, in seconds.
    pub min_call_seconds: f64,
}

/// Calls `describe(batch)` repeatedly and reports its throughput.
///
/// One untimed warm-up call comes first (it pays for lazy allocation, kernel compilation and
/// caches). Then calls are timed until together they took at least `min_seconds`, and at least
/// [`MIN_TIMED_CALLS`] of them. `describe` must describe `batch` patches and return only once
/// the result is ready — for an asynchronous device, after synchronising or copying it back —
/// or the time measured is only the time to queue the work.
///
/// Fails when `batch` is zero, `min_seconds` is negative or not finite, or `describe` fails
/// (its error is kept as the source of [`Error::Measured`]).
pub fn measure_throughput<E>(
    mut describe: impl FnMut(usize) -> std::result::Result<(), E>,
    batch: usize,
    min_seconds: f64,
) -> Result<Throughput>
where
    E: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    if batch == 0 {
        return Err(Error::InvalidArgument("throughput: batch must be at least 1".into()));
    }
    if !(min_seconds.is_finite() && min_seconds >= 0.0) {
        return Err(Error::InvalidArgument(format!(
            "throughput: min_seconds {min_seconds} must be finite and non-negative"
        )));
    }
    let mut call = || describe(batch).map_err(|e| Error::Measured(e.into()));
    call()?;
    let mut call_seconds = Vec::new();
    let mut total_seconds = 0.0;
    while call_seconds.len() < MIN_TIMED_CALLS || total_seconds < min_seconds {
        let start = Instant::now();
        call()?;
        let seconds = start.elapsed().as_secs_f64();
        call_seconds.push(seconds);
        total_seconds += seconds;
    }
    Ok(summarise(batch, call_seconds, total_seconds))
}

fn summarise(batch: usize, mut call_seconds: Vec<f64>, total_seconds: f64) -> Throughput {
    call_seconds.sort_by(f64::total_cmp);
    let calls = call_seconds.len();
    let median_call_seconds = if calls % 2 == 1 {
        call_seconds[calls / 2]
    } else {
        (call_seconds[calls / 2 - 1] + call_seconds[calls / 2]) / 2.0
    };
    Throughput {
        batch,
        calls,
        total_seconds,
        // A timer too coarse to see a call leaves total 0; report infinity rather than NaN.
        patches_per_s: (batch * calls) as f64 / total_seconds,
        median_call_seconds,
        min_call_seconds: call_seconds[0],
    }
}
