//! Class mappings and label grids.
//!
//! What it is: [`ClassMapping`], the caller's list of classes (order = class index) and the
//! source label values each one takes in (CORINE names for BigEarthNet, raster values such
//! as `"2"` for a label raster, property values such as `"1"` for polygons); and
//! `LabelGrid`, class indices over (part of) a product grid with the majority rule that
//! labels a patch.
//!
//! What it is not: no hierarchy of classes, no soft labels.

use serde::{Deserialize, Serialize};

use crate::RasterError;

/// Most classes a mapping may have (class indices are stored in a byte, 255 meaning none).
pub const MAX_CLASSES: usize = 254;

/// "No class" in a [`LabelGrid`].
pub(crate) const NO_CLASS: u8 = u8::MAX;

/// One class: its name and the source label values that belong to it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClassDef {
    /// Class name as the manifest and the model show it.
    pub name: String,
    /// Source label values mapped to this class, compared case-insensitively after trimming
    /// (numbers as written without a fraction: `"2"`, not `"2.0"`). Empty: the class takes
    /// the label equal to its own name.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub values: Vec<String>,
}

impl ClassDef {
    /// A class named `name` taking the source labels `values`.
    pub fn new(name: &str, values: &[&str]) -> ClassDef {
        ClassDef {
            name: name.to_string(),
            values: values.iter().map(|v| v.to_string()).collect(),
        }
    }
}

/// The classes of a dataset, in class-index order, with the source values of each.
///
/// A multi-label source (BigEarthNet) gives each patch the **first** class of this list that
/// any of its labels maps to (so order the list by priority), and also keeps the multi-hot
/// vector over all classes. Source labels that no class takes are ignored; a patch with none
/// left is skipped.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ClassMapping {
    /// The classes; the index in this list is the class index stored in `y`.
    pub classes: Vec<ClassDef>,
}

fn key(s: &str) -> String {
    s.trim().to_lowercase()
}

/// The text of a numeric label value as a mapping names it: integers without a fraction.
pub fn value_key(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else {
        format!("{v}")
    }
}

impl ClassMapping {
    /// A mapping from the given classes.
    pub fn new(classes: Vec<ClassDef>) -> ClassMapping {
        ClassMapping { classes }
    }

    /// Five land-cover groups of the CORINE labels that the bundled BigEarthNet sample
    /// patches carry, in this priority: forest (coniferous, broad-leaved, mixed), arable
    /// (non-irrigated), pastures, agriculture with natural vegetation, complex cultivation.
    pub fn bigearthnet_sample() -> ClassMapping {
        ClassMapping::new(vec![
            ClassDef::new(
                "forest",
                &["Coniferous forest", "Broad-leaved forest", "Mixed forest"],
            ),
            ClassDef::new("arable", &["Non-irrigated arable land"]),
            ClassDef::new("pastures", &["Pastures"]),
            ClassDef::new(
                "agriculture with natural vegetation",
                &[
                    "Land principally occupied by agriculture, with significant areas of natural vegetation",
                ],
            ),
            ClassDef::new("complex cultivation", &["Complex cultivation patterns"]),
        ])
    }

    /// Classes that each take the label equal to their name (e.g. CORINE names).
    pub fn from_names(names: &[&str]) -> ClassMapping {
        ClassMapping {
            classes: names.iter().map(|n| ClassDef::new(n, &[])).collect(),
        }
    }

    /// The class names in index order.
    pub fn names(&self) -> Vec<String> {
        self.classes.iter().map(|c| c.name.clone()).collect()
    }

    /// Number of classes.
    pub fn len(&self) -> usize {
        self.classes.len()
    }

    /// Whether there are no classes.
    pub fn is_empty(&self) -> bool {
        self.classes.is_empty()
    }

    fn values_of(c: &ClassDef) -> Vec<String> {
        if c.values.is_empty() {
            vec![key(&c.name)]
        } else {
            c.values.iter().map(|v| key(v)).collect()
        }
    }

    /// Checks: 1..=[`MAX_CLASSES`] classes, non-empty unique names, no source value taken by
    /// two classes.
    pub fn validate(&self) -> Result<(), RasterError> {
        let bad = |reason: String| RasterError::DatasetOption {
            option: "classes",
            reason,
        };
        if self.classes.is_empty() || self.classes.len() > MAX_CLASSES {
            return Err(bad(format!(
                "{} classes given, 1 to {MAX_CLASSES} are allowed",
                self.classes.len()
            )));
        }
        let mut names = std::collections::HashSet::new();
        let mut values = std::collections::HashMap::new();
        for c in &self.classes {
            if c.name.trim().is_empty() {
                return Err(bad("a class has an empty name".into()));
            }
            if !names.insert(key(&c.name)) {
                return Err(bad(format!("class {} is named twice", c.name)));
            }
            for v in Self::values_of(c) {
                if let Some(other) = values.insert(v.clone(), c.name.clone()) {
                    return Err(bad(format!(
                        "label value '{v}' is mapped to both {other} and {}",
                        c.name
                    )));
                }
            }
        }
        Ok(())
    }

    /// The class taking the source value `value`, if any.
    pub fn class_of(&self, value: &str) -> Option<u8> {
        let k = key(value);
        self.classes
            .iter()
            .position(|c| Self::values_of(c).contains(&k))
            .map(|i| i as u8)
    }

    /// The first class in mapping order that one of `labels` maps to (the single-label rule
    /// for multi-label sources).
    pub fn first_class(&self, labels: &[String]) -> Option<u8> {
        let keys: Vec<String> = labels.iter().map(|l| key(l)).collect();
        self.classes
            .iter()
            .position(|c| Self::values_of(c).iter().any(|v| keys.contains(v)))
            .map(|i| i as u8)
    }

    /// The multi-hot vector (1 where one of `labels` maps to the class) over the classes.
    pub fn multi_hot(&self, labels: &[String]) -> Vec<u8> {
        let keys: Vec<String> = labels.iter().map(|l| key(l)).collect();
        self.classes
            .iter()
            .map(|c| u8::from(Self::values_of(c).iter().any(|v| keys.contains(v))))
            .collect()
    }
}

/// Class indices over a rectangle of a product grid: columns `x0 .. x0 + width`, rows
/// `y0 .. y0 + height`; pixels outside it, and [`NO_CLASS`] inside, are unlabelled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct LabelGrid {
    pub x0: u32,
    pub y0: u32,
    pub width: u32,
    pub height: u32,
    pub data: Vec<u8>,
}

/// The label of one patch: its majority class, or why it has none.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PatchLabel {
    /// The class with the most pixels (ties go to the lower class index).
    Class(u8),
    /// Fewer labelled pixels than the minimum fraction asks.
    TooFewLabelled,
}

impl LabelGrid {
    /// An unlabelled grid of the given rectangle.
    pub fn empty(x0: u32, y0: u32, width: u32, height: u32) -> LabelGrid {
        LabelGrid {
            x0,
            y0,
            width,
            height,
            data: vec![NO_CLASS; width as usize * height as usize],
        }
    }

    /// The class at grid pixel (`x`, `y`), or [`NO_CLASS`].
    pub fn get(&self, x: u32, y: u32) -> u8 {
        if x < self.x0 || y < self.y0 {
            return NO_CLASS;
        }
        let (dx, dy) = (x - self.x0, y - self.y0);
        if dx >= self.width || dy >= self.height {
            return NO_CLASS;
        }
        self.data[dy as usize * self.width as usize + dx as usize]
    }

    /// Sets grid pixel (`x`, `y`), which must lie in the rectangle.
    pub fn set(&mut self, x: u32, y: u32, class: u8) {
        let (dx, dy) = (x - self.x0, y - self.y0);
        self.data[dy as usize * self.width as usize + dx as usize] = class;
    }

    /// Labelled pixels (any class).
    pub fn labelled(&self) -> impl Iterator<Item = (u32, u32)> + '_ {
        let w = self.width as usize;
        self.data
            .iter()
            .enumerate()
            .filter(|(_, c)| **c != NO_CLASS)
            .map(move |(i, _)| (self.x0 + (i % w) as u32, self.y0 + (i / w) as u32))
    }

    /// The majority label of the `size` x `size` patch at (`x`, `y`): kept when at least
    /// `min_fraction` of its pixels carry a class.
    pub fn patch_label(
        &self,
        x: u32,
        y: u32,
        size: u32,
        classes: usize,
        min_fraction: f32,
    ) -> PatchLabel {
        let mut counts = vec![0u32; classes];
        let mut labelled = 0u32;
        for row in y..y + size {
            for col in x..x + size {
                let c = self.get(col, row);
                if c != NO_CLASS {
                    counts[usize::from(c)] += 1;
                    labelled += 1;
                }
            }
        }
        let total = f64::from(size) * f64::from(size);
        if labelled == 0 || f64::from(labelled) < f64::from(min_fraction) * total {
            return PatchLabel::TooFewLabelled;
        }
        let mut best = 0;
        for (i, &n) in counts.iter().enumerate() {
            if n > counts[best] {
                best = i;
            }
        }
        PatchLabel::Class(best as u8)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn first_class_follows_mapping_order() {
        let m = ClassMapping::new(vec![
            ClassDef::new(
                "forest",
                &["Coniferous forest", "Broad-leaved forest", "Mixed forest"],
            ),
            ClassDef::new("agriculture", &["Non-irrigated arable land", "Pastures"]),
            ClassDef::new("Water bodies", &[]),
        ]);
        m.validate().unwrap();
        let patch = labels(&["Pastures", "mixed forest ", "Peatbogs"]);
        assert_eq!(m.first_class(&patch), Some(0));
        assert_eq!(m.multi_hot(&patch), vec![1, 1, 0]);
        assert_eq!(m.first_class(&labels(&["water bodies"])), Some(2));
        assert_eq!(m.first_class(&labels(&["Peatbogs"])), None);
        assert_eq!(m.class_of("pastures"), Some(1));
    }

    #[test]
    fn numeric_values_and_bad_mappings() {
        assert_eq!(value_key(2.0), "2");
        assert_eq!(value_key(-1.0), "-1");
        assert_eq!(value_key(2.5), "2.5");
        let m = ClassMapping::new(vec![
            ClassDef::new("cultivated", &["1"]),
            ClassDef::new("forest", &["2"]),
        ]);
        assert_eq!(m.class_of(&value_key(2.0)), Some(1));
        assert_eq!(m.class_of("0"), None);
        let dup = ClassMapping::new(vec![ClassDef::new("a", &["1"]), ClassDef::new("b", &["1"])]);
        let err = dup.validate().unwrap_err();
        assert!(
            err.to_string().contains("'1' is mapped to both a and b"),
            "{err}"
        );
        assert!(ClassMapping::from_names(&[]).validate().is_err());
        assert!(ClassMapping::from_names(&["a", "A"]).validate().is_err());
    }

    #[test]
    fn majority_and_min_fraction() {
        let mut g = LabelGrid::empty(2, 2, 4, 4);
        // A 4x4 patch at (2, 2): 6 pixels of class 1, 5 of class 0, 5 unlabelled.
        for (i, (x, y)) in (2..6).flat_map(|y| (2..6).map(move |x| (x, y))).enumerate() {
            match i {
                0..=5 => g.set(x, y, 1),
                6..=10 => g.set(x, y, 0),
                _ => {}
            }
        }
        assert_eq!(g.patch_label(2, 2, 4, 2, 0.5), PatchLabel::Class(1));
        assert_eq!(g.patch_label(2, 2, 4, 2, 0.7), PatchLabel::TooFewLabelled);
        // Outside the rectangle nothing is labelled.
        assert_eq!(g.get(0, 0), NO_CLASS);
        assert_eq!(g.patch_label(0, 0, 2, 2, 0.0), PatchLabel::TooFewLabelled);
        // A tie goes to the lower class index.
        let mut t = LabelGrid::empty(0, 0, 2, 2);
        t.set(0, 0, 1);
        t.set(1, 0, 1);
        t.set(0, 1, 0);
        t.set(1, 1, 0);
        assert_eq!(t.patch_label(0, 0, 2, 2, 0.0), PatchLabel::Class(0));
        assert_eq!(t.patch_label(0, 0, 1, 2, 0.0), PatchLabel::Class(1));
        assert_eq!(t.labelled().count(), 4);
    }
}
