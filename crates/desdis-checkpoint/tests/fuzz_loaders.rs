//! Property tests of the checkpoint loaders over random mutations and truncations of valid files
//! (PyTorch zip and legacy `.pth`, safetensors): each load must return an error or a state dict of
//! finite tensors, never panic, abort or run anything.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor};
use desdis_checkpoint::{load, save_safetensors};
use proptest::prelude::*;

/// The synthetic `.pth` fixtures (hex-encoded in the repository) and a safetensors file, as bytes.
fn seeds() -> &'static HashMap<String, Vec<u8>> {
    static SEEDS: std::sync::OnceLock<HashMap<String, Vec<u8>>> = std::sync::OnceLock::new();
    SEEDS.get_or_init(|| {
        let hex =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/weights/mixed_checkpoints.hex");
        let text = std::fs::read_to_string(hex).expect("committed fixture");
        let mut seeds: HashMap<String, Vec<u8>> = text
            .lines()
            .filter(|l| !l.starts_with('#') && !l.is_empty())
            .filter_map(|l| l.split_once('\t'))
            .map(|(name, hex)| (name.to_string(), decode_hex(hex)))
            .collect();
        seeds.insert("weights.safetensors".into(), safetensors_seed());
        seeds
    })
}

fn decode_hex(hex: &str) -> Vec<u8> {
    (0..hex.len() / 2).map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).unwrap_or(0)).collect()
}

fn safetensors_seed() -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("w.safetensors");
    let t = |n: usize| Tensor::from_vec((0..n).map(|i| i as f32 / 7.0).collect(), n, &Device::Cpu).unwrap();
    let tensors = HashMap::from([("a.weight".to_string(), t(12)), ("b.bias".to_string(), t(3))]);
    save_safetensors(&tensors, &path).unwrap();
    std::fs::read(path).unwrap()
}

fn mutate(bytes: &[u8], edits: &[(usize, u8)], cut: Option<usize>) -> Vec<u8> {
    let mut out = bytes.to_vec();
    let len = out.len().max(1);
    for &(at, value) in edits {
        if let Some(b) = out.get_mut(at % len) {
            *b = value;
        }
    }
    if let Some(cut) = cut {
        out.truncate(cut % (len + 1));
    }
    out
}

/// Loads mutated bytes of the seed `name`; a success must be finite tensors.
fn check(name: &str, edits: &[(usize, u8)], cut: Option<usize>) -> Result<(), TestCaseError> {
    let bytes = mutate(&seeds()[name], edits, cut);
    let dir = tempfile::tempdir().unwrap();
    let path: PathBuf = dir.path().join(name);
    std::fs::write(&path, bytes).unwrap();
    if let Ok(sd) = load(path.to_str().unwrap(), &Device::Cpu) {
        for (key, t) in &sd.tensors {
            if t.dtype().is_float() {
                let v = t
                    .to_dtype(candle_core::DType::F32)
                    .unwrap()
                    .flatten_all()
                    .unwrap()
                    .to_vec1::<f32>()
                    .unwrap();
                prop_assert!(v.iter().all(|x| x.is_finite()), "{key} accepted with non-finite values");
            }
        }
    }
    Ok(())
}

fn edits() -> impl Strategy<Value = Vec<(usize, u8)>> {
    prop::collection::vec((any::<usize>(), any::<u8>()), 0..8)
}

fn head_edits(head: usize) -> impl Strategy<Value = Vec<(usize, u8)>> {
    prop::collection::vec((0..head, any::<u8>()), 1..6)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn zip_pth_survives_mutations(e in edits(), cut in prop::option::of(any::<usize>())) {
        check("mixed_zip_p2.pth", &e, cut)?;
    }

    #[test]
    fn zip_pth_protocol4_survives_mutations(e in edits(), cut in prop::option::of(any::<usize>())) {
        check("mixed_zip_p4.pth", &e, cut)?;
    }

    #[test]
    fn legacy_pth_survives_mutations(e in edits(), cut in prop::option::of(any::<usize>())) {
        check("mixed_legacy.pth", &e, cut)?;
    }

    #[test]
    fn legacy_pth_header_survives_mutations(e in head_edits(512)) {
        check("mixed_legacy.pth", &e, None)?;
    }

    #[test]
    fn safetensors_survives_mutations(e in edits(), cut in prop::option::of(any::<usize>())) {
        check("weights.safetensors", &e, cut)?;
    }

    #[test]
    fn safetensors_header_survives_mutations(e in head_edits(160)) {
        check("weights.safetensors", &e, None)?;
    }
}
