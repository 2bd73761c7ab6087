//! Property tests of the data loaders over random mutations and truncations of valid files: each
//! must return an error or a result consistent with itself, never panic or abort.

use std::path::Path;

use desdis_data::hpatches::{read_strip, write_strip};
use desdis_data::npy::{self, NpyData};
use desdis_data::patch::PatchSet;
use desdis_data::phototour::{self, CachePolicy};
use desdis_data::resize::{patches_to_32_f32, patches_to_32_u8};
use proptest::prelude::*;

/// Byte edits (position taken modulo the length) and an optional truncation point.
#[derive(Debug, Clone)]
struct Mutation {
    edits: Vec<(usize, u8)>,
    cut: Option<usize>,
}

fn mutation() -> impl Strategy<Value = Mutation> {
    (prop::collection::vec((any::<usize>(), any::<u8>()), 0..8), prop::option::of(any::<usize>()))
        .prop_map(|(edits, cut)| Mutation { edits, cut })
}

/// Mutations concentrated on the first `head` bytes, where headers live.
fn header_mutation(head: usize) -> impl Strategy<Value = Mutation> {
    (prop::collection::vec((0..head, any::<u8>()), 1..6), prop::option::of(0..head * 2))
        .prop_map(|(edits, cut)| Mutation { edits, cut })
}

fn apply(bytes: &[u8], m: &Mutation) -> Vec<u8> {
    let mut out = bytes.to_vec();
    if out.is_empty() {
        return out;
    }
    let len = out.len();
    for &(at, value) in &m.edits {
        out[at % len] = value;
    }
    if let Some(cut) = m.cut {
        out.truncate(cut % (len + 1));
    }
    out
}

fn config() -> ProptestConfig {
    ProptestConfig { cases: 128, failure_persistence: None, ..ProptestConfig::default() }
}

fn npy_file(descr: &str, shape: &[usize], data: &[u8]) -> Vec<u8> {
    let dims: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
    let mut text =
        format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': ({},), }}", dims.join(", "));
    while !(10 + text.len() + 1).is_multiple_of(64) {
        text.push(' ');
    }
    text.push('\n');
    let mut out = b"\x93NUMPY\x01\x00".to_vec();
    out.extend((text.len() as u16).to_le_bytes());
    out.extend(text.as_bytes());
    out.extend(data);
    out
}

/// What a successful parse promises: as many values as the shape says, and a resize that either
/// works or refuses.
fn check_npy(bytes: &[u8]) {
    let Ok(array) = npy::from_bytes(bytes) else { return };
    let count = npy::checked_product(&array.shape).expect("an accepted shape has a product");
    let [n, h, w] = array.shape[..] else { return };
    match array.data {
        NpyData::U8(v) => {
            assert_eq!(v.len(), count);
            if let Ok(out) = patches_to_32_u8(&v, n, h, w) {
                assert_eq!(out.len(), n * 1024);
            }
        }
        NpyData::F32(v) => {
            assert_eq!(v.len(), count);
            if let Ok(out) = patches_to_32_f32(&v, n, h, w) {
                assert_eq!(out.len(), n * 1024);
            }
        }
    }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn npy_survives_mutations(n in 1usize..4, side in 1usize..40, f32s in any::<bool>(), m in mutation()) {
        let (descr, size) = if f32s { ("<f4", 4) } else { ("|u1", 1) };
        let data: Vec<u8> = (0..n * side * side * size).map(|i| (i % 251) as u8).collect();
        check_npy(&apply(&npy_file(descr, &[n, side, side], &data), &m));
    }

    #[test]
    fn npy_headers_survive_mutations(m in header_mutation(80)) {
        let data = vec![7u8; 2 * 32 * 32];
        check_npy(&apply(&npy_file("|u1", &[2, 32, 32], &data), &m));
    }

    #[test]
    fn npy_with_arbitrary_shapes_is_checked(shape in prop::collection::vec(any::<u64>(), 0..5), len in 0usize..256) {
        let shape: Vec<usize> = shape.iter().map(|&d| d as usize >> (d % 64)).collect();
        check_npy(&npy_file("|u1", &shape, &vec![1u8; len]));
    }

    #[test]
    fn resize_checks_arbitrary_sizes(n in any::<usize>(), h in any::<usize>(), w in any::<usize>(), len in 0usize..4096) {
        let (n, h, w) = (n >> (n % 64), h >> (h % 64), w >> (w % 64));
        if let Ok(out) = patches_to_32_u8(&vec![0u8; len], n, h, w) {
            prop_assert_eq!(out.len(), n * 1024);
        }
    }
}

fn with_file<T>(name: &str, bytes: &[u8], read: impl FnOnce(&Path) -> T) -> T {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(name);
    std::fs::write(&path, bytes).unwrap();
    read(&path)
}

fn strip_bytes() -> &'static [u8] {
    static BYTES: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
    BYTES.get_or_init(|| {
        let patches: Vec<u8> = (0..3 * 65 * 65).map(|i| (i * 7 % 256) as u8).collect();
        with_file("strip.png", &[], |path| {
            write_strip(path, &patches).unwrap();
            std::fs::read(path).unwrap()
        })
    })
}

/// A PhotoTour folder of 20 patches: one sheet and info.txt.
fn phototour_dir() -> (tempfile::TempDir, Vec<u8>, Vec<u8>) {
    let dir = tempfile::tempdir().unwrap();
    let patches: Vec<u8> = (0..20 * 1024).map(|i| (i * 13 % 256) as u8).collect();
    let ids: Vec<u32> = (0..20).map(|i| i / 2).collect();
    phototour::write(dir.path(), &PatchSet::new(patches, ids).unwrap()).unwrap();
    let sheet = std::fs::read(dir.path().join("patches0000.bmp")).unwrap();
    let info = std::fs::read(dir.path().join("info.txt")).unwrap();
    (dir, sheet, info)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..config() })]

    #[test]
    fn png_strips_survive_mutations(m in mutation()) {
        let bytes = apply(strip_bytes(), &m);
        if let Ok(strip) = with_file("strip.png", &bytes, read_strip) {
            prop_assert!(!strip.is_empty() && strip.patches.len() % (65 * 65) == 0);
        }
    }

    #[test]
    fn png_strip_headers_survive_mutations(m in header_mutation(64)) {
        let bytes = apply(strip_bytes(), &m);
        let _ = with_file("strip.png", &bytes, read_strip);
    }

    #[test]
    fn phototour_sheets_and_info_survive_mutations(sheet_m in header_mutation(1100), info_m in mutation()) {
        let (dir, sheet, info) = phototour_dir();
        std::fs::write(dir.path().join("patches0000.bmp"), apply(&sheet, &sheet_m)).unwrap();
        std::fs::write(dir.path().join("info.txt"), apply(&info, &info_m)).unwrap();
        if let Ok(tour) = phototour::load(dir.path(), &CachePolicy::Off) {
            prop_assert_eq!(tour.set.patches.len(), tour.set.point_ids.len() * 1024);
        }
    }

    #[test]
    fn pair_files_survive_mutations(m in mutation()) {
        let text = b"0 0 0 1 0 0\n2 1 0 3 1 0\n4 2 0 0 0 0\n";
        let bytes = apply(text, &m);
        if let Ok(pairs) = with_file("m50_3_3_0.txt", &bytes, |p| phototour::read_pairs(p, Some(5))) {
            prop_assert!(pairs.iter().all(|p| p.a < 5 && p.b < 5));
        }
    }
}
