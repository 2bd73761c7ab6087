//! HPatches CSV export and atomic JSON results.

use std::fs;
use std::path::Path;

use desdis_eval::{write_hpatches_csv, write_json_atomic, DescriptorMatrix, Error, SequenceScores};

fn leftover_temporaries(dir: &Path) -> Vec<String> {
    fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|name| name.ends_with(".tmp"))
        .collect()
}

#[test]
fn csv_lands_in_the_benchmark_layout_and_reads_back() -> anyhow::Result<()> {
    let out = tempfile::tempdir()?;
    let values = [0.25f32, -1.5, 1e-7, 0.1, 3.0, -0.0];
    let descriptors = DescriptorMatrix::new(&values, 3)?;
    let path = write_hpatches_csv(out.path(), "desdis-s", "v_boat", "h3", &descriptors)?;
    assert_eq!(path, out.path().join("desdis-s").join("v_boat").join("h3.csv"));

    let text = fs::read_to_string(&path)?;
    let rows: Vec<Vec<f32>> =
        text.lines().map(|l| l.split(',').map(|v| v.parse().unwrap()).collect()).collect();
    assert_eq!(rows, vec![values[..3].to_vec(), values[3..].to_vec()]);
    assert!(leftover_temporaries(path.parent().unwrap()).is_empty());
    Ok(())
}

#[test]
fn csv_rejects_unknown_types_and_unsafe_names() -> anyhow::Result<()> {
    let out = tempfile::tempdir()?;
    let values = [1.0f32, 2.0];
    let d = DescriptorMatrix::new(&values, 2)?;
    for (name, seq, kind) in
        [("x", "v_boat", "e6"), ("x", "../up", "ref"), ("a/b", "v_boat", "ref"), ("", "s", "t1")]
    {
        let err = write_hpatches_csv(out.path(), name, seq, kind, &d).unwrap_err();
        assert!(matches!(err, Error::InvalidArgument(_)), "{name} {seq} {kind}: {err:?}");
    }
    let empty = DescriptorMatrix::new(&[], 2)?;
    assert!(matches!(write_hpatches_csv(out.path(), "x", "s", "ref", &empty), Err(Error::Empty(_))));
    assert_eq!(fs::read_dir(out.path())?.count(), 0, "nothing written on error");
    Ok(())
}

#[test]
fn json_is_replaced_whole_and_round_trips() -> anyhow::Result<()> {
    let out = tempfile::tempdir()?;
    let path = out.path().join("results").join("hpatches.json");
    let first = SequenceScores { verification_ap: 0.9, matching_map: 0.5, retrieval_map: 0.7, fpr95: 0.01 };
    write_json_atomic(&path, &first)?;
    let second = SequenceScores { fpr95: 0.02, ..first };
    write_json_atomic(&path, &second)?;
    let text = fs::read_to_string(&path)?;
    assert!(text.ends_with('\n'));
    assert_eq!(serde_json::from_str::<SequenceScores>(&text)?, second);
    assert!(leftover_temporaries(path.parent().unwrap()).is_empty());
    Ok(())
}

#[test]
fn json_write_into_a_file_path_fails_clearly() -> anyhow::Result<()> {
    let out = tempfile::tempdir()?;
    let blocker = out.path().join("not-a-dir");
    fs::write(&blocker, b"x")?;
    let err = write_json_atomic(&blocker.join("r.json"), &1).unwrap_err();
    assert!(matches!(err, Error::Io { .. }), "{err:?}");
    assert!(err.to_string().contains("not-a-dir"), "{err}");
    Ok(())
}
