//! Dataset channels: source bands and derived spectral indices, chosen by name.
//!
//! What it is: [`ChannelPlan`] resolves a channel list such as
//! `["B02", "B03", "B04", "B08", "NDVI"]` against the bands a source has: which bands to read
//! and how to make each output channel from them. Derived features are normalised
//! differences `(a - b) / (a + b)` of two bands ([`FEATURES`]); where `a + b` is 0 (both
//! bands 0, i.e. no data in Sentinel-2 DNs) the feature is 0 rather than NaN, so statistics
//! and training never see a NaN.
//!
//! What it is not: no general band-math expressions, no other indices.

use crate::RasterError;

/// A derived feature: `(a - b) / (a + b)` of two bands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Feature {
    /// Its name (upper case).
    pub name: &'static str,
    /// The band subtracted from.
    pub a: &'static str,
    /// The band subtracted.
    pub b: &'static str,
}

/// The derived features a channel list may name (case-insensitive).
pub const FEATURES: &[Feature] = &[
    // Normalised difference vegetation index.
    Feature {
        name: "NDVI",
        a: "B08",
        b: "B04",
    },
    // Normalised difference water index (McFeeters 1996: green and NIR).
    Feature {
        name: "NDWI",
        a: "B03",
        b: "B08",
    },
    // Normalised difference built-up index.
    Feature {
        name: "NDBI",
        a: "B11",
        b: "B08",
    },
];

/// `(a - b) / (a + b)`, or 0 where `a + b` is 0.
pub fn normalized_difference(a: f32, b: f32) -> f32 {
    let sum = a + b;
    if sum == 0.0 { 0.0 } else { (a - b) / sum }
}

/// How one output channel is made from the bands read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChannelKind {
    /// A copy of input band `i` (an index into [`ChannelPlan::inputs`]).
    Band(usize),
    /// `(inputs[a] - inputs[b]) / (inputs[a] + inputs[b])`.
    NormalizedDifference {
        /// Index of band `a` in [`ChannelPlan::inputs`].
        a: usize,
        /// Index of band `b` in [`ChannelPlan::inputs`].
        b: usize,
    },
}

/// The bands to read and how to make each requested channel of them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChannelPlan {
    /// The channel names as stored in the manifest (bands as the source names them,
    /// features in upper case), in the requested order.
    pub channels: Vec<String>,
    /// The source bands to read (names as the source has them), each once.
    pub inputs: Vec<String>,
    /// One entry per channel.
    pub kinds: Vec<ChannelKind>,
}

fn find_band<'a>(bands: &'a [String], name: &str) -> Option<&'a String> {
    bands
        .iter()
        .find(|b| *b == name)
        .or_else(|| bands.iter().find(|b| b.eq_ignore_ascii_case(name)))
}

impl ChannelPlan {
    /// Resolves `requested` against the source's `bands`. A name that is a band of the source
    /// is that band (even if a feature had the same name); else a feature of [`FEATURES`],
    /// whose two input bands must exist. Errors: an empty or repeated channel, an unknown
    /// name ([`RasterError::UnknownChannel`]), a feature without its inputs
    /// ([`RasterError::FeatureInputMissing`]).
    pub fn resolve(requested: &[String], bands: &[String]) -> Result<ChannelPlan, RasterError> {
        if requested.is_empty() {
            return Err(RasterError::DatasetOption {
                option: "channels",
                reason: "at least one band or feature is needed".into(),
            });
        }
        let mut plan = ChannelPlan {
            channels: Vec::new(),
            inputs: Vec::new(),
            kinds: Vec::new(),
        };
        let input = |plan: &mut ChannelPlan, name: &String| -> usize {
            match plan.inputs.iter().position(|i| i == name) {
                Some(i) => i,
                None => {
                    plan.inputs.push(name.clone());
                    plan.inputs.len() - 1
                }
            }
        };
        for name in requested {
            let name_trim = name.trim();
            let (label, kind) = if let Some(band) = find_band(bands, name_trim) {
                (band.clone(), ChannelKind::Band(input(&mut plan, band)))
            } else if let Some(f) = FEATURES
                .iter()
                .find(|f| f.name.eq_ignore_ascii_case(name_trim))
            {
                let need = |wanted: &str| {
                    find_band(bands, wanted).ok_or_else(|| RasterError::FeatureInputMissing {
                        feature: f.name.to_string(),
                        missing: wanted.to_string(),
                        bands: bands.to_vec(),
                    })
                };
                let (a, b) = (need(f.a)?, need(f.b)?);
                let (a, b) = (input(&mut plan, a), input(&mut plan, b));
                (
                    f.name.to_string(),
                    ChannelKind::NormalizedDifference { a, b },
                )
            } else {
                return Err(RasterError::UnknownChannel {
                    channel: name.clone(),
                    bands: bands.to_vec(),
                    features: FEATURES.iter().map(|f| f.name.to_string()).collect(),
                });
            };
            if plan.channels.contains(&label) {
                return Err(RasterError::DatasetOption {
                    option: "channels",
                    reason: format!("{label} is requested twice"),
                });
            }
            plan.channels.push(label);
            plan.kinds.push(kind);
        }
        Ok(plan)
    }

    /// Makes the channels of one patch: `inputs` holds the input bands' planes of `n` pixels
    /// each, in [`ChannelPlan::inputs`] order; `out` receives the channels' planes in order
    /// (`channels.len() * n` values).
    pub fn apply(&self, inputs: &[&[f32]], n: usize, out: &mut [f32]) {
        for (c, kind) in self.kinds.iter().enumerate() {
            let dst = &mut out[c * n..(c + 1) * n];
            match *kind {
                ChannelKind::Band(i) => dst.copy_from_slice(&inputs[i][..n]),
                ChannelKind::NormalizedDifference { a, b } => {
                    for ((d, &x), &y) in dst.iter_mut().zip(inputs[a]).zip(inputs[b]) {
                        *d = normalized_difference(x, y);
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn bands_and_features_share_inputs() {
        let bands = names(&["B02", "B03", "B04", "B08", "B11"]);
        let plan = ChannelPlan::resolve(&names(&["b04", "NDVI", "ndwi", "NDBI"]), &bands).unwrap();
        assert_eq!(plan.channels, names(&["B04", "NDVI", "NDWI", "NDBI"]));
        assert_eq!(plan.inputs, names(&["B04", "B08", "B03", "B11"]));
        assert_eq!(
            plan.kinds,
            vec![
                ChannelKind::Band(0),
                ChannelKind::NormalizedDifference { a: 1, b: 0 },
                ChannelKind::NormalizedDifference { a: 2, b: 1 },
                ChannelKind::NormalizedDifference { a: 3, b: 1 },
            ]
        );
        let b04 = [1000.0f32, 0.0];
        let b08 = [3000.0f32, 0.0];
        let b03 = [500.0f32, 7.0];
        let b11 = [2000.0f32, 1.0];
        let mut out = vec![0.0; 8];
        plan.apply(&[&b04, &b08, &b03, &b11], 2, &mut out);
        assert_eq!(out[0..2], [1000.0, 0.0]);
        assert_eq!(out[2], 0.5);
        assert_eq!(out[3], 0.0, "0/0 is 0, not NaN");
        assert!((out[4] - (-2500.0 / 3500.0)).abs() < 1e-7);
        assert_eq!(out[5], 1.0);
        assert!((out[6] - (-1000.0 / 5000.0)).abs() < 1e-7);
    }

    #[test]
    fn unknown_and_missing_inputs_are_named() {
        let s1 = names(&["VV", "VH"]);
        match ChannelPlan::resolve(&names(&["VV", "NDVI"]), &s1) {
            Err(RasterError::FeatureInputMissing {
                feature, missing, ..
            }) => assert_eq!((feature.as_str(), missing.as_str()), ("NDVI", "B08")),
            other => panic!("{other:?}"),
        }
        let err = ChannelPlan::resolve(&names(&["VV", "EVI"]), &s1).unwrap_err();
        assert!(matches!(&err, RasterError::UnknownChannel { channel, .. } if channel == "EVI"));
        assert!(err.to_string().contains("NDVI, NDWI, NDBI"), "{err}");
        assert!(matches!(
            ChannelPlan::resolve(&names(&["VV", "vv"]), &s1),
            Err(RasterError::DatasetOption {
                option: "channels",
                ..
            })
        ));
        assert!(matches!(
            ChannelPlan::resolve(&[], &s1),
            Err(RasterError::DatasetOption {
                option: "channels",
                ..
            })
        ));
    }
}
