//! The PhotoTour download path, offline: checksum verification, the offline error, extraction.

use desdis_data::patch::PatchSet;
use desdis_data::phototour::{self, fetch, md5_hex, CachePolicy, Network, Source, LIBERTY};
use std::io::Write;

#[test]
fn known_sources_match_the_published_archives() {
    assert_eq!(Source::by_name("liberty"), Some(LIBERTY));
    assert_eq!(LIBERTY.md5, "fdd9152f138ea5ef2091746689176414");
    assert_eq!(Source::by_name("notredame").unwrap().num_patches, 468_159);
    assert!(Source::by_name("paris").is_none());
}

#[test]
fn offline_without_archive_says_where_to_put_it() {
    let root = tempfile::tempdir().unwrap();
    let err = fetch(&LIBERTY, root.path(), Network::Offline).unwrap_err().to_string();
    assert!(err.contains("offline") && err.contains("liberty.zip") && err.contains(LIBERTY.md5), "{err}");
}

#[test]
fn corrupt_archive_fails_the_checksum() {
    let root = tempfile::tempdir().unwrap();
    std::fs::write(root.path().join("liberty.zip"), b"not the real archive").unwrap();
    let err = fetch(&LIBERTY, root.path(), Network::Offline).unwrap_err().to_string();
    assert!(err.contains("liberty.zip") && err.contains("md5") && err.contains(LIBERTY.md5), "{err}");
}

#[test]
fn verified_archive_is_extracted_and_loads() {
    // A PhotoTour folder zipped by hand stands in for a downloaded archive.
    let staging = tempfile::tempdir().unwrap();
    let set = PatchSet::new((0..3 * 1024).map(|i| (i % 253) as u8).collect(), vec![4, 4, 9]).unwrap();
    phototour::write(staging.path(), &set).unwrap();
    let root = tempfile::tempdir().unwrap();
    let archive = root.path().join("tiny.zip");
    let mut zip = zip::ZipWriter::new(std::fs::File::create(&archive).unwrap());
    for name in ["patches0000.bmp", "info.txt"] {
        zip.start_file(name, zip::write::SimpleFileOptions::default()).unwrap();
        zip.write_all(&std::fs::read(staging.path().join(name)).unwrap()).unwrap();
    }
    zip.finish().unwrap();
    let md5 = md5_hex(&archive).unwrap();
    let md5: &'static str = Box::leak(md5.into_boxed_str());
    let source = Source {
        name: "tiny",
        url: "http://invalid.example/tiny.zip",
        archive: "tiny.zip",
        md5,
        num_patches: 3,
    };
    let dir = fetch(&source, root.path(), Network::Offline).unwrap();
    assert_eq!(dir, root.path().join("tiny"));
    assert_eq!(phototour::load(&dir, &CachePolicy::Off).unwrap().set, set);
    // Once extracted, the folder is used without the archive.
    std::fs::remove_file(&archive).unwrap();
    assert_eq!(fetch(&source, root.path(), Network::Offline).unwrap(), dir);
}

#[test]
fn md5_of_a_known_string() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("abc");
    std::fs::write(&path, b"abc").unwrap();
    assert_eq!(md5_hex(&path).unwrap(), "900150983cd24fb0d6963f7d28e17f72");
}
