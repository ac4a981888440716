//! Unit tests of the dataset options, blocks, the atomic store and its validation. The
//! end-to-end builds of the three sources are in `raster/tests/dataset.rs`.

use super::*;
use crate::geotiff::tests::{TempDir, data};

fn slovenia_spec(name: &str) -> DatasetSpec {
    let classes = ClassMapping::new(vec![
        ClassDef::new("cultivated", &["1"]),
        ClassDef::new("forest", &["2"]),
        ClassDef::new("grassland", &["3"]),
        ClassDef::new("shrubland", &["4"]),
        ClassDef::new("artificial", &["8"]),
    ]);
    let mut spec = DatasetSpec::new(
        name,
        SourceSpec::LabelRaster {
            labels: data("s2/Slovenia_T33_eolearn/LULC.tif"),
            imagery: Imagery::path(data(
                "s2/Slovenia_T33_eolearn/L1C_2015-07-11_bands13_dn.tif",
            )),
        },
        &["B02", "B03", "B04", "B08", "NDVI"],
        classes,
        16,
    );
    spec.stride = 16;
    spec.shard_samples = Some(10);
    spec
}

fn go(_: Progress) -> ControlFlow<()> {
    ControlFlow::Continue(())
}

#[test]
fn bad_options_name_the_option() {
    let base = slovenia_spec("opts");
    base.validate().unwrap();
    type Mutation = Box<dyn Fn(&mut DatasetSpec)>;
    let cases: Vec<(&str, Mutation)> = vec![
        ("patch_size", Box::new(|s| s.patch_size = 0)),
        (
            "patch_size",
            Box::new(|s| s.patch_size = MAX_PATCH_SIZE + 1),
        ),
        ("stride", Box::new(|s| s.stride = 0)),
        ("split", Box::new(|s| s.split.val = 0.3)),
        ("split.val", Box::new(|s| s.split.val = -0.15)),
        ("split.test", Box::new(|s| s.split.test = f64::NAN)),
        (
            "split.train",
            Box::new(|s| {
                s.split.train = 0.0;
                s.split.val = 0.5;
                s.split.test = 0.5;
            }),
        ),
        ("name", Box::new(|s| s.name = "../escape".into())),
        ("name", Box::new(|s| s.name = String::new())),
        (
            "min_labelled_fraction",
            Box::new(|s| s.min_labelled_fraction = 1.5),
        ),
        ("shard_samples", Box::new(|s| s.shard_samples = Some(0))),
        ("classes", Box::new(|s| s.classes.classes.clear())),
    ];
    for (option, mutate) in cases {
        let mut spec = base.clone();
        mutate(&mut spec);
        match spec.validate() {
            Err(RasterError::DatasetOption {
                option: got,
                reason,
            }) => {
                assert_eq!(got, option, "{reason}");
                assert!(!reason.is_empty());
            }
            other => panic!("{option}: {other:?}"),
        }
        // build() checks the same before touching anything.
        let root = TempDir::new("ds-opts");
        let err = build(&root.0, &spec, &mut go).unwrap_err();
        assert!(err.is_bad_request(), "{err}");
        assert!(list_datasets(&root.0).unwrap().is_empty());
    }
    let mut sum = base.clone();
    sum.split.val = 0.3;
    let msg = sum.validate().unwrap_err().to_string();
    assert!(msg.contains("sum to") && msg.contains("not 1"), "{msg}");
}

#[test]
fn blocks_group_rows_and_cover_their_patches() {
    let c = |x, y| sources::Candidate { x, y, class: 0 };
    let cands = vec![
        c(0, 0),
        c(40, 0),
        c(0, 200),
        c(8, 255),
        c(0, 256),
        c(100, 600),
    ];
    let b = blocks(&cands, 16);
    assert_eq!(b.iter().map(|b| b.len()).collect::<Vec<_>>(), vec![4, 1, 1]);
    assert_eq!(
        block_window(b[0], 16),
        Window {
            x: 0,
            y: 0,
            width: 56,
            height: 271
        }
    );
    assert_eq!(
        block_window(b[2], 16),
        Window::full(16, 16).shifted(100, 600)
    );
}

impl Window {
    fn shifted(self, x: u32, y: u32) -> Window {
        Window {
            x: self.x + x,
            y: self.y + y,
            ..self
        }
    }
}

#[test]
fn versions_increase_and_tampering_is_detected() {
    let root = TempDir::new("ds-versions");
    let spec = slovenia_spec("slo");
    let v1 = build(&root.0, &spec, &mut go).unwrap();
    let v2 = build(&root.0, &spec, &mut go).unwrap();
    assert_eq!((v1.manifest().version, v2.manifest().version), (1, 2));
    assert_eq!(list_versions(&root.0, "slo").unwrap(), vec![1, 2]);
    assert_eq!(list_datasets(&root.0).unwrap(), vec!["slo".to_string()]);
    assert_eq!(
        Dataset::open(&root.0, "slo", None)
            .unwrap()
            .manifest()
            .version,
        2
    );
    // Same inputs and seed: the same samples in the same shards.
    for split in Split::ALL {
        assert_eq!(
            v1.read_split(split).unwrap(),
            v2.read_split(split).unwrap(),
            "{split}"
        );
    }
    assert!(
        v1.manifest().shards.len() > 3,
        "shards of at most 10 samples"
    );
    assert!(v1.manifest().shards.iter().all(|s| s.samples <= 10));
    // No staging folder is left behind.
    let left: Vec<_> = std::fs::read_dir(root.0.join("slo"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(left.len(), 2, "{left:?}");

    let err = Dataset::open(&root.0, "slo", Some(9)).unwrap_err();
    assert!(err.is_not_found(), "{err}");
    assert!(matches!(
        Dataset::open(&root.0, "nothing", None),
        Err(RasterError::DatasetNotFound { .. })
    ));

    // A manifest whose sample counts disagree with the shards is refused.
    let manifest_path = v2.dir().join(store::MANIFEST);
    let good = std::fs::read(&manifest_path).unwrap();
    let mut m: Manifest = serde_json::from_slice(&good).unwrap();
    m.shards[0].samples += 1;
    std::fs::write(&manifest_path, serde_json::to_vec(&m).unwrap()).unwrap();
    let err = Dataset::open_dir(v2.dir()).unwrap_err();
    assert!(
        matches!(&err, RasterError::BadDataset { what, .. } if what.contains("tensor x")),
        "{err}"
    );
    // A manifest with another patch size is refused too.
    let mut m: Manifest = serde_json::from_slice(&good).unwrap();
    m.patch_size = 8;
    std::fs::write(&manifest_path, serde_json::to_vec(&m).unwrap()).unwrap();
    assert!(matches!(
        Dataset::open_dir(v2.dir()),
        Err(RasterError::BadDataset { .. })
    ));
    // A truncated shard is refused.
    std::fs::write(&manifest_path, &good).unwrap();
    Dataset::open_dir(v2.dir()).unwrap();
    let shard = v2.dir().join(&m.shards[0].file);
    let bytes = std::fs::read(&shard).unwrap();
    std::fs::write(&shard, &bytes[..bytes.len() - 4]).unwrap();
    let err = Dataset::open_dir(v2.dir()).unwrap_err();
    assert!(
        matches!(&err, RasterError::BadDataset { what, .. } if what.contains("bytes")),
        "{err}"
    );
}

#[test]
fn a_cancelled_build_leaves_nothing() {
    let root = TempDir::new("ds-cancel");
    let spec = slovenia_spec("cancelled");
    let mut calls = 0;
    let err = build(&root.0, &spec, &mut |p: Progress| {
        calls += 1;
        if p.done > 0 {
            ControlFlow::Break(())
        } else {
            ControlFlow::Continue(())
        }
    })
    .unwrap_err();
    assert!(matches!(err, RasterError::Cancelled), "{err}");
    assert_eq!(calls, 2);
    let left: Vec<_> = std::fs::read_dir(root.0.join("cancelled"))
        .unwrap()
        .collect();
    assert!(left.is_empty(), "{left:?}");
    assert!(list_versions(&root.0, "cancelled").unwrap().is_empty());
}

#[test]
fn progress_reaches_the_total() {
    let root = TempDir::new("ds-progress");
    let mut spec = slovenia_spec("progress");
    spec.stride = 8;
    let mut seen = Vec::new();
    let ds = build(&root.0, &spec, &mut |p: Progress| {
        seen.push(p);
        ControlFlow::Continue(())
    })
    .unwrap();
    let last = *seen.last().unwrap();
    assert_eq!(seen[0].done, 0);
    assert_eq!(last.done, last.total);
    assert!(seen.windows(2).all(|w| w[0].done <= w[1].done));
    assert_eq!(
        last.total,
        ds.manifest().total_samples() + ds.manifest().skipped.nodata
    );
}

#[test]
fn manifest_round_trips_as_json() {
    let root = TempDir::new("ds-json");
    let ds = build(&root.0, &slovenia_spec("json"), &mut go).unwrap();
    let m = ds.manifest();
    let text = std::fs::read_to_string(ds.dir().join(store::MANIFEST)).unwrap();
    let back: Manifest = serde_json::from_str(&text).unwrap();
    assert_eq!(&back, m);
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["format"], FORMAT);
    assert_eq!(v["source"]["kind"], "label_raster");
    assert_eq!(
        v["splits"]["train"]["class_counts"]
            .as_array()
            .unwrap()
            .len(),
        5
    );
    assert_eq!(v["stats"][4]["channel"], "NDVI");
    assert!(v["created"].as_str().unwrap().ends_with('Z'));
    // Normalising the train split with its own statistics gives mean 0 and std 1.
    let mut train = ds.read_split(Split::Train).unwrap();
    assert_eq!(train.iter().count(), train.samples);
    m.normalize(&mut train.x);
    let pp = 256;
    for c in 0..5 {
        let vals: Vec<f64> = train
            .x
            .chunks_exact(5 * pp)
            .flat_map(|s| s[c * pp..(c + 1) * pp].iter().map(|&v| f64::from(v)))
            .collect();
        let mean = vals.iter().sum::<f64>() / vals.len() as f64;
        let var = vals.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / vals.len() as f64;
        assert!(
            mean.abs() < 1e-4 && (var.sqrt() - 1.0).abs() < 1e-4,
            "{c}: {mean} {var}"
        );
    }
    // The spec itself is JSON for worker jobs.
    let spec = slovenia_spec("json");
    let spec_back: DatasetSpec =
        serde_json::from_str(&serde_json::to_string(&spec).unwrap()).unwrap();
    assert_eq!(spec_back, spec);
}

#[test]
fn imagery_with_several_products_needs_an_id() {
    let root = TempDir::new("ds-imagery");
    let mut spec = slovenia_spec("imagery");
    let folder = Imagery::path(data("s2/Slovenia_T33_eolearn"));
    spec.source = SourceSpec::LabelRaster {
        labels: data("s2/Slovenia_T33_eolearn/LULC.tif"),
        imagery: folder.clone(),
    };
    let err = build(&root.0, &spec, &mut go).unwrap_err();
    assert!(
        matches!(&err, RasterError::DatasetOption { option: "imagery.product", reason }
            if reason.contains("S2A_MSIL1C_20150830T100007_Slovenia") || reason.contains("products")),
        "{err}"
    );
    spec.source = SourceSpec::LabelRaster {
        labels: data("s2/Slovenia_T33_eolearn/LULC.tif"),
        imagery: Imagery {
            product: Some("no-such-product".into()),
            ..folder
        },
    };
    let err = build(&root.0, &spec, &mut go).unwrap_err();
    assert!(
        err.to_string().contains("no product 'no-such-product'"),
        "{err}"
    );
    // Values the mapping does not know label nothing.
    let mut unknown = slovenia_spec("imagery");
    unknown.classes = ClassMapping::new(vec![ClassDef::new("water", &["7"])]);
    let err = build(&root.0, &unknown, &mut go).unwrap_err();
    assert!(
        matches!(&err, RasterError::NoLabelledPatches { detail, .. } if detail.contains("36 with too few labelled pixels")),
        "{err}"
    );
}
