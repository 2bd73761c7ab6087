//! Per-thread scratch memory for the patch matrices, kept between calls: a fresh multi-megabyte
//! buffer per image or per call would be served by fresh pages and pay a page fault per 4 KiB.

use std::cell::RefCell;

thread_local! {
    static SCRATCH: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
}

/// Runs `f` on a scratch slice of `len` elements with unspecified contents, borrowed from this
/// thread's buffer (grown as needed and never shrunk, so a thread holds at most its largest request).
///
/// Re-entrant: if the buffer is already lent out — a rayon thread that, while waiting, runs another
/// convolution task — that inner call gets a temporary buffer instead of panicking.
pub(crate) fn with_scratch<R>(len: usize, f: impl FnOnce(&mut [f32]) -> R) -> R {
    SCRATCH.with(|cell| match cell.try_borrow_mut() {
        Ok(mut buffer) => {
            if buffer.len() < len {
                buffer.resize(len, 0.0);
            }
            f(&mut buffer[..len])
        }
        Err(_) => f(&mut vec![0.0; len]),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nested_calls_get_distinct_buffers() {
        with_scratch(4, |outer| {
            outer.fill(1.0);
            with_scratch(4, |inner| inner.fill(2.0));
            assert_eq!(outer, [1.0; 4]);
        });
    }

    #[test]
    fn buffer_is_reused_between_calls() {
        let first = with_scratch(16, |s| s.as_ptr() as usize);
        let second = with_scratch(8, |s| s.as_ptr() as usize);
        assert_eq!(first, second);
    }
}
