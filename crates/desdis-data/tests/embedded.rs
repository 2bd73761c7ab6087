//! The embedded training set: deterministic generation, caching, PhotoTour export, held-out
//! sequences.

use desdis_data::embedded::{
    self, cache_file, generate, load_or_generate, EmbeddedConfig, HELD_OUT_PHOTOS, TRAINING_PHOTOS,
};
use desdis_data::patch::Dataset;
use desdis_data::phototour::{self, CachePolicy};
use desdis_data::sequence::CutConfig;

/// A small configuration so that debug-build tests stay quick.
fn small() -> EmbeddedConfig {
    let base = EmbeddedConfig::default();
    EmbeddedConfig { sequences_per_photo: 2, cut: CutConfig { max_keypoints: 40, ..base.cut }, ..base }
}

#[test]
fn generation_is_deterministic_and_well_formed() {
    let cfg = small();
    let one =
        rayon::ThreadPoolBuilder::new().num_threads(1).build().unwrap().install(|| generate(&cfg).unwrap());
    let two = generate(&cfg).unwrap();
    assert_eq!(one, two);
    let views = cfg.sequence.images;
    assert_eq!(one.len() % views, 0);
    assert!(one.num_points() > 200, "only {} points", one.num_points());
    // Point ids are consecutive, each with one patch per image of its sequence.
    for (i, id) in one.point_ids.iter().enumerate() {
        assert_eq!(*id as usize, i / views);
    }
    // Patches of one point are not copies of each other (views differ) and are not blank.
    let (a, b) = (one.patch(0), one.patch(1));
    assert_ne!(a, b);
    assert!(a.iter().max() > a.iter().min());
    let other = generate(&EmbeddedConfig { seed: 1, ..cfg }).unwrap();
    assert_ne!(one, other);
}

#[test]
fn cache_is_keyed_by_the_configuration() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = small();
    let first = load_or_generate(dir.path(), &cfg).unwrap();
    let file = cache_file(dir.path(), &cfg);
    let written = std::fs::metadata(&file).unwrap().modified().unwrap();
    assert_eq!(load_or_generate(dir.path(), &cfg).unwrap(), first);
    assert_eq!(std::fs::metadata(&file).unwrap().modified().unwrap(), written, "regenerated needlessly");
    let other = EmbeddedConfig { seed: 99, ..cfg };
    assert_ne!(cache_file(dir.path(), &other), file);
    assert_ne!(other.cache_key(), cfg.cache_key());
}

#[test]
fn held_out_photos_are_not_used_for_training() {
    let training: Vec<_> = TRAINING_PHOTOS.iter().map(|p| p.name).collect();
    assert!(HELD_OUT_PHOTOS.iter().all(|p| !training.contains(&p.name)));
    let validation: Vec<_> = small().validation().photos().iter().map(|p| p.name).collect();
    assert!(!validation.is_empty() && validation.iter().all(|name| !training.contains(name)));
    assert!(!validation.contains(&HELD_OUT_PHOTOS[0].name), "validation must not use the test photo");
    let seq = embedded::held_out_sequence(3).unwrap();
    assert_eq!((seq.images.len(), seq.homographies.len()), (6, 5));
    assert_eq!(seq.images[0], HELD_OUT_PHOTOS[0].decode().unwrap());
}

#[test]
fn generate_sequence_is_seeded() {
    let photo = HELD_OUT_PHOTOS[1].decode().unwrap();
    let (a, ha) = embedded::generate_sequence(&photo, 1);
    let (b, hb) = embedded::generate_sequence(&photo, 1);
    let (_, hc) = embedded::generate_sequence(&photo, 2);
    assert_eq!((a, ha.clone()), (b, hb));
    assert_ne!(ha, hc);
}

#[test]
fn exported_phototour_folder_loads_back_with_labelled_pairs() {
    let dir = tempfile::tempdir().unwrap();
    let set = generate(&small()).unwrap();
    let m50 = embedded::write_phototour(dir.path(), &set, 200, 4).unwrap();
    let loaded = phototour::load(dir.path(), &CachePolicy::Off).unwrap();
    assert_eq!(loaded.set, set);
    let pairs = loaded.read_pairs(&m50).unwrap();
    assert_eq!(pairs.len(), 200);
    assert_eq!(pairs.iter().filter(|p| p.is_match).count(), 100);
    assert!(pairs.iter().all(|p| p.is_match == (set.point_ids[p.a as usize] == set.point_ids[p.b as usize])));
}
