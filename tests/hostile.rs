//! Hostile inputs to `desdis describe` and `desdis eval`: each must exit 1 with one clear line that
//! names the file, never panic or abort, never write non-finite descriptors, never replace a special
//! file. None of these needs the shared data: the checkpoints are the shipped student, edited.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use candle_core::{Device, Tensor};
use desdis_checkpoint as weights;

const SHIPPED: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../data/weights/desdis-32.safetensors");

fn desdis(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_desdis")).args(args).output().expect("the desdis binary runs")
}

fn s(p: &Path) -> String {
    p.to_str().expect("UTF-8 temp path").to_string()
}

/// Runs `args`, expecting exit 1, no panic, and every needle in stderr; returns stderr.
fn fails(args: &[&str], needles: &[&str]) -> String {
    let o = desdis(args);
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert_eq!(o.status.code(), Some(1), "{args:?} should exit 1: {err}");
    assert!(!err.contains("panicked"), "{args:?} panicked: {err}");
    for needle in needles {
        assert!(err.contains(needle), "stderr of {args:?} should mention {needle:?}: {err}");
    }
    err
}

/// A version-1 `.npy` with the given header dict and raw data bytes.
fn raw_npy(path: &Path, header: &str, data: &[u8]) {
    let mut text = header.to_string();
    while !(10 + text.len() + 1).is_multiple_of(64) {
        text.push(' ');
    }
    text.push('\n');
    let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
    bytes.extend((text.len() as u16).to_le_bytes());
    bytes.extend(text.as_bytes());
    bytes.extend(data);
    std::fs::write(path, bytes).unwrap();
}

fn good_patches(dir: &Path) -> PathBuf {
    let path = dir.join("patches.npy");
    raw_npy(&path, "{'descr': '|u1', 'fortran_order': False, 'shape': (2, 32, 32), }", &[100; 2048]);
    path
}

fn describe_args<'a>(weights: &'a str, input: &'a str, output: &'a str) -> Vec<&'a str> {
    vec!["describe", "--weights", weights, "--input", input, "--output", output]
}

#[test]
fn npy_headers_with_impossible_sizes_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let out = s(&tmp.path().join("out.npy"));
    let cases = [
        ("overflow.npy", "'|u1'", "(4611686018427387904, 4611686018427387904, 32)", 64, "addressed"),
        // 2^20 * (2^44 + 1) wraps to 2^20 values in 64-bit arithmetic.
        ("wraps_f32.npy", "'<f4'", "(1048576, 17592186044417, 1)", 1 << 22, "npy"),
        ("wraps_u8.npy", "'|u1'", "(1048576, 17592186044417, 1)", 1 << 20, "npy"),
        ("short.npy", "'|u1'", "(4, 32, 32)", 1000, "truncated"),
        ("huge_declared.npy", "'|u1'", "(1000000000, 64, 64)", 4096, "truncated"),
        ("zero_dim.npy", "'|u1'", "(3, 0, 32)", 0, "no patches"),
    ];
    for (name, descr, shape, data_len, needle) in cases {
        let path = tmp.path().join(name);
        let header = format!("{{'descr': {descr}, 'fortran_order': False, 'shape': {shape}, }}");
        raw_npy(&path, &header, &vec![0u8; data_len]);
        fails(&describe_args(SHIPPED, &s(&path), &out), &[name, needle]);
    }
    let garbage = tmp.path().join("garbage.npy");
    std::fs::write(&garbage, b"\x93NUMPY\x01\x00\xff\x00{'descr").unwrap();
    fails(&describe_args(SHIPPED, &s(&garbage), &out), &["garbage.npy"]);
    assert!(!tmp.path().join("out.npy").exists());
}

#[test]
fn huge_desdis_widths_are_refused_before_allocating() {
    let tmp = tempfile::tempdir().unwrap();
    let input = s(&good_patches(tmp.path()));
    let out = s(&tmp.path().join("out.npy"));
    for arch in ["desdis-100000", "desdis-99999999999999999999", "desdis-0"] {
        let mut args = describe_args(SHIPPED, &input, &out);
        args.extend(["--arch", arch]);
        fails(&args, &[arch, "1..=1024"]);
    }
    let run = s(&tmp.path().join("run"));
    fails(&["train", "--arch", "desdis-5000000", "--out", &run], &["desdis-5000000", "1..=1024"]);
    assert!(!tmp.path().join("run").join("config.toml").exists(), "nothing written for a refused arch");
}

/// The shipped student with `edit` applied, saved as safetensors in `dir`.
fn edited(dir: &Path, name: &str, edit: impl FnOnce(&mut HashMap<String, Tensor>, &str)) -> PathBuf {
    let mut sd = weights::load(SHIPPED, &Device::Cpu).expect("shipped weights load").tensors;
    let mut keys: Vec<String> = sd.keys().filter(|k| k.ends_with(".weight")).cloned().collect();
    keys.sort();
    edit(&mut sd, &keys[0]);
    let path = dir.join(name);
    weights::save_safetensors(&sd, &path).unwrap();
    path
}

#[test]
fn non_finite_weights_are_refused_with_the_tensor_name() {
    let tmp = tempfile::tempdir().unwrap();
    let input = s(&good_patches(tmp.path()));
    let out = tmp.path().join("out.npy");
    let set = |value: f32| {
        move |sd: &mut HashMap<String, Tensor>, key: &str| {
            let t = &sd[key];
            let mut v = t.flatten_all().unwrap().to_vec1::<f32>().unwrap();
            let mid = v.len() / 2;
            v[mid] = value;
            let replaced = Tensor::from_vec(v, t.dims(), &Device::Cpu).unwrap();
            sd.insert(key.to_string(), replaced);
        }
    };
    let inf = edited(tmp.path(), "inf.safetensors", set(f32::INFINITY));
    let nan = edited(tmp.path(), "nan.safetensors", set(f32::NAN));
    let all_nan = edited(tmp.path(), "all_nan.safetensors", |sd, _| {
        for t in sd.values_mut() {
            *t = (t.ones_like().unwrap() * f64::NAN).unwrap();
        }
    });
    for path in [inf, nan, all_nan] {
        let err = fails(&describe_args(&s(&path), &input, &s(&out)), &[&s(&path), "non-finite", "tensor `"]);
        assert_eq!(err.lines().count(), 1, "one line: {err}");
    }
    assert!(!out.exists(), "no descriptors written from a damaged checkpoint");
}

#[cfg(unix)]
#[test]
fn special_output_paths_are_refused_not_replaced() {
    use std::os::unix::fs::FileTypeExt;
    let tmp = tempfile::tempdir().unwrap();
    let input = s(&good_patches(tmp.path()));
    let fifo = tmp.path().join("fifo");
    assert!(Command::new("mkfifo").arg(&fifo).status().unwrap().success());
    let target = tmp.path().join("target.npy");
    std::fs::write(&target, b"keep me").unwrap();
    let link = tmp.path().join("link.npy");
    std::os::unix::fs::symlink(&target, &link).unwrap();
    let dir = tmp.path().join("dir.npy");
    std::fs::create_dir(&dir).unwrap();
    for (path, what) in [(&fifo, "special file"), (&link, "symbolic link"), (&dir, "directory")] {
        fails(&describe_args(SHIPPED, &input, &s(path)), &[&s(path), what, "not a regular file"]);
    }
    assert!(std::fs::symlink_metadata(&fifo).unwrap().file_type().is_fifo(), "the FIFO is still a FIFO");
    assert!(std::fs::symlink_metadata(&link).unwrap().file_type().is_symlink(), "the link is still a link");
    assert_eq!(std::fs::read(&target).unwrap(), b"keep me");
    // eval --json obeys the same rule.
    let args = ["eval", "--weights", SHIPPED, "--sequence", &s(tmp.path()), "--json", &s(&fifo)];
    fails(&args, &["fifo", "not a regular file"]);
    // A regular file is replaced as before.
    let regular = tmp.path().join("regular.npy");
    std::fs::write(&regular, b"old").unwrap();
    let o = desdis(&describe_args(SHIPPED, &input, &s(&regular)));
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(std::fs::read(&regular).unwrap().starts_with(b"\x93NUMPY"));
}

#[cfg(unix)]
#[test]
fn special_input_files_are_refused_not_read_forever() {
    let tmp = tempfile::tempdir().unwrap();
    let fifo = tmp.path().join("patches.npy");
    assert!(Command::new("mkfifo").arg(&fifo).status().unwrap().success());
    let out = s(&tmp.path().join("out.npy"));
    fails(&describe_args(SHIPPED, &s(&fifo), &out), &["patches.npy", "not a regular file"]);
}

#[test]
fn each_cause_is_printed_once_and_logs_carry_no_colour_codes() {
    let tmp = tempfile::tempdir().unwrap();
    // A PhotoTour folder with a sheet but no info.txt: an OS error under a data error.
    let empty = tmp.path().join("empty-folder");
    std::fs::create_dir(&empty).unwrap();
    std::fs::write(empty.join("patches0000.bmp"), b"BM").unwrap();
    let out = s(&tmp.path().join("out.npy"));
    let err = fails(&describe_args(SHIPPED, &s(&empty), &out), &["empty-folder"]);
    assert_eq!(err.matches("os error").count(), 1, "a cause printed twice: {err}");
    assert_eq!(err.lines().count(), 1, "{err}");

    let input = s(&good_patches(tmp.path()));
    let o = Command::new(env!("CARGO_BIN_EXE_desdis"))
        .args(describe_args(SHIPPED, &input, &out))
        .env("DESDIS_LOG", "info")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    assert!(err.contains("INFO"), "an info line is logged: {err}");
    assert!(!err.contains('\x1b'), "ANSI codes in a log written to a pipe: {err:?}");
}

/// A two-image sequence whose homography sends image 1 far outside image 2.
fn sequence_outside(dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    let side = 160u32;
    let pixels: Vec<u8> = (0..side * side)
        .map(|i| ((i.wrapping_mul(2_654_435_761) ^ (i / side).wrapping_mul(40_503)) >> 24) as u8)
        .collect();
    let image = desdis_data::GrayImage::from_raw(side, side, pixels).unwrap();
    image.save(dir.join("1.png")).unwrap();
    image.save(dir.join("2.png")).unwrap();
    std::fs::write(dir.join("H_1_2"), "1 0 100000\n0 1 100000\n0 0 1\n").unwrap();
}

#[test]
fn a_sequence_mapped_outside_its_images_is_named() {
    let tmp = tempfile::tempdir().unwrap();
    let seq = tmp.path().join("v_outside");
    sequence_outside(&seq);
    fails(&["eval", "--weights", SHIPPED, "--sequence", &s(&seq)], &["v_outside"]);
}
