//! End-to-end tests of the `desdis` binary: parity of released weights through `describe`, and a
//! clear error with a non-zero exit for each kind of bad input.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use candle_core::{Device, Tensor};
use desdis_checkpoint as weights;
use desdis_stdx::testing::shared_data;

fn desdis(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_desdis")).args(args).output().expect("the desdis binary runs")
}

fn read_npy_f32(path: &Path) -> (Vec<u64>, Vec<f32>) {
    let bytes = std::fs::read(path).expect("output written");
    let npy = npyz::NpyFile::new(&bytes[..]).expect("valid npy");
    let shape = npy.shape().to_vec();
    let fortran = npy.order() == npyz::Order::Fortran;
    let mut values: Vec<f32> = npy.into_vec().expect("f32 data");
    if fortran {
        // The reference files are column-major (N, D): transpose to row-major.
        let (n, d) = (shape[0] as usize, shape[1] as usize);
        values = (0..n * d).map(|i| values[(i % d) * n + i / d]).collect();
    }
    (shape, values)
}

fn describe_ok(weights: &str, input: &Path, out: &Path) {
    let o = desdis(&[
        "describe",
        "--weights",
        weights,
        "--input",
        input.to_str().unwrap(),
        "--output",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "describe failed: {}", String::from_utf8_lossy(&o.stderr));
}

/// The released students and TFeat, through the binary, against the independent float64 reference.
#[test]
fn released_weights_match_reference_descriptors() {
    let Some(input) = shared_data("reference/hpatches_ref64_u8_65x65.npy") else { return };
    let tmp = tempfile::tempdir().unwrap();
    let cases = [
        ("desdis-official/DesDis-8.pth", "desdis-8"),
        ("desdis-official/DesDis-16.pth", "desdis-16"),
        ("desdis-official/DesDis-24.pth", "desdis-24"),
        ("desdis-official/DesDis-32.pth", "desdis-32"),
        ("tfeat/tfeat-liberty.params", "tfeat-liberty"),
    ];
    for (weights, name) in cases {
        let weights = shared_data(weights).expect("weights beside the reference");
        let reference = shared_data(&format!("reference/{name}_ref64.npy")).expect("reference file");
        let out = tmp.path().join(format!("{name}.npy"));
        describe_ok(weights.to_str().unwrap(), &input, &out);
        let (shape, got) = read_npy_f32(&out);
        let (ref_shape, expected) = read_npy_f32(&reference);
        assert_eq!(shape, ref_shape, "{name}");
        let max = got.iter().zip(&expected).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
        assert!(max <= 1e-5, "{name}: max |diff| {max}");
    }
}

/// An HPatches strip PNG is sliced into 65x65 patches and described, one row per patch.
#[test]
fn describes_an_hpatches_strip() {
    let (Some(strip), Some(w)) =
        (shared_data("hpatches-patches/ref.png"), shared_data("desdis-official/DesDis-8.pth"))
    else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("strip.npy");
    describe_ok(w.to_str().unwrap(), &strip, &out);
    let (shape, values) = read_npy_f32(&out);
    assert_eq!(shape, vec![1123, 128]);
    for row in values.chunks(128) {
        let norm: f32 = row.iter().map(|v| v * v).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-4, "descriptors are unit vectors, got norm {norm}");
    }
}

fn write_npy<T: npyz::AutoSerialize + Copy>(path: &Path, shape: &[u64], data: &[T]) {
    use npyz::WriterBuilder;
    let mut bytes = Vec::new();
    let mut w =
        npyz::WriteOptions::<T>::new().default_dtype().shape(shape).writer(&mut bytes).begin_nd().unwrap();
    w.extend(data.iter().copied()).unwrap();
    w.finish().unwrap();
    std::fs::write(path, bytes).unwrap();
}

/// A checkpoint of the released DesDis-8 with `edit` applied, as safetensors.
fn edited_checkpoint(
    dir: &Path,
    name: &str,
    edit: impl FnOnce(&mut HashMap<String, Tensor>),
) -> Option<PathBuf> {
    let source = shared_data("desdis-official/DesDis-8.pth")?;
    let mut sd = weights::load(source.to_str().unwrap(), &Device::Cpu).unwrap().tensors;
    edit(&mut sd);
    let path = dir.join(name);
    weights::save_safetensors(&sd, &path).unwrap();
    Some(path)
}

fn forbidden_pickle(dir: &Path) -> PathBuf {
    use std::io::Write;
    // protocol 2: GLOBAL os.system, the argument tuple ('echo',), REDUCE, STOP.
    let pickle = b"\x80\x02cos\nsystem\nX\x04\x00\x00\x00echo\x85R.";
    let path = dir.join("evil.pth");
    let mut zip = zip::ZipWriter::new(std::fs::File::create(&path).unwrap());
    zip.start_file("archive/data.pkl", zip::write::SimpleFileOptions::default()).unwrap();
    zip.write_all(pickle).unwrap();
    zip.finish().unwrap();
    path
}

fn assert_fails(args: &[&str], needles: &[&str]) {
    let o = desdis(args);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success(), "expected failure for {args:?}");
    assert_ne!(o.status.code(), Some(101), "a panic is not an error message: {err}");
    for needle in needles {
        assert!(err.contains(needle), "stderr of {args:?} should mention {needle:?}: {err}");
    }
}

#[test]
fn bad_inputs_fail_with_clear_messages() {
    let Some(good_weights) = shared_data("desdis-official/DesDis-8.pth") else { return };
    let good = good_weights.to_str().unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let patches = dir.join("patches.npy");
    write_npy::<u8>(&patches, &[2, 32, 32], &[128; 2048]);
    let p = patches.to_str().unwrap();
    let out = dir.join("out.npy");
    let o = out.to_str().unwrap();
    let s = |p: &Path| p.to_str().unwrap().to_string();

    let truncated = dir.join("truncated.pth");
    let bytes = std::fs::read(&good_weights).unwrap();
    std::fs::write(&truncated, &bytes[..bytes.len() / 2]).unwrap();
    assert_fails(&["describe", "--weights", &s(&truncated), "--input", p, "--output", o], &["truncated.pth"]);

    let garbage = dir.join("garbage.pth");
    std::fs::write(&garbage, b"this is not a checkpoint at all").unwrap();
    assert_fails(&["describe", "--weights", &s(&garbage), "--input", p, "--output", o], &["garbage.pth"]);

    let evil = forbidden_pickle(dir);
    assert_fails(&["describe", "--weights", &s(&evil), "--input", p, "--output", o], &["evil.pth", "os"]);

    let missing = edited_checkpoint(dir, "missing.safetensors", |sd| {
        sd.remove("layer2.0.weight");
    })
    .unwrap();
    assert_fails(
        &["describe", "--weights", &s(&missing), "--arch", "desdis-8", "--input", p, "--output", o],
        &["missing.safetensors", "layer2.0.weight"],
    );

    let wrong_shape = edited_checkpoint(dir, "shape.safetensors", |sd| {
        sd.insert(
            "layer2.0.weight".into(),
            Tensor::zeros((3, 3, 3, 3), candle_core::DType::F32, &Device::Cpu).unwrap(),
        );
    })
    .unwrap();
    assert_fails(
        &["describe", "--weights", &s(&wrong_shape), "--input", p, "--output", o],
        &["shape.safetensors", "layer2.0.weight"],
    );

    assert_fails(
        &["describe", "--weights", good, "--arch", "resnet50", "--input", p, "--output", o],
        &["resnet50"],
    );
    assert_fails(
        &["describe", "--weights", &s(&dir.join("nope.pth")), "--input", p, "--output", o],
        &["nope.pth"],
    );

    let rank1 = dir.join("rank1.npy");
    write_npy::<u8>(&rank1, &[1024], &[0; 1024]);
    assert_fails(
        &["describe", "--weights", good, "--input", &s(&rank1), "--output", o],
        &["rank1.npy", "shape"],
    );

    let ints = dir.join("ints.npy");
    write_npy::<i32>(&ints, &[1, 32, 32], &[0; 1024]);
    assert_fails(
        &["describe", "--weights", good, "--input", &s(&ints), "--output", o],
        &["ints.npy", "dtype"],
    );

    let empty = dir.join("empty.npy");
    write_npy::<u8>(&empty, &[0, 32, 32], &[]);
    assert_fails(
        &["describe", "--weights", good, "--input", &s(&empty), "--output", o],
        &["empty.npy", "no patches"],
    );

    let png = dir.join("broken.png");
    std::fs::write(&png, b"\x89PNG\r\n\x1a\nnot really").unwrap();
    assert_fails(&["describe", "--weights", good, "--input", &s(&png), "--output", o], &["broken.png"]);

    assert!(!out.exists(), "no output is written when describing fails");
}

#[test]
fn help_explains_the_inputs() {
    let o = desdis(&["describe", "--help"]);
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success());
    for needle in ["--weights", "--input", "PhotoTour", "INTER_LINEAR"] {
        assert!(text.contains(needle), "help mentions {needle}");
    }
}

/// `--device`: the CPU always works; an unknown name, or CUDA in a binary built without it, is a
/// clear error rather than a silent CPU run.
#[test]
fn device_flag_selects_or_refuses_clearly() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let (vars, _) =
        desdis_models::init::init_net(desdis_models::arch::Arch::DesDis { dim: 8 }, 3, &Device::Cpu)
            .expect("a seeded net");
    let tensors: HashMap<String, Tensor> =
        vars.data().lock().unwrap().iter().map(|(k, v)| (k.clone(), v.as_tensor().clone())).collect();
    let w = dir.join("w.safetensors");
    weights::save_safetensors(&tensors, &w).unwrap();
    let patches = dir.join("patches.npy");
    write_npy::<u8>(&patches, &[3, 32, 32], &[77; 3 * 1024]);
    let out = dir.join("out.npy");
    let (w, p, o) = (w.to_str().unwrap(), patches.to_str().unwrap(), out.to_str().unwrap());
    let args = |device| ["describe", "--weights", w, "--input", p, "--output", o, "--device", device];
    let ran = desdis(&args("cpu"));
    assert!(ran.status.success(), "--device cpu: {}", String::from_utf8_lossy(&ran.stderr));
    assert_eq!(read_npy_f32(&out).0, vec![3, 128]);
    assert_fails(&args("tpu"), &["tpu", "expected cpu, cuda"]);
    if !desdis_models::device::cuda_compiled() {
        assert_fails(&args("cuda:0"), &["--features cuda"]);
    }
}

/// A PhotoTour folder of 120 points, 3 noisy views each, and a pair file of 400 pairs.
fn write_phototour_fixture(dir: &Path) -> PathBuf {
    use rand::{Rng, SeedableRng};
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(21);
    let mut set = desdis_data::patch::PatchSet::default();
    for point in 0..120u32 {
        let (fx, fy, phase) =
            (rng.random_range(0.1..0.7f32), rng.random_range(0.1..0.7f32), rng.random::<f32>());
        for _ in 0..3 {
            let mut patch = [0u8; desdis_data::patch::PATCH_LEN];
            for (i, px) in patch.iter_mut().enumerate() {
                let (x, y) = ((i % 32) as f32, (i / 32) as f32);
                // Strong noise, so some negatives come closer than some positives.
                let v = 128.0 + 60.0 * (fx * x + fy * y + 6.0 * phase).sin() + rng.random_range(-90.0..90.0);
                *px = v.clamp(0.0, 255.0) as u8;
            }
            set.push(&patch, point);
        }
    }
    desdis_data::phototour::write(dir, &set).unwrap();
    let pairs = desdis_data::mining::sample_eval_pairs(&set.point_ids, 400, 3).unwrap();
    let path = dir.join("m50_400_400_0.txt");
    desdis_data::phototour::write_pairs(&path, &pairs, &set.point_ids).unwrap();
    path
}

/// `desdis eval --phototour` against FPR95 computed here from `desdis describe`'s descriptors of
/// every patch, with the rule written out independently: threshold at the ceil(0.95 P)-th smallest
/// positive distance, FPR = negatives at or below it / negatives.
#[test]
fn phototour_fpr95_matches_an_independent_computation() {
    let weights = concat!(env!("CARGO_MANIFEST_DIR"), "/../../data/weights/desdis-32.safetensors");
    let tmp = tempfile::tempdir().unwrap();
    let scene = tmp.path().join("scene");
    let pairs_path = write_phototour_fixture(&scene);
    let json = tmp.path().join("eval.json");
    let args = ["eval", "--weights", weights, "--phototour", scene.to_str().unwrap()];
    let o = desdis(
        &[&args[..], &["--pairs", pairs_path.to_str().unwrap(), "--json", json.to_str().unwrap()]].concat(),
    );
    assert!(o.status.success(), "eval failed: {}", String::from_utf8_lossy(&o.stderr));
    let reported: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let reported = reported["fpr95"].as_f64().unwrap();

    let all = tmp.path().join("all.npy");
    describe_ok(weights, &scene, &all);
    let (shape, desc) = read_npy_f32(&all);
    let dim = shape[1] as usize;
    let mut positives = Vec::new();
    let mut negatives = Vec::new();
    for line in std::fs::read_to_string(&pairs_path).unwrap().lines() {
        let f: Vec<usize> = line.split_whitespace().map(|t| t.parse().unwrap()).collect();
        let (a, b) = (&desc[f[0] * dim..][..dim], &desc[f[3] * dim..][..dim]);
        let d = a.iter().zip(b).map(|(x, y)| ((x - y) as f64).powi(2)).sum::<f64>().sqrt();
        if f[1] == f[4] {
            positives.push(d)
        } else {
            negatives.push(d)
        }
    }
    positives.sort_by(f64::total_cmp);
    let threshold = positives[(0.95 * positives.len() as f64).ceil() as usize - 1];
    let expected =
        negatives.iter().filter(|&&d| d <= threshold + 1e-6).count() as f64 / negatives.len() as f64;
    assert!(expected > 0.0 && expected < 1.0, "a fixture with FPR95 = {expected} checks little");
    assert!((reported - expected).abs() < 1e-9, "desdis eval: {reported}, independent: {expected}");
}

/// `eval --sequence --jitter`: perturbed frames are harder than exact ones, the keypoint budget
/// is honoured, and the JSON says what was scored.
#[test]
fn eval_jitter_levels_are_harder_than_exact_frames() {
    let Some(seq) = shared_data("hpatches-sequences/v_wormhole") else { return };
    let Some(weights) = shared_data("desdis-official/DesDis-8.pth") else { return };
    let score = |jitter: &str, keypoints: &str| -> serde_json::Value {
        let o = desdis(&[
            "eval",
            "--weights",
            weights.to_str().unwrap(),
            "--sequence",
            seq.to_str().unwrap(),
            "--jitter",
            jitter,
            "--max-keypoints",
            keypoints,
        ]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        serde_json::from_slice(&o.stdout).unwrap()
    };
    let (exact, tough) = (score("none", "300"), score("tough", "300"));
    assert_eq!(tough["jitter"], "tough");
    assert!(exact["keypoints"].as_u64().unwrap() <= 300);
    assert!(tough["matching_map"].as_f64().unwrap() < exact["matching_map"].as_f64().unwrap());
    assert!(tough["fpr95"].as_f64().unwrap() > exact["fpr95"].as_f64().unwrap());
    assert_fails(&["eval", "--weights", "w", "--sequence", "s", "--jitter", "wild"], &["wild"]);
}
