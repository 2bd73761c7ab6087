//! Float descriptors to the 128 bytes COLMAP stores per SIFT feature.
//!
//! COLMAP compares its uint8 descriptors in two ways, both calibrated for SIFT vectors of L2
//! norm 512 (unit floats times 512): its default CPU matcher ranks by L2 distance, the GPU and
//! brute-force matchers by dot product (`acos(dot / 512²)`). Ours are unit vectors of dimension
//! D <= 128 with signed components. A quantisation under which *both* rankings follow the float
//! one must be (up to rounding) an isometry whose outputs all have the same norm: then
//! `|a - b|² = 2·512² - 2·a·b`, so L2 and dot-product order agree with each other and with the
//! floats. Shifting signed values into 0..=255 by an offset is an isometry but leaves the norm
//! depending on each vector's component sum; it becomes constant when every output is orthogonal
//! to the all-ones direction. Hence:
//!
//! 1. L2-normalise the input (a zero vector stays zero).
//! 2. Place it in a 128-vector `a`: at indices 1..=D when D < 128 (index 0 stays 0), as is when
//!    D = 128.
//! 3. `z = H a / √128` with H the 128×128 Sylvester–Hadamard matrix (row 0 all ones). This is a
//!    rotation: it keeps distances and spreads each input component over all 128 outputs, so no
//!    output is much larger than 1/√128 and few clip. Because `a₀ = 0`, `z` is orthogonal to the
//!    all-ones vector.
//! 4. For D = 128, `a₀ = x₀` and `z` has a component along all-ones (equal to `x₀`); it is
//!    removed and `z` renormalised. This is the one loss of the scheme: a 128-D input keeps 127
//!    of its directions (on average 1/128 of its energy is dropped).
//! 5. `q = clamp(round(C + S·z), 0, 255)` with `S = 512/√10 ≈ 161.9` and
//!    `C = 512·√(0.9/128) ≈ 42.9`, so that `|q|² = 128·C² + S² = 512²` like SIFT's. An output
//!    component is kept exactly (up to rounding) while `|z_i| <= C/S ≈ 0.265`, three standard
//!    deviations of a spread unit vector's component (1/√128 ≈ 0.088).
//!
//! Consequences for COLMAP's matcher: the nearest neighbour and the ratio test (L2 matcher:
//! exactly; dot-product matcher: to first order) follow the float descriptors. Distances are
//! scaled by S/512 = 1/√10, so `SiftMatching.max_distance` no longer bites at its default 0.7:
//! to reject float L2 distances above `d`, pass `--SiftMatching.max_distance` = `d/√10`.
//!
//! Measured on seeded random unit vectors (test `nearest_neighbour_agreement`: 1000 database
//! vectors, 300 queries, D in {8, 16, 24, 32, 64, 128}); agreement of the quantised nearest
//! neighbour with the float one, by L2 / by dot product:
//! * queries that are noisy views of database vectors (noise norm 0.5): 100 % / 100 % for
//!   D >= 16; 95.0 % / 81.0 % for D = 8, where 1000 points crowd the 8-D sphere — among the
//!   queries whose float match passes COLMAP's ratio test (0.8) it is 100 % / 98.9 %;
//! * purely random queries (all candidates nearly equidistant, the hard case): 86–96 % by L2,
//!   77–90 % by dot product. The dot product suffers more because rounding moves each
//!   vector's norm a little, which L2 ranking does not see.

/// The descriptor dimension COLMAP's importer requires.
pub const COLMAP_DESCRIPTOR_DIM: usize = 128;

/// The scale S applied to the rotated unit vector (512/√10).
pub const QUANT_SCALE: f32 = 161.908_62;

/// The offset C added to every component (512·√(0.9/128)).
pub const QUANT_OFFSET: f32 = 42.932_505;

/// Quantises one descriptor (any D in 1..=128, normalised here) to COLMAP's 128 bytes, as
/// described in the [module documentation](self). `Err` for D = 0, D > 128 or a non-finite
/// component.
pub fn quantize_descriptor(descriptor: &[f32]) -> Result<[u8; COLMAP_DESCRIPTOR_DIM], String> {
    let dim = descriptor.len();
    if dim == 0 || dim > COLMAP_DESCRIPTOR_DIM {
        return Err(format!("descriptor dimension {dim} is outside 1..=128"));
    }
    if descriptor.iter().any(|v| !v.is_finite()) {
        return Err("descriptor has a non-finite component".into());
    }
    let mut z = [0f32; COLMAP_DESCRIPTOR_DIM];
    // Index 0 stays 0 when there is room: that keeps the rotated vector off the all-ones axis.
    let start = usize::from(dim < COLMAP_DESCRIPTOR_DIM);
    z[start..start + dim].copy_from_slice(descriptor);
    normalize(&mut z);
    walsh_hadamard(&mut z);
    let mean = z.iter().sum::<f32>() / COLMAP_DESCRIPTOR_DIM as f32;
    z.iter_mut().for_each(|v| *v -= mean);
    normalize(&mut z);
    Ok(z.map(|v| (QUANT_OFFSET + QUANT_SCALE * v).round().clamp(0.0, 255.0) as u8))
}

fn normalize(v: &mut [f32]) {
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if norm > 0.0 {
        v.iter_mut().for_each(|x| *x /= norm);
    }
}

/// In-place orthonormal Walsh–Hadamard transform (`H v / √n`, Sylvester order) of 128 values.
fn walsh_hadamard(v: &mut [f32; COLMAP_DESCRIPTOR_DIM]) {
    let mut h = 1;
    while h < v.len() {
        for block in (0..v.len()).step_by(2 * h) {
            for i in block..block + h {
                let (a, b) = (v[i], v[i + h]);
                v[i] = a + b;
                v[i + h] = a - b;
            }
        }
        h *= 2;
    }
    let scale = (v.len() as f32).sqrt().recip();
    v.iter_mut().for_each(|x| *x *= scale);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// SplitMix64: a seeded generator, so the measured numbers are reproducible.
    struct Rng(u64);

    impl Rng {
        fn next_u64(&mut self) -> u64 {
            self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^ (z >> 31)
        }

        fn uniform(&mut self) -> f64 {
            ((self.next_u64() >> 11) as f64 + 0.5) / (1u64 << 53) as f64
        }

        fn gaussian(&mut self) -> f32 {
            let (u, v) = (self.uniform(), self.uniform());
            ((-2.0 * u.ln()).sqrt() * (2.0 * std::f64::consts::PI * v).cos()) as f32
        }

        fn unit(&mut self, dim: usize) -> Vec<f32> {
            let mut v: Vec<f32> = (0..dim).map(|_| self.gaussian()).collect();
            normalize(&mut v);
            v
        }
    }

    fn dist2(a: &[f32], b: &[f32]) -> f32 {
        a.iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum()
    }

    fn argmin<T: PartialOrd + Copy>(values: impl Iterator<Item = T>) -> usize {
        let mut best: Option<(usize, T)> = None;
        for (i, v) in values.enumerate() {
            if best.is_none_or(|(_, b)| v < b) {
                best = Some((i, v));
            }
        }
        best.map_or(0, |(i, _)| i)
    }

    fn l2_u8(a: &[u8; 128], b: &[u8; 128]) -> i32 {
        a.iter().zip(b).map(|(&x, &y)| (i32::from(x) - i32::from(y)).pow(2)).sum()
    }

    fn dot_u8(a: &[u8; 128], b: &[u8; 128]) -> i32 {
        a.iter().zip(b).map(|(&x, &y)| i32::from(x) * i32::from(y)).sum()
    }

    /// Agreement of the quantised nearest neighbour (by L2, by dot product) with the float one:
    /// over all queries, and over the queries whose float match passes COLMAP's ratio test
    /// (nearest / second nearest distance < 0.8), the only ones COLMAP would keep.
    struct Agreement {
        l2: f64,
        dot: f64,
        l2_kept: f64,
        dot_kept: f64,
        kept: usize,
    }

    fn agreement(dim: usize, perturbed: bool, seed: u64) -> Agreement {
        let mut rng = Rng(seed);
        let database: Vec<Vec<f32>> = (0..1000).map(|_| rng.unit(dim)).collect();
        let queries: Vec<Vec<f32>> = (0..300)
            .map(|k| {
                if !perturbed {
                    return rng.unit(dim);
                }
                // A noisy view of a database vector: noise of norm 0.5 (cosine about 0.9).
                let noise = rng.unit(dim);
                let mut q: Vec<f32> = database[k].iter().zip(&noise).map(|(d, n)| d + 0.5 * n).collect();
                normalize(&mut q);
                q
            })
            .collect();
        let qdb: Vec<[u8; 128]> = database.iter().map(|d| quantize_descriptor(d).unwrap()).collect();
        let (mut l2, mut dot, mut l2_kept, mut dot_kept, mut kept) = (0, 0, 0, 0, 0);
        for q in &queries {
            let dists: Vec<f32> = database.iter().map(|d| dist2(q, d)).collect();
            let float_nn = argmin(dists.iter().copied());
            let second =
                argmin(dists.iter().enumerate().map(|(i, &d)| if i == float_nn { f32::MAX } else { d }));
            let passes = dists[float_nn].sqrt() < 0.8 * dists[second].sqrt();
            let qq = quantize_descriptor(q).unwrap();
            let same_l2 = argmin(qdb.iter().map(|d| l2_u8(&qq, d))) == float_nn;
            let same_dot = argmin(qdb.iter().map(|d| -dot_u8(&qq, d))) == float_nn;
            l2 += usize::from(same_l2);
            dot += usize::from(same_dot);
            kept += usize::from(passes);
            l2_kept += usize::from(passes && same_l2);
            dot_kept += usize::from(passes && same_dot);
        }
        let n = queries.len() as f64;
        let k = kept.max(1) as f64;
        Agreement {
            l2: l2 as f64 / n,
            dot: dot as f64 / n,
            l2_kept: l2_kept as f64 / k,
            dot_kept: dot_kept as f64 / k,
            kept,
        }
    }

    #[test]
    fn nearest_neighbour_agreement() {
        // Bounds a little under the values measured with these seeds (see the module docs).
        for dim in [8, 16, 24, 32, 64, 128] {
            for perturbed in [true, false] {
                let a = agreement(dim, perturbed, dim as u64 + if perturbed { 7 } else { 1000 });
                println!(
                    "D={dim:3} {}: all l2 {:.3} dot {:.3} | ratio-test kept {:3}/300: l2 {:.3} dot {:.3}",
                    if perturbed { "perturbed" } else { "random   " },
                    a.l2,
                    a.dot,
                    a.kept,
                    a.l2_kept,
                    a.dot_kept
                );
                if perturbed {
                    assert!(
                        a.l2_kept >= 0.98 && a.dot_kept >= 0.97,
                        "D={dim}: {:.3} {:.3}",
                        a.l2_kept,
                        a.dot_kept
                    );
                    assert!(a.l2 >= 0.93 && a.dot >= 0.78, "D={dim}: {:.3} {:.3}", a.l2, a.dot);
                } else {
                    assert!(a.l2 >= 0.84 && a.dot >= 0.75, "D={dim}: {:.3} {:.3}", a.l2, a.dot);
                }
            }
        }
    }

    #[test]
    fn norm_is_sifts_and_values_in_range() {
        let mut rng = Rng(3);
        for dim in [8, 16, 32, 64, 100, 128] {
            for _ in 0..50 {
                let q = quantize_descriptor(&rng.unit(dim)).unwrap();
                let norm = q.iter().map(|&v| f64::from(v).powi(2)).sum::<f64>().sqrt();
                assert!((norm - 512.0).abs() < 10.0, "D={dim}: norm {norm}");
            }
        }
    }

    #[test]
    fn distances_are_kept_up_to_the_scale() {
        let mut rng = Rng(5);
        for dim in [8, 24, 128] {
            let (a, b) = (rng.unit(dim), rng.unit(dim));
            let float = dist2(&a, &b).sqrt() * QUANT_SCALE;
            let quant =
                (l2_u8(&quantize_descriptor(&a).unwrap(), &quantize_descriptor(&b).unwrap()) as f32).sqrt();
            // Rounding adds about sqrt(128/12) ≈ 3.3 in quadrature; D = 128 also drops x₀.
            assert!((float - quant).abs() < 0.1 * float + 6.0, "D={dim}: {float} vs {quant}");
        }
    }

    #[test]
    fn rejects_bad_dimensions_and_values() {
        assert!(quantize_descriptor(&[]).is_err());
        assert!(quantize_descriptor(&[0.1; 129]).is_err());
        assert!(quantize_descriptor(&[f32::NAN, 1.0]).is_err());
        assert_eq!(quantize_descriptor(&[0.0; 4]).unwrap(), [43; 128]);
    }

    #[test]
    fn constants_match_their_definition() {
        assert!((QUANT_SCALE - 512.0 / 10f32.sqrt()).abs() < 1e-3);
        assert!((QUANT_OFFSET - 512.0 * (0.9f32 / 128.0).sqrt()).abs() < 1e-3);
    }
}
