//! Geometric augmentation of 32x32 patches: one of the 8 symmetries of the square
//! (rotation by a multiple of 90 degrees, optionally mirrored), applied identically to both
//! patches of a pair so that they still correspond.

use crate::patch::{PATCH_LEN, PATCH_SIDE};
use rand::Rng;

/// One of the 8 symmetries of the square.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Symmetry {
    /// Quarter turns, 0..4.
    pub quarter_turns: u8,
    /// Mirror left-right before turning.
    pub flip: bool,
}

impl Symmetry {
    /// The identity.
    pub const IDENTITY: Symmetry = Symmetry { quarter_turns: 0, flip: false };

    /// A uniformly random symmetry.
    pub fn random<R: Rng>(rng: &mut R) -> Symmetry {
        let k: u8 = rng.random_range(0..8);
        Symmetry { quarter_turns: k % 4, flip: k >= 4 }
    }

    /// Writes the transformed `src` into `dst`.
    pub fn apply(&self, src: &[u8; PATCH_LEN], dst: &mut [u8; PATCH_LEN]) {
        let n = PATCH_SIDE - 1;
        for y in 0..PATCH_SIDE {
            for x in 0..PATCH_SIDE {
                let x0 = if self.flip { n - x } else { x };
                // Turning by 90 degrees counter-clockwise maps (x, y) to (y, n - x).
                let (sx, sy) = match self.quarter_turns {
                    0 => (x0, y),
                    1 => (n - y, x0),
                    2 => (n - x0, n - y),
                    _ => (y, n - x0),
                };
                dst[y * PATCH_SIDE + x] = src[sy * PATCH_SIDE + sx];
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_eight_symmetries_are_distinct_permutations() {
        let src: [u8; PATCH_LEN] = std::array::from_fn(|i| (i % 251) as u8);
        let mut seen = Vec::new();
        for k in 0..8u8 {
            let s = Symmetry { quarter_turns: k % 4, flip: k >= 4 };
            let mut dst = [0u8; PATCH_LEN];
            s.apply(&src, &mut dst);
            let mut sorted_a = src.to_vec();
            let mut sorted_b = dst.to_vec();
            sorted_a.sort_unstable();
            sorted_b.sort_unstable();
            assert_eq!(sorted_a, sorted_b);
            assert!(!seen.contains(&dst), "symmetry {k} repeats another");
            seen.push(dst);
        }
        // Four quarter turns give back the original.
        let turn = Symmetry { quarter_turns: 1, flip: false };
        let mut cur = src;
        for _ in 0..4 {
            let mut next = [0u8; PATCH_LEN];
            turn.apply(&cur, &mut next);
            cur = next;
        }
        assert_eq!(cur, src);
    }
}
