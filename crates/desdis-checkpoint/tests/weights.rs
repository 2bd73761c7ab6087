//! Checkpoint reading and writing against fixtures made by an independent reader and writer
//! (tests/fixtures/weights/make_fixtures.py), plus hostile and damaged inputs.

use std::collections::{BTreeMap, HashMap};
use std::io::{Cursor, Read, Write};
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use desdis_checkpoint::Error;
use desdis_checkpoint::{load, read_pth, resolve, resolve_in_cache, save_safetensors, HubSource};
use desdis_stdx::testing::shared_data;

fn fixture_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/weights")
}

/// Path of a fixture. The synthetic checkpoints (`*.pth`) are kept hex-encoded in
/// `mixed_checkpoints.hex` (the repository holds no checkpoint files) and written out once per
/// test process into a temporary folder.
fn fixture(name: &str) -> PathBuf {
    static CHECKPOINTS: std::sync::OnceLock<tempfile::TempDir> = std::sync::OnceLock::new();
    if !name.ends_with(".pth") {
        return fixture_dir().join(name);
    }
    let dir = CHECKPOINTS.get_or_init(|| {
        let dir = tempfile::tempdir().expect("temporary folder");
        let text =
            std::fs::read_to_string(fixture_dir().join("mixed_checkpoints.hex")).expect("committed fixture");
        for line in text.lines().filter(|line| !line.starts_with('#') && !line.is_empty()) {
            let (file, hex) = line.split_once('\t').expect("name<TAB>hex");
            std::fs::write(dir.path().join(file), decode_hex(hex)).expect("write checkpoint");
        }
        dir
    });
    dir.path().join(name)
}

fn decode_hex(hex: &str) -> Vec<u8> {
    assert!(hex.len().is_multiple_of(2), "odd-length hex in fixture");
    (0..hex.len()).step_by(2).map(|i| u8::from_str_radix(&hex[i..i + 2], 16).expect("hex digit")).collect()
}

fn read_fixture(name: &str) -> Vec<u8> {
    std::fs::read(fixture(name)).expect("committed fixture")
}

fn values(tensor: &Tensor) -> Vec<f64> {
    tensor.to_dtype(DType::F64).and_then(|t| t.flatten_all()).and_then(|t| t.to_vec1()).expect("convertible")
}

/// Boxed error: the crate's error is large, and clippy rightly objects to returning it by value.
fn load_path(path: &Path) -> Result<desdis_checkpoint::StateDict, Box<Error>> {
    load(path.to_str().expect("utf-8 path"), &Device::Cpu).map_err(Box::new)
}

/// Lines of a tab-separated fixture, without the `#` header.
fn tsv_rows(name: &str) -> Vec<Vec<String>> {
    let text = String::from_utf8(read_fixture(name)).expect("utf-8 fixture");
    text.lines()
        .filter(|line| !line.starts_with('#') && !line.is_empty())
        .map(|line| line.split('\t').map(str::to_owned).collect())
        .collect()
}

fn parse_list<T: std::str::FromStr>(field: &str) -> Vec<T> {
    field
        .split(',')
        .filter(|s| !s.is_empty())
        .map(|s| s.parse().unwrap_or_else(|_| panic!("bad number `{s}` in fixture")))
        .collect()
}

fn assert_close(what: &str, got: f64, want: f64, scale: f64) {
    let tol = 1e-6 * scale.abs().max(1e-30);
    assert!((got - want).abs() <= tol, "{what}: got {got}, want {want} (tolerance {tol})");
}

// ---------------------------------------------------------------------------------------------
// Real checkpoints against the independent numpy reader.

#[test]
fn official_checkpoints_match_the_reference_reader() {
    let mut by_file: BTreeMap<String, Vec<Vec<String>>> = BTreeMap::new();
    for row in tsv_rows("official_stats.tsv") {
        by_file.entry(row[0].clone()).or_default().push(row);
    }
    assert_eq!(by_file.len(), 7, "4 DesDis zip checkpoints and 3 legacy TFeat checkpoints");
    for (rel, rows) in by_file {
        let Some(path) = shared_data(&rel) else { continue };
        let state = load_path(&path).unwrap_or_else(|e| panic!("{rel}: {e}"));
        assert_eq!(state.path, path);
        let expected_keys: Vec<&str> = rows.iter().map(|r| r[1].as_str()).collect();
        let mut sorted_expected = expected_keys.clone();
        sorted_expected.sort_unstable();
        assert_eq!(state.sorted_keys(), sorted_expected, "{rel}: key set");
        for row in &rows {
            check_stats(&rel, row, &state.tensors[&row[1]]);
        }
        // The direct entry point reads the same.
        let direct = read_pth(&path, &Device::Cpu).expect("readable");
        assert_eq!(direct.len(), rows.len());
    }
}

fn check_stats(rel: &str, row: &[String], tensor: &Tensor) {
    let what = format!("{rel} `{}`", row[1]);
    let dtype = match row[2].as_str() {
        "float32" => DType::F32,
        "int64" => DType::I64,
        other => panic!("{what}: unexpected fixture dtype {other}"),
    };
    assert_eq!(tensor.dtype(), dtype, "{what}: dtype");
    assert_eq!(tensor.dims(), parse_list::<usize>(&row[3]).as_slice(), "{what}: shape");
    let data = values(tensor);
    let (sum, abs_sum): (f64, f64) = (parse_list::<f64>(&row[4])[0], parse_list::<f64>(&row[5])[0]);
    assert_close(&format!("{what} sum"), data.iter().sum(), sum, abs_sum);
    assert_close(&format!("{what} abs sum"), data.iter().map(|v| v.abs()).sum(), abs_sum, abs_sum);
    for (i, want) in parse_list::<f64>(&row[6]).into_iter().enumerate() {
        assert_close(&format!("{what} value {i}"), data[i], want, want);
    }
}

// ---------------------------------------------------------------------------------------------
// Every dtype, strides, offsets, views, parameters, state_dict wrapper, pickle protocols 2 and 4.

struct Expected {
    dtype: DType,
    shape: Vec<usize>,
    values: Vec<f64>,
}

fn mixed_expected() -> BTreeMap<String, Expected> {
    tsv_rows("mixed_expected.tsv")
        .into_iter()
        .map(|row| {
            let dtype = match row[1].as_str() {
                "f32" => DType::F32,
                "f64" => DType::F64,
                "f16" => DType::F16,
                "bf16" => DType::BF16,
                "i64" => DType::I64,
                "i32" => DType::I32,
                "i16" => DType::I16,
                "u8" => DType::U8,
                other => panic!("unexpected fixture dtype {other}"),
            };
            let values = parse_list(row.get(3).map_or("", String::as_str));
            (row[0].clone(), Expected { dtype, shape: parse_list(&row[2]), values })
        })
        .collect()
}

fn check_mixed(name: &str, tensors: &HashMap<String, Tensor>) {
    let mut expected = mixed_expected();
    if !name.contains("legacy") {
        expected.remove("f32.in_view");
    }
    let mut keys: Vec<&String> = tensors.keys().collect();
    keys.sort();
    assert_eq!(keys, expected.keys().collect::<Vec<_>>(), "{name}: only the tensors of `state_dict`");
    for (key, want) in &expected {
        let tensor = &tensors[key];
        assert_eq!(tensor.dtype(), want.dtype, "{name} `{key}` dtype");
        assert_eq!(tensor.dims(), want.shape.as_slice(), "{name} `{key}` shape");
        assert_eq!(values(tensor), want.values, "{name} `{key}` values");
    }
}

#[test]
fn reads_every_dtype_and_layout_from_zip_and_legacy_files() {
    for name in ["mixed_zip_p2.pth", "mixed_zip_p4.pth", "mixed_legacy.pth"] {
        let state = load_path(&fixture(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
        check_mixed(name, &state.tensors);
        let direct = read_pth(&fixture(name), &Device::Cpu).expect("readable");
        check_mixed(name, &direct);
    }
}

// ---------------------------------------------------------------------------------------------
// Damaged and hostile inputs: an error naming the file and the problem, never a panic.

fn write_temp(dir: &tempfile::TempDir, name: &str, bytes: &[u8]) -> PathBuf {
    let path = dir.path().join(name);
    std::fs::write(&path, bytes).expect("temp file");
    path
}

/// Loads `bytes` from a temp file and checks the error is a checkpoint error naming the file
/// and containing every one of `needles`.
fn assert_load_error(name: &str, bytes: &[u8], needles: &[&str]) {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = write_temp(&dir, name, bytes);
    let err = load_path(&path).expect_err("must be rejected");
    assert!(matches!(*err, Error::Checkpoint { .. }), "{name}: wrong error kind: {err:?}");
    let msg = err.to_string();
    assert!(msg.contains(&path.display().to_string()), "{name}: message does not name the file: {msg}");
    for needle in needles {
        assert!(msg.contains(needle), "{name}: message lacks `{needle}`: {msg}");
    }
}

/// A zip checkpoint with one `data.pkl` and the given storages.
fn zip_checkpoint(pickle: &[u8], storages: &[(&str, &[u8])]) -> Vec<u8> {
    let mut writer = zip::ZipWriter::new(Cursor::new(Vec::new()));
    let options = zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
    writer.start_file("evil/data.pkl", options).expect("zip");
    writer.write_all(pickle).expect("zip");
    for (key, data) in storages {
        writer.start_file(format!("evil/data/{key}"), options).expect("zip");
        writer.write_all(data).expect("zip");
    }
    writer.finish().expect("zip").into_inner()
}

/// A copy of a zip fixture with `edit` applied to every entry's (name, bytes).
fn rewrite_zip(name: &str, edit: impl Fn(&str, Vec<u8>) -> Option<Vec<u8>>) -> Vec<u8> {
    let mut archive = zip::ZipArchive::new(Cursor::new(read_fixture(name))).expect("fixture zip");
    let mut writer = zip::ZipWriter::new(Cursor::new(Vec::new()));
    let options = zip::write::SimpleFileOptions::default();
    for i in 0..archive.len() {
        let mut entry = archive.by_index(i).expect("entry");
        let entry_name = entry.name().to_owned();
        let mut data = Vec::new();
        entry.read_to_end(&mut data).expect("entry data");
        if let Some(data) = edit(&entry_name, data) {
            writer.start_file(entry_name, options).expect("zip");
            writer.write_all(&data).expect("zip");
        }
    }
    writer.finish().expect("zip").into_inner()
}

/// The three header pickles of a legacy file, followed by `body`.
fn legacy_stream(body: &[u8]) -> Vec<u8> {
    let mut out = b"\x80\x02\x8a\x0a\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19.".to_vec();
    out.extend_from_slice(b"\x80\x02M\xe9\x03.");
    out.extend_from_slice(b"\x80\x02}.");
    out.extend_from_slice(body);
    out
}

fn binunicode(s: &str) -> Vec<u8> {
    let mut out = vec![b'X'];
    out.extend_from_slice(&(s.len() as u32).to_le_bytes());
    out.extend_from_slice(s.as_bytes());
    out
}

fn int_tuple(items: &[u32]) -> Vec<u8> {
    let mut out = vec![b'('];
    for item in items {
        out.push(b'J');
        out.extend_from_slice(&item.to_le_bytes());
    }
    out.push(b't');
    out
}

/// `{'w': _rebuild_tensor_v2(storage('0', FloatStorage, numel), offset, size, stride)}`, written
/// by hand so that the storage header can lie.
fn one_tensor_pickle(numel: u32, offset: u32, size: &[u32], stride: &[u32]) -> Vec<u8> {
    let mut out = b"\x80\x02}(".to_vec();
    out.extend(binunicode("w"));
    out.extend_from_slice(b"ctorch._utils\n_rebuild_tensor_v2\n((");
    out.extend(binunicode("storage"));
    out.extend_from_slice(b"ctorch\nFloatStorage\n");
    out.extend(binunicode("0"));
    out.extend(binunicode("cpu"));
    out.push(b'J');
    out.extend_from_slice(&numel.to_le_bytes());
    out.extend_from_slice(b"tQJ");
    out.extend_from_slice(&offset.to_le_bytes());
    out.extend(int_tuple(size));
    out.extend(int_tuple(stride));
    out.extend_from_slice(b"\x89NtRu.");
    out
}

#[test]
fn hand_written_pickle_reads_and_checks_its_storage_extent() {
    let data: Vec<u8> = [1.0f32, 2.0, 3.0, 4.0].iter().flat_map(|v| v.to_le_bytes()).collect();
    let good = zip_checkpoint(&one_tensor_pickle(4, 1, &[2], &[2]), &[("0", &data)]);
    let dir = tempfile::tempdir().expect("temp dir");
    let state = load_path(&write_temp(&dir, "good.pth", &good)).expect("valid checkpoint");
    assert_eq!(values(&state.tensors["w"]), vec![2.0, 4.0]);

    let past_end = zip_checkpoint(&one_tensor_pickle(4, 1, &[3], &[2]), &[("0", &data)]);
    assert_load_error(
        "past_end.pth",
        &past_end,
        &["tensor `w`", "storage `0` is too short", "reaches element 5"],
    );
    // A header claiming 2^31 elements over 16 bytes of data fails before allocating anything.
    let huge = zip_checkpoint(&one_tensor_pickle(0x7fff_ffff, 0, &[4], &[1]), &[("0", &data)]);
    assert_load_error("huge.pth", &huge, &["storage `0` is too short", "16 bytes"]);
    let overlapping = zip_checkpoint(&one_tensor_pickle(4, 0, &[1000, 4], &[0, 1]), &[("0", &data)]);
    assert_load_error("overlap.pth", &overlapping, &["overlaps itself"]);
}

#[test]
fn storage_shorter_than_declared_is_rejected() {
    // Storage '5' holds the 8 int32 values behind `i32.every_other`; keep only 3 of them.
    let short = rewrite_zip("mixed_zip_p2.pth", |name, data| {
        Some(if name == "my_model/data/5" { data[..12].to_vec() } else { data })
    });
    assert_load_error(
        "short.pth",
        &short,
        &["tensor `i32.every_other`", "storage `5` is too short", "12 bytes"],
    );
    let missing = rewrite_zip("mixed_zip_p2.pth", |name, data| (name != "my_model/data/5").then_some(data));
    assert_load_error("missing_storage.pth", &missing, &["zip entry `my_model/data/5`"]);
}

#[test]
fn truncated_files_are_rejected() {
    for name in ["mixed_zip_p2.pth", "mixed_zip_p4.pth"] {
        let bytes = read_fixture(name);
        for keep in [bytes.len() / 2, bytes.len() - 10] {
            assert_load_error(name, &bytes[..keep], &["not a valid zip archive"]);
        }
    }
    let legacy = read_fixture("mixed_legacy.pth");
    assert_load_error("legacy_tail.pth", &legacy[..legacy.len() - 5], &["truncated file: storage"]);
    assert_load_error("legacy_pickle.pth", &legacy[..300], &["state dict pickle", "unexpected end of data"]);
    if let Some(path) = shared_data("tfeat/tfeat-liberty.params") {
        let real = std::fs::read(path).expect("readable");
        assert_load_error("tfeat_cut.params", &real[..real.len() * 3 / 5], &["truncated file: storage"]);
    }
    if let Some(path) = shared_data("desdis-official/DesDis-8.pth") {
        let real = std::fs::read(path).expect("readable");
        assert_load_error("desdis_cut.pth", &real[..real.len() / 2], &["not a valid zip archive"]);
    }
}

#[test]
fn random_bytes_are_not_a_checkpoint() {
    // A fixed linear congruential sequence: arbitrary but reproducible bytes.
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let bytes: Vec<u8> = (0..4096)
        .map(|_| {
            state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            (state >> 56) as u8
        })
        .collect();
    assert_load_error("random.bin", &bytes, &["not a PyTorch zip, legacy PyTorch or safetensors file"]);
    assert_load_error("empty.bin", &[], &["not a PyTorch zip, legacy PyTorch or safetensors file"]);

    let dir = tempfile::tempdir().expect("temp dir");
    let path = write_temp(&dir, "random.pth", &bytes);
    let err = read_pth(&path, &Device::Cpu).expect_err("not a pth");
    assert!(err.to_string().contains("not a PyTorch checkpoint"), "{err}");
}

#[test]
fn forbidden_globals_are_rejected_without_running_anything() {
    let marker = std::env::temp_dir().join("desdis-weights-test-must-not-exist");
    let command = format!("touch {}", marker.display());
    let mut os_system = b"\x80\x02cos\nsystem\n".to_vec();
    os_system.extend(binunicode(&command));
    os_system.extend_from_slice(b"\x85R.");
    assert_load_error(
        "os_system.pth",
        &zip_checkpoint(&os_system, &[]),
        &["forbidden global `os.system`", "data.pkl"],
    );

    let mut posix = b"\x80\x04\x8c\x05posix\x8c\x06system\x93".to_vec();
    posix.extend(binunicode(&command));
    posix.extend_from_slice(b"\x85R.");
    assert_load_error("posix_system.pth", &zip_checkpoint(&posix, &[]), &["forbidden global `posix.system`"]);

    let mut eval = b"\x80\x02}(X\x01\x00\x00\x00acbuiltins\neval\n".to_vec();
    eval.extend(binunicode("print(1)"));
    eval.extend_from_slice(b"\x85Ru.");
    assert_load_error(
        "eval_legacy.pth",
        &legacy_stream(&eval),
        &["forbidden global `builtins.eval`", "legacy state dict"],
    );

    // An allowed global that is a type, not a rebuild function, cannot be called either.
    let call_storage = b"\x80\x02ctorch\nFloatStorage\n)R.";
    assert_load_error(
        "call_storage.pth",
        &zip_checkpoint(call_storage, &[]),
        &["calling `torch.FloatStorage` is not allowed"],
    );
    assert!(!marker.exists(), "a pickle ran a command");
}

#[test]
fn unknown_opcodes_and_non_dict_pickles_are_rejected() {
    assert_load_error("opcode.pth", &zip_checkpoint(b"\x80\x02I1\n.", &[]), &["unsupported pickle opcode"]);
    assert_load_error("list.pth", &zip_checkpoint(b"\x80\x02].", &[]), &["the pickle holds a list"]);
    let no_pickle =
        rewrite_zip("mixed_zip_p2.pth", |name, data| (!name.ends_with("data.pkl")).then_some(data));
    assert_load_error("no_pickle.pth", &no_pickle, &["no `<dir>/data.pkl`"]);
}

#[test]
fn missing_file_is_an_io_error_naming_it() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("absent.pth");
    let err = load_path(&path).expect_err("absent");
    assert!(matches!(*err, Error::Io { .. }), "{err:?}");
    assert!(err.to_string().contains("absent.pth"), "{err}");
    let err = read_pth(&path, &Device::Cpu).expect_err("absent");
    assert!(err.to_string().contains("absent.pth"), "{err}");
}

// ---------------------------------------------------------------------------------------------
// Safetensors writing.

#[test]
fn safetensors_round_trip_is_identical_and_atomic() {
    let source = load_path(&fixture("mixed_zip_p2.pth")).expect("fixture");
    let dir = tempfile::tempdir().expect("temp dir");
    let out = dir.path().join("weights.safetensors");
    std::fs::write(&out, b"old content to be replaced").expect("temp file");
    save_safetensors(&source.tensors, &out).expect("saved");

    let entries: Vec<_> =
        std::fs::read_dir(dir.path()).expect("dir").map(|e| e.expect("entry").file_name()).collect();
    assert_eq!(
        entries,
        vec![std::ffi::OsString::from("weights.safetensors")],
        "no temporary file left behind"
    );

    let back = load_path(&out).expect("reload");
    assert_eq!(back.sorted_keys(), source.sorted_keys());
    for (key, tensor) in &source.tensors {
        let copy = &back.tensors[key];
        assert_eq!(copy.dtype(), tensor.dtype(), "`{key}` dtype");
        assert_eq!(copy.dims(), tensor.dims(), "`{key}` shape");
        assert_eq!(values(copy), values(tensor), "`{key}` values");
    }
}

#[test]
fn failed_save_leaves_nothing_behind() {
    let dir = tempfile::tempdir().expect("temp dir");
    let tensors =
        HashMap::from([("x".to_string(), Tensor::new(&[1f32, 2.0], &Device::Cpu).expect("tensor"))]);
    let out = dir.path().join("no_such_dir").join("w.safetensors");
    let err = save_safetensors(&tensors, &out).expect_err("parent does not exist");
    assert!(err.to_string().contains("no_such_dir"), "{err}");
    assert_eq!(std::fs::read_dir(dir.path()).expect("dir").count(), 0);
}

// ---------------------------------------------------------------------------------------------
// hf:// sources through a pre-populated hub cache (no network).

const COMMIT: &str = "0123456789abcdef0123456789abcdef01234567";

/// A hub cache holding `models--org--repo` with refs `main` and `v1` (the latter with a trailing
/// newline) pointing at one snapshot that contains `sub/w.safetensors`.
fn hub_cache() -> (tempfile::TempDir, PathBuf) {
    let cache = tempfile::tempdir().expect("temp dir");
    let repo = cache.path().join("models--org--repo");
    std::fs::create_dir_all(repo.join("refs")).expect("refs");
    std::fs::write(repo.join("refs/main"), COMMIT).expect("ref");
    std::fs::write(repo.join("refs/v1"), format!("{COMMIT}\n")).expect("ref");
    let snapshot = repo.join("snapshots").join(COMMIT).join("sub");
    std::fs::create_dir_all(&snapshot).expect("snapshot");
    let file = snapshot.join("w.safetensors");
    let tensors =
        HashMap::from([("k".to_string(), Tensor::new(&[3f32, 4.0], &Device::Cpu).expect("tensor"))]);
    save_safetensors(&tensors, &file).expect("saved");
    (cache, file)
}

#[test]
fn hub_sources_resolve_from_the_cache() {
    let (cache, file) = hub_cache();
    for source in ["hf://org/repo/sub/w.safetensors", "hf://org/repo@v1/sub/w.safetensors"] {
        let path = resolve(source, Some(cache.path())).unwrap_or_else(|e| panic!("{source}: {e}"));
        assert_eq!(path, file, "{source}");
    }
    let by_commit = format!("hf://org/repo@{COMMIT}/sub/w.safetensors");
    assert_eq!(resolve_in_cache(&by_commit, cache.path()).expect("cached"), file);

    let state = load_path(&file).expect("loadable");
    assert_eq!(values(&state.tensors["k"]), vec![3.0, 4.0]);
    assert_eq!(resolve("plain/path.pth", None).expect("plain"), PathBuf::from("plain/path.pth"));
}

#[test]
fn missing_hub_file_names_repo_revision_file_and_cache() {
    let (cache, _) = hub_cache();
    for (source, revision) in
        [("hf://org/repo/sub/absent.pth", "main"), ("hf://org/repo@v2/sub/w.safetensors", "v2")]
    {
        let err = resolve_in_cache(source, cache.path()).expect_err("not cached");
        let msg = err.to_string();
        for needle in [
            "org/repo",
            revision,
            source.rsplit_once('/').expect("file").1,
            &cache.path().display().to_string(),
        ] {
            assert!(msg.contains(needle), "message lacks `{needle}`: {msg}");
        }
    }
}

#[test]
fn malformed_hub_sources_are_rejected() {
    let parsed = HubSource::parse("hf://org/repo@dev/a/b.pth").expect("valid");
    assert_eq!(parsed, HubSource { repo: "org/repo".into(), revision: "dev".into(), file: "a/b.pth".into() });
    for bad in [
        "hf://org",
        "hf://org/repo",
        "hf://org/repo/../../etc/passwd",
        "hf://org/repo@/w.pth",
        "hf:///repo/w.pth",
    ] {
        let err = resolve(bad, Some(Path::new("/nonexistent"))).expect_err(bad);
        assert!(err.to_string().contains("invalid hub source"), "{bad}: {err}");
    }
}
