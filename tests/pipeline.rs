//! End-to-end tests of the image pipeline through the `desdis` binary: `extract`, `match`,
//! `export colmap` and `export hpatches` on small synthetic images made here (and two JPEG
//! fixtures under tests/fixtures/pipeline/, made by the script beside them), with the default
//! weights built into the binary. Hostile images must give one clear error naming the file,
//! never a panic, a half-written output or a stray temporary file.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use desdis_h5::{pair_key, read_features, read_matches, ImageFeatures, PairMatches};
use image::{GrayImage, ImageBuffer, Luma, RgbImage};

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/fixtures/pipeline");

/// Descriptor dimension of the built-in DesDis-32 student (32 is the width of its layers).
const DIM: usize = 128;

/// Keypoints per image in these tests: enough to match, few enough to stay fast.
const MAX_KP: &str = "300";

/// The known homography from image A's pixels to image B's (mild rotation, zoom, perspective).
const H_AB: [[f64; 3]; 3] = [[0.92, 0.10, 6.0], [-0.08, 0.95, 4.0], [0.0003, 0.0002, 1.0]];

fn desdis(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_desdis")).args(args).output().expect("the desdis binary runs")
}

fn s(p: &Path) -> String {
    p.to_str().expect("UTF-8 temp path").to_string()
}

/// Runs `args`, expecting success; returns (stdout, stderr).
fn ok(args: &[&str]) -> (String, String) {
    let o = desdis(args);
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert!(o.status.success(), "{args:?} failed ({:?}): {err}", o.status.code());
    (out, err)
}

/// Runs `args`, expecting a non-zero exit without a panic and every needle in stderr.
fn fails(args: &[&str], needles: &[&str]) -> String {
    let o = desdis(args);
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert!(!o.status.success(), "{args:?} should fail: {err}");
    assert!(o.status.code().is_some(), "{args:?} was killed by a signal: {err}");
    assert!(!err.contains("panicked"), "{args:?} panicked: {err}");
    for needle in needles {
        assert!(err.contains(needle), "stderr of {args:?} should mention {needle:?}: {err}");
    }
    err
}

/// The file names in `dir` (hidden ones included: temporary files start with a dot).
fn listing(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// A small deterministic generator (xorshift64*), so the images are the same on every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> f64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 11) as f64 / (1u64 << 53) as f64
    }

    fn range(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * self.next()
    }
}

/// Gray values of a textured scene: Gaussian blobs of several sizes and both signs on mid gray.
fn texture(w: u32, h: u32, seed: u64) -> Vec<f64> {
    let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
    let blobs: Vec<[f64; 4]> = (0..90)
        .map(|_| {
            let sign = if rng.next() < 0.5 { -1.0 } else { 1.0 };
            [
                rng.range(-10.0, w as f64 + 10.0),
                rng.range(-10.0, h as f64 + 10.0),
                rng.range(1.8, 6.0),
                sign * rng.range(50.0, 110.0),
            ]
        })
        .collect();
    let mut out = vec![128.0; (w * h) as usize];
    for y in 0..h {
        for x in 0..w {
            let v = &mut out[(y * w + x) as usize];
            for &[cx, cy, sigma, amp] in &blobs {
                let d2 = (x as f64 - cx).powi(2) + (y as f64 - cy).powi(2);
                if d2 < 25.0 * sigma * sigma {
                    *v += amp * (-d2 / (2.0 * sigma * sigma)).exp();
                }
            }
        }
    }
    out
}

fn to_gray8(values: &[f64], w: u32, h: u32) -> GrayImage {
    GrayImage::from_raw(w, h, values.iter().map(|v| v.round().clamp(0.0, 255.0) as u8).collect()).unwrap()
}

fn project(h: &[[f64; 3]; 3], x: f64, y: f64) -> [f64; 2] {
    let w = h[2][0] * x + h[2][1] * y + h[2][2];
    [(h[0][0] * x + h[0][1] * y + h[0][2]) / w, (h[1][0] * x + h[1][1] * y + h[1][2]) / w]
}

fn inverse(m: &[[f64; 3]; 3]) -> [[f64; 3]; 3] {
    let c = |r: usize, k: usize| {
        let (r1, r2, k1, k2) = ((r + 1) % 3, (r + 2) % 3, (k + 1) % 3, (k + 2) % 3);
        m[r1][k1] * m[r2][k2] - m[r1][k2] * m[r2][k1]
    };
    let det = m[0][0] * c(0, 0) + m[0][1] * c(0, 1) + m[0][2] * c(0, 2);
    let mut out = [[0.0; 3]; 3];
    for (r, row) in out.iter_mut().enumerate() {
        for (k, v) in row.iter_mut().enumerate() {
            *v = c(k, r) / det;
        }
    }
    out
}

/// `src` (w x h) seen through `h_ab`: pixel p of the result is `src` at `h_ab⁻¹ p` (bilinear,
/// pixel centres at integer coordinates, mid gray outside).
fn warp(src: &[f64], w: u32, h: u32, h_ab: &[[f64; 3]; 3], out_w: u32, out_h: u32) -> Vec<f64> {
    let inv = inverse(h_ab);
    let at = |x: i64, y: i64| {
        if x < 0 || y < 0 || x >= w as i64 || y >= h as i64 {
            128.0
        } else {
            src[(y as u32 * w + x as u32) as usize]
        }
    };
    let mut out = Vec::with_capacity((out_w * out_h) as usize);
    for y in 0..out_h {
        for x in 0..out_w {
            let [sx, sy] = project(&inv, x as f64, y as f64);
            let (x0, y0) = (sx.floor(), sy.floor());
            let (fx, fy) = (sx - x0, sy - y0);
            let (x0, y0) = (x0 as i64, y0 as i64);
            let top = at(x0, y0) * (1.0 - fx) + at(x0 + 1, y0) * fx;
            let bottom = at(x0, y0 + 1) * (1.0 - fx) + at(x0 + 1, y0 + 1) * fx;
            out.push(top * (1.0 - fy) + bottom * fy);
        }
    }
    out
}

fn save_jpeg(img: &RgbImage, path: &Path, quality: u8) {
    let mut bytes = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut bytes, quality).encode_image(img).unwrap();
    std::fs::write(path, bytes).unwrap();
}

fn gray_to_rgb(img: &GrayImage) -> RgbImage {
    RgbImage::from_fn(img.width(), img.height(), |x, y| {
        let v = img.get_pixel(x, y)[0];
        image::Rgb([v, v, v])
    })
}

/// Image A (200x160, gray PNG) and its warp by [`H_AB`] (180x150, colour JPEG in a subfolder),
/// plus a text file that is not an image. Returns the image folder.
fn happy_images(root: &Path) -> PathBuf {
    let dir = root.join("images");
    std::fs::create_dir_all(dir.join("sub")).unwrap();
    let a = texture(200, 160, 7);
    to_gray8(&a, 200, 160).save(dir.join("a.png")).unwrap();
    let b = warp(&a, 200, 160, &H_AB, 180, 150);
    save_jpeg(&gray_to_rgb(&to_gray8(&b, 180, 150)), &dir.join("sub/b.jpg"), 95);
    std::fs::write(dir.join("notes.txt"), b"not an image").unwrap();
    dir
}

fn extract(images: &Path, output: &Path) -> (String, String) {
    ok(&["extract", "--images", &s(images), "--output", &s(output), "--max-keypoints", MAX_KP])
}

fn check_shapes(name: &str, f: &ImageFeatures, size: [u32; 2]) {
    let n = f.keypoints.len();
    assert_eq!(f.dim, DIM, "{name}: descriptors are (D, N)");
    assert_eq!(f.descriptors.len(), DIM * n, "{name}");
    assert_eq!((f.scales.len(), f.oris.len(), f.scores.len()), (n, n, n), "{name}");
    assert_eq!(f.image_size, size, "{name}: image_size is (W, H)");
    for &[x, y] in &f.keypoints {
        let inside = x >= -0.5 && y >= -0.5 && x <= size[0] as f32 - 0.5 && y <= size[1] as f32 - 0.5;
        assert!(inside, "{name}: keypoint ({x}, {y}) outside the {size:?} image");
    }
    assert!(f.descriptors.iter().all(|v| v.is_finite()), "{name}");
}

/// The (i0, i1) pairs of `matches0`.
fn pairs_of(m: &PairMatches) -> Vec<(usize, usize)> {
    m.matches0.iter().enumerate().filter(|(_, &j)| j >= 0).map(|(i, &j)| (i, j as usize)).collect()
}

/// Errors |H_AB p0 - p1| of the matches, in image-B pixels.
fn errors_vs_truth(f0: &ImageFeatures, f1: &ImageFeatures, pairs: &[(usize, usize)]) -> Vec<f64> {
    pairs
        .iter()
        .map(|&(i, j)| {
            let [x, y] = f0.keypoints[i];
            let [u, v] = project(&H_AB, f64::from(x), f64::from(y));
            (u - f64::from(f1.keypoints[j][0])).hypot(v - f64::from(f1.keypoints[j][1]))
        })
        .collect()
}

fn one_pair(path: &Path) -> PairMatches {
    let mut all = read_matches(path).unwrap();
    assert_eq!(all.len(), 1, "one pair in {}", path.display());
    all.pop_first().unwrap().1
}

fn match_files(features: &Path, pairs: &Path, output: &Path, extra: &[&str]) -> PairMatches {
    let mut args =
        vec!["match", "--features", features.to_str().unwrap(), "--pairs", pairs.to_str().unwrap()];
    args.extend(["--output", output.to_str().unwrap()]);
    args.extend(extra);
    ok(&args);
    one_pair(output)
}

#[test]
fn extract_match_verify_draw_and_export_colmap() {
    let tmp = tempfile::tempdir().unwrap();
    let images = happy_images(tmp.path());
    let features_path = tmp.path().join("features.h5");

    let (_, err) = extract(&images, &features_path);
    assert!(err.contains("warning") && err.contains("notes.txt"), "the skipped file is named: {err}");
    let features = read_features(&features_path).unwrap();
    let names: Vec<&str> = features.keys().map(String::as_str).collect();
    assert_eq!(names, ["a.png", "sub/b.jpg"], "groups are the relative paths with '/'");
    let (fa, fb) = (&features["a.png"], &features["sub/b.jpg"]);
    check_shapes("a.png", fa, [200, 160]);
    check_shapes("sub/b.jpg", fb, [180, 150]);
    assert!(fa.len() >= 50 && fb.len() >= 50, "textured images give keypoints: {} {}", fa.len(), fb.len());
    assert!(fa.len() <= 300 && fb.len() <= 300, "--max-keypoints 300: {} {}", fa.len(), fb.len());

    // A second run finds both images in the file and leaves it as it was.
    let before = std::fs::read(&features_path).unwrap();
    let (_, err) = extract(&images, &features_path);
    assert!(err.contains("2 of 2 images already in") && err.contains("skipped"), "{err}");
    assert_eq!(read_features(&features_path).unwrap(), features);
    assert_eq!(
        std::fs::read(&features_path).unwrap(),
        before,
        "same content after a resume with nothing to do"
    );
    assert_eq!(listing(tmp.path()), ["features.h5", "images"], "no temporary files");

    let pairs = tmp.path().join("pairs.txt");
    std::fs::write(&pairs, "# a comment\n\na.png sub/b.jpg\n").unwrap();
    let plain = match_files(&features_path, &pairs, &tmp.path().join("matches.h5"), &[]);
    assert_eq!(plain.matches0.len(), fa.len(), "matches0 has one entry per keypoint of image 0");
    assert_eq!(plain.scores0.len(), fa.len());
    assert!(plain.matches0.iter().all(|&j| j >= -1 && (j as i64) < fb.len() as i64));
    let matched = pairs_of(&plain);
    let errors = errors_vs_truth(fa, fb, &matched);
    let good = errors.iter().filter(|&&e| e <= 3.0).count();
    let fraction = good as f64 / matched.len().max(1) as f64;
    eprintln!(
        "mutual NN: {} matches, {good} within 3 px of the true homography ({fraction:.2})",
        matched.len()
    );
    assert!(matched.len() >= 30, "{} matches", matched.len());
    assert!(fraction >= 0.7, "{good} of {} matches within 3 px of the known homography", matched.len());
    // The mutual check is on by default: no image-1 keypoint is matched twice.
    let mut targets: Vec<usize> = matched.iter().map(|m| m.1).collect();
    targets.sort_unstable();
    targets.dedup();
    assert_eq!(targets.len(), matched.len(), "mutual matches are one-to-one");

    let verified_path = tmp.path().join("verified.h5");
    let verified =
        match_files(&features_path, &pairs, &verified_path, &["--verify", "homography", "--threshold", "3"]);
    assert_eq!(verified.matches0.len(), fa.len());
    let kept = pairs_of(&verified);
    assert!(kept.len() >= 20, "{} verified matches", kept.len());
    assert!(kept.len() < matched.len(), "verification rejected the outliers");
    assert!(
        kept.iter().all(|m| matched.contains(m)),
        "verified matches are a subset of the descriptor matches"
    );
    // Every kept match agrees with one homography: the least-squares fit through them (about the
    // RANSAC model, which is refitted on its inliers) transfers each within the threshold.
    let p0: Vec<[f64; 2]> = kept.iter().map(|&(i, _)| fa.keypoints[i].map(f64::from)).collect();
    let p1: Vec<[f64; 2]> = kept.iter().map(|&(_, j)| fb.keypoints[j].map(f64::from)).collect();
    let fitted = desdis_geometry::homography::fit_homography(&p0, &p1).unwrap().expect("a homography");
    let worst = p0
        .iter()
        .zip(&p1)
        .map(|(a, b)| desdis_geometry::homography::transfer_error(&fitted, *a, *b))
        .fold(0.0f64, f64::max);
    assert!(worst <= 3.5, "a kept match is {worst:.2} px off the homography through the kept matches");
    let true_errors = errors_vs_truth(fa, fb, &kept);
    let near = true_errors.iter().filter(|&&e| e <= 3.0).count();
    assert!(
        near * 10 >= kept.len() * 9,
        "{near} of {} verified matches within 3 px of the truth",
        kept.len()
    );

    // Two images directly, drawn side by side.
    let drawing = tmp.path().join("x.png");
    let (a, b) = (s(&images.join("a.png")), s(&images.join("sub/b.jpg")));
    let (out, _) = ok(&["match", &a, &b, "--draw", &s(&drawing), "--max-keypoints", MAX_KP]);
    assert!(out.contains("matches:") && out.contains("drawn to"), "{out}");
    let drawn = image::open(&drawing).unwrap();
    assert_eq!((drawn.width(), drawn.height()), (200 + 180, 160), "the two images side by side");

    // COLMAP's text import.
    let colmap = tmp.path().join("colmap");
    ok(&[
        "export",
        "colmap",
        "--features",
        &s(&features_path),
        "--matches",
        &s(&verified_path),
        "--out",
        &s(&colmap),
    ]);
    for (name, f) in [("a.png", fa), ("sub/b.jpg", fb)] {
        let text = std::fs::read_to_string(colmap.join(format!("{name}.txt"))).unwrap();
        let mut lines = text.lines();
        assert_eq!(lines.next(), Some(format!("{} 128", f.len()).as_str()), "{name}: header `N 128`");
        let rows: Vec<&str> = lines.collect();
        assert_eq!(rows.len(), f.len(), "{name}: one line per keypoint");
        for (i, row) in rows.iter().enumerate() {
            let fields: Vec<&str> = row.split(' ').collect();
            assert_eq!(fields.len(), 4 + 128, "{name} line {}", i + 2);
            let x: f32 = fields[0].parse().unwrap();
            let y: f32 = fields[1].parse().unwrap();
            assert!((x - (f.keypoints[i][0] + 0.5)).abs() < 1e-4, "{name} keypoint {i}: X = x + 0.5");
            assert!((y - (f.keypoints[i][1] + 0.5)).abs() < 1e-4, "{name} keypoint {i}: Y = y + 0.5");
            let scale: f32 = fields[2].parse().unwrap();
            assert!((scale - f.scales[i]).abs() < 1e-4, "{name} keypoint {i}: SCALE unchanged");
            assert!(fields[4..].iter().all(|d| d.parse::<u8>().is_ok()), "{name} keypoint {i}: D in 0..=255");
        }
    }
    let list = std::fs::read_to_string(colmap.join("matches.txt")).unwrap();
    let mut expected = String::from("a.png sub/b.jpg\n");
    for (i, j) in &kept {
        expected.push_str(&format!("{i} {j}\n"));
    }
    expected.push('\n');
    assert_eq!(list, expected, "matches.txt: the pair line, one `i j` line per match, an empty line");
}

#[test]
fn an_image_without_keypoints_gives_empty_features_and_no_matches() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("images");
    std::fs::create_dir(&dir).unwrap();
    GrayImage::from_pixel(64, 48, Luma([128])).save(dir.join("flat.png")).unwrap();
    GrayImage::from_pixel(1, 1, Luma([200])).save(dir.join("tiny.png")).unwrap();
    let t = texture(120, 100, 3);
    to_gray8(&t, 120, 100).save(dir.join("texture.png")).unwrap();
    let features_path = tmp.path().join("features.h5");
    extract(&dir, &features_path);
    let features = read_features(&features_path).unwrap();
    for (name, size) in [("flat.png", [64, 48]), ("tiny.png", [1, 1])] {
        let f = &features[name];
        assert_eq!(f.keypoints.len(), 0, "{name}: no keypoints");
        assert_eq!((f.dim, f.descriptors.len()), (DIM, 0), "{name}: descriptors (D, 0)");
        assert_eq!(f.image_size, size, "{name}");
    }
    let textured = &features["texture.png"];
    assert!(!textured.is_empty());

    let pairs = tmp.path().join("pairs.txt");
    std::fs::write(&pairs, "texture.png flat.png\n").unwrap();
    for verify in ["none", "homography", "fundamental"] {
        let out = tmp.path().join(format!("m-{verify}.h5"));
        let m = match_files(&features_path, &pairs, &out, &["--verify", verify]);
        assert_eq!(m.matches0.len(), textured.len(), "--verify {verify}");
        assert!(m.matches0.iter().all(|&j| j == -1), "--verify {verify}: nothing to match");
    }
    std::fs::write(&pairs, "flat.png texture.png\n").unwrap();
    let m = match_files(&features_path, &pairs, &tmp.path().join("m-rev.h5"), &[]);
    assert!(m.matches0.is_empty(), "image 0 has no keypoints: matches0 is empty");
    let stored = read_matches(&tmp.path().join("m-rev.h5")).unwrap();
    assert!(stored.contains_key(&("flat.png".to_string(), "texture.png".to_string())), "{stored:?}");
}

/// The 16-bit gray PNG, the EXIF-rotated JPEG and the CMYK JPEG load with the right geometry.
#[test]
fn deep_rotated_and_cmyk_images_load() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("images");
    std::fs::create_dir(&dir).unwrap();
    let t = texture(120, 100, 5);
    let deep: ImageBuffer<Luma<u16>, Vec<u16>> = ImageBuffer::from_raw(
        120,
        100,
        t.iter().map(|v| (v.clamp(0.0, 255.0) * 257.0).round() as u16).collect(),
    )
    .unwrap();
    deep.save(dir.join("deep16.png")).unwrap();
    std::fs::copy(Path::new(FIXTURES).join("exif_rot6.jpg"), dir.join("exif_rot6.jpg")).unwrap();
    std::fs::copy(Path::new(FIXTURES).join("cmyk.jpg"), dir.join("cmyk.jpg")).unwrap();
    let features_path = tmp.path().join("features.h5");
    extract(&dir, &features_path);
    let features = read_features(&features_path).unwrap();

    let deep = &features["deep16.png"];
    check_shapes("deep16.png", deep, [120, 100]);
    assert!(deep.len() >= 10, "16-bit PNG: {} keypoints", deep.len());

    // Stored 40x20 landscape with orientation 6: shown (and described) as 20x40.
    assert_eq!(features["exif_rot6.jpg"].image_size, [20, 40]);

    // The CMYK fixture's dark disks are blobs the detector finds where they are.
    let cmyk = &features["cmyk.jpg"];
    check_shapes("cmyk.jpg", cmyk, [64, 48]);
    let disks = [(12.0, 10.0), (34.0, 14.0), (50.0, 24.0), (20.0, 28.0)];
    let found = disks
        .iter()
        .filter(|(cx, cy)| cmyk.keypoints.iter().any(|&[x, y]| (x - cx).hypot(y - cy) <= 2.0))
        .count();
    assert!(
        found >= 3,
        "{found} of the CMYK image's disks have a keypoint at their centre: {:?}",
        cmyk.keypoints
    );
}

/// A PNG declaring `width x height` (8-bit, colour type `colour`: 0 gray, 2 RGB) with valid
/// CRCs: IHDR, then, with `data`, an IDAT chunk holding an empty zlib stream, then IEND.
fn png_header_only(width: u32, height: u32, colour: u8, data: bool) -> Vec<u8> {
    fn crc32(bytes: &[u8]) -> u32 {
        let mut crc = 0xffff_ffffu32;
        for &b in bytes {
            crc ^= u32::from(b);
            for _ in 0..8 {
                crc = if crc & 1 == 1 { (crc >> 1) ^ 0xedb8_8320 } else { crc >> 1 };
            }
        }
        !crc
    }
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut chunk = |kind: &[u8], data: &[u8]| {
        out.extend((data.len() as u32).to_be_bytes());
        let mut body = kind.to_vec();
        body.extend(data);
        out.extend(&body);
        out.extend(crc32(&body).to_be_bytes());
    };
    let mut ihdr = Vec::new();
    ihdr.extend(width.to_be_bytes());
    ihdr.extend(height.to_be_bytes());
    ihdr.extend([8, colour, 0, 0, 0]);
    chunk(b"IHDR", &ihdr);
    if data {
        chunk(b"IDAT", &[0x78, 0x9c, 0x03, 0x00, 0x00, 0x00, 0x00, 0x01]);
    }
    chunk(b"IEND", &[]);
    out
}

#[test]
fn the_png_crc_helper_matches_a_known_value() {
    // The CRC of "IEND" with no data is the constant every PNG ends with.
    let bytes = png_header_only(1, 1, 0, false);
    assert_eq!(&bytes[bytes.len() - 4..], &[0xae, 0x42, 0x60, 0x82]);
    // And a 1x1 gray PNG with that header and one zero pixel is one the decoder accepts.
    let img = GrayImage::from_pixel(1, 1, Luma([0]));
    let mut png = Vec::new();
    img.write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png).unwrap();
    assert_eq!(png[8..33], bytes[8..33], "IHDR chunk with its CRC");
}

/// Extracting `file` alone must fail naming it, leaving `out_dir` (empty before) empty.
fn extract_fails(file: &Path, out_dir: &Path, needles: &[&str]) -> String {
    let output = out_dir.join("features.h5");
    let name = file.file_name().unwrap().to_string_lossy().into_owned();
    let mut all = vec![name.as_str()];
    all.extend(needles);
    let err =
        fails(&["extract", "--images", &s(file), "--output", &s(&output), "--max-keypoints", MAX_KP], &all);
    assert!(listing(out_dir).is_empty(), "{name}: nothing left in the output folder: {:?}", listing(out_dir));
    err
}

#[test]
fn corrupt_and_hostile_images_fail_naming_the_file() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    let out = tmp.path().join("out");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::create_dir_all(&out).unwrap();
    let t = to_gray8(&texture(120, 100, 9), 120, 100);

    std::fs::write(src.join("zero.jpg"), b"").unwrap();
    extract_fails(&src.join("zero.jpg"), &out, &[]);

    let mut jpeg = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut jpeg, 90).encode_image(&gray_to_rgb(&t)).unwrap();
    std::fs::write(src.join("half.jpg"), &jpeg[..jpeg.len() / 2]).unwrap();
    extract_fails(&src.join("half.jpg"), &out, &[]);

    let mut png = Vec::new();
    t.write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png).unwrap();
    std::fs::write(src.join("half.png"), &png[..png.len() / 2]).unwrap();
    extract_fails(&src.join("half.png"), &out, &[]);

    std::fs::write(src.join("text.png"), b"this is a text file, not a picture\n").unwrap();
    extract_fails(&src.join("text.png"), &out, &[]);

    // A header alone, and a header with a (tiny) data chunk, which lets the decoder start.
    for (name, data) in [("huge.png", false), ("huge_with_data.png", true)] {
        std::fs::write(src.join(name), png_header_only(20000, 20000, 0, data)).unwrap();
        let err = extract_fails(&src.join(name), &out, &["20000x20000", "limit"]);
        assert!(err.lines().filter(|l| !l.trim().is_empty()).count() <= 4, "a short message: {err}");
    }
}

/// With the address space capped below what a 20000x20000 RGB image needs (1.2 GB decoded), the
/// header is refused before anything is allocated: were it not, the allocation would fail and
/// abort the process. The same cap leaves room for a real extraction.
#[cfg(target_os = "linux")]
#[test]
fn a_huge_png_header_is_refused_without_allocating() {
    let tmp = tempfile::tempdir().unwrap();
    let capped = |images: &Path, output: &Path| {
        let script =
            format!("ulimit -v {LOW_MEMORY_KIB}; exec \"$0\" extract --images \"$1\" --output \"$2\"");
        Command::new("sh")
            .args(["-c", &script, env!("CARGO_BIN_EXE_desdis"), &s(images), &s(output)])
            // One thread and few malloc arenas: the address space the binary needs is then about
            // the same on every machine (about 100 MB).
            .env("RAYON_NUM_THREADS", "1")
            .env("MALLOC_ARENA_MAX", "2")
            .output()
            .unwrap()
    };
    let good = tmp.path().join("good.png");
    to_gray8(&texture(120, 100, 41), 120, 100).save(&good).unwrap();
    let o = capped(&good, &tmp.path().join("good.h5"));
    assert!(o.status.success(), "the cap leaves room: {}", String::from_utf8_lossy(&o.stderr));

    let huge = tmp.path().join("huge.png");
    std::fs::write(&huge, png_header_only(20000, 20000, 2, true)).unwrap();
    let output = tmp.path().join("features.h5");
    let o = capped(&huge, &output);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains("huge.png") && err.contains("limit"), "{err}");
    assert!(!err.contains("panicked") && !err.contains("memory allocation"), "{err}");
    assert!(!output.exists());
}

/// Address space given to the process in the test above (KiB).
#[cfg(target_os = "linux")]
const LOW_MEMORY_KIB: u64 = 600_000;

#[test]
fn extraction_stops_at_a_corrupt_image_and_resumes_after_it_is_fixed() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("images");
    std::fs::create_dir(&dir).unwrap();
    let t = texture(100, 80, 11);
    to_gray8(&t, 100, 80).save(dir.join("a.png")).unwrap();
    to_gray8(&texture(100, 80, 12), 100, 80).save(dir.join("b.png")).unwrap();
    std::fs::write(dir.join("c.png"), b"\x89PNG\r\n\x1a\ngarbage").unwrap();
    to_gray8(&texture(100, 80, 13), 100, 80).save(dir.join("d.png")).unwrap();
    let out = tmp.path().join("out");
    std::fs::create_dir(&out).unwrap();
    let features_path = out.join("features.h5");
    let args = ["extract", "--images", &s(&dir), "--output", &s(&features_path), "--max-keypoints", "100"];
    fails(&args, &["c.png"]);
    let saved = read_features(&features_path).expect("the images before the corrupt one are saved");
    assert_eq!(saved.keys().collect::<Vec<_>>(), ["a.png", "b.png"]);
    assert_eq!(listing(&out), ["features.h5"], "no temporary files");

    to_gray8(&texture(100, 80, 14), 100, 80).save(dir.join("c.png")).unwrap();
    let (_, err) = ok(&args);
    assert!(err.contains("2 of 4 images already in"), "{err}");
    let all = read_features(&features_path).unwrap();
    assert_eq!(all.keys().collect::<Vec<_>>(), ["a.png", "b.png", "c.png", "d.png"]);
    assert_eq!(all["a.png"], saved["a.png"], "resumed images are kept as they were");
}

/// A features file written by another tool, with `keypoints` and `image_size` but no
/// `descriptors`.
fn features_without_descriptors(path: &Path) {
    let mut builder = hdf5_pure::FileBuilder::new();
    let mut group = builder.create_group("x.jpg");
    group.create_dataset("keypoints").with_f32_data(&[1.0, 2.0, 3.0, 4.0]).with_shape(&[2, 2]);
    group.create_dataset("image_size").with_i64_data(&[10, 10]).with_shape(&[2]);
    builder.add_group(group.finish());
    std::fs::write(path, builder.finish().unwrap()).unwrap();
}

#[test]
fn bad_features_pairs_and_outputs_are_refused_clearly() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("images");
    std::fs::create_dir(&dir).unwrap();
    to_gray8(&texture(100, 80, 21), 100, 80).save(dir.join("a.png")).unwrap();
    to_gray8(&texture(100, 80, 22), 100, 80).save(dir.join("b.png")).unwrap();
    let features_path = tmp.path().join("features.h5");
    ok(&["extract", "--images", &s(&dir), "--output", &s(&features_path), "--max-keypoints", "100"]);
    let out = tmp.path().join("out");
    std::fs::create_dir(&out).unwrap();
    let matches = s(&out.join("matches.h5"));
    let pairs = tmp.path().join("pairs.txt");
    let match_args = |features: &Path| {
        vec![
            "match".to_string(),
            "--features".into(),
            s(features),
            "--pairs".into(),
            s(&pairs),
            "--output".into(),
            matches.clone(),
        ]
    };
    let run_fail = |args: Vec<String>, needles: &[&str]| {
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        let err = fails(&refs, needles);
        assert!(listing(&out).is_empty(), "nothing written: {:?}", listing(&out));
        err
    };

    let foreign = tmp.path().join("foreign.h5");
    features_without_descriptors(&foreign);
    std::fs::write(&pairs, "x.jpg x.jpg\n").unwrap();
    run_fail(match_args(&foreign), &["foreign.h5", "descriptors"]);

    std::fs::write(&pairs, "a.png missing.png\n").unwrap();
    run_fail(match_args(&features_path), &["missing.png"]);

    std::fs::write(&pairs, "a.png b.png\nb.png\n").unwrap();
    run_fail(match_args(&features_path), &["pairs.txt:2"]);
    std::fs::write(&pairs, "# header\na.png b.png\n\na.png b.png c.png\n").unwrap();
    run_fail(match_args(&features_path), &["pairs.txt:4"]);

    // An output path that is a folder is refused, for both commands.
    std::fs::write(&pairs, "a.png b.png\n").unwrap();
    let folder = tmp.path().join("folder.h5");
    std::fs::create_dir(&folder).unwrap();
    let mut args = match_args(&features_path);
    args[6] = s(&folder);
    run_fail(args, &["folder.h5", "directory"]);
    fails(&["extract", "--images", &s(&dir), "--output", &s(&folder)], &["folder.h5", "directory"]);
    assert!(folder.is_dir() && listing(&folder).is_empty());
    assert_eq!(listing(tmp.path()), ["features.h5", "folder.h5", "foreign.h5", "images", "out", "pairs.txt"]);

    // The happy case with the same files works, so the failures above are about their inputs.
    ok(&match_args(&features_path).iter().map(String::as_str).collect::<Vec<_>>());
    let stored = read_matches(&out.join("matches.h5")).unwrap();
    assert!(stored.contains_key(&("a.png".to_string(), "b.png".to_string())));
    assert_eq!(pair_key("a.png", "b.png"), "a.png/b.png");
}

#[test]
fn export_hpatches_writes_one_csv_row_per_patch() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("hpatches");
    let seq = root.join("v_synthetic");
    std::fs::create_dir_all(&seq).unwrap();
    std::fs::create_dir_all(root.join("not_a_sequence")).unwrap();
    let side = 65usize;
    let patch = |seed: u64| -> Vec<u8> {
        to_gray8(&texture(side as u32, side as u32, seed), side as u32, side as u32).into_raw()
    };
    let (p0, p1, p2) = (patch(31), patch(32), patch(33));
    let reference: Vec<u8> = [p0.clone(), p1.clone(), p2.clone()].concat();
    // e1: the same first patch, the others different.
    let e1: Vec<u8> = [p0, patch(34), patch(35)].concat();
    desdis_data::hpatches::write_strip(&seq.join("ref.png"), &reference).unwrap();
    desdis_data::hpatches::write_strip(&seq.join("e1.png"), &e1).unwrap();
    assert_eq!(image::open(seq.join("ref.png")).unwrap().height(), 3 * 65);
    let out = tmp.path().join("csv");
    ok(&["export", "hpatches", "--hpatches", &s(&root), "--out", &s(&out)]);
    let read = |kind: &str| -> Vec<Vec<f32>> {
        let path = out.join("desdis-32").join("v_synthetic").join(format!("{kind}.csv"));
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        text.lines().map(|l| l.split(',').map(|v| v.parse().unwrap()).collect()).collect()
    };
    let (r, e) = (read("ref"), read("e1"));
    for rows in [&r, &e] {
        assert_eq!(rows.len(), 3, "one line per patch");
        for row in rows {
            assert_eq!(row.len(), DIM);
            let norm = row.iter().map(|v| v * v).sum::<f32>().sqrt();
            assert!((norm - 1.0).abs() < 1e-3, "unit descriptors: {norm}");
        }
    }
    assert_eq!(r[0], e[0], "the same patch gets the same descriptor");
    assert_ne!(r[1], e[1]);
    assert!(!out.join("desdis-32").join("not_a_sequence").exists());
}
