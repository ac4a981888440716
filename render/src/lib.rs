//! `albedo-render`: the wgpu imagery renderer of Albedo.
//!
//! What it is: raw band values on the GPU and the shaders that turn them into pixels. Bands go
//! up once as `R32Float` 2D texture arrays (one layer per band, read with `textureLoad`, so
//! values are exact), in layers: a whole-product overview and tiles of finer zoom levels, each
//! placed in view texels ([`Placement`]), drawn bottom first. A draw picks three bands,
//! optionally converts them to decibels and subtracts a second band (a SAR ratio in dB,
//! [`ValueScale`]), stretches each linearly between a min and a max with a gamma (or maps a
//! normalized-difference index through a colormap), draws missing data (the nodata value) as
//! a neutral checkerboard, mixes a class raster over it through a palette at an opacity
//! ([`Overlay`]), and maps texture space onto the canvas with a [`View`] (origin and texels
//! per pixel). Output goes to a non-sRGB 8-bit target, so each output byte is `round(v * 255)`
//! and can be recomputed on the CPU ([`render_layers_cpu`]). It runs in the browser (WebGPU
//! when the browser gives an adapter, WebGL2 otherwise) and natively (the headless tests in
//! `tests/headless.rs` draw offscreen with GLES and read the pixels back).
//!
//! What it is not: no UI and no Leptos, no HTTP, no file reading: callers hand it `f32`
//! slices. It does not decide what to show; [`percentile_stretch`] only helps pick a stretch.
//!
//! Layout:
//! - [`Renderer`] (`renderer.rs`): the pipeline bound to a surface (a `<canvas>` on the web).
//! - [`ImageryPipeline`] (`pipeline.rs`): device-level pipeline, band layers (and their class
//!   rasters) and offscreen readback, usable without a surface (headless tests).
//! - `imagery.wgsl`: the shader, exported as [`IMAGERY_WGSL`].
//! - [`stretch_u8`], [`stretch_unit`], [`percentile_stretch`] (`stretch.rs`): CPU reference
//!   and auto-stretch.
//! - [`Colormap`] (`colormap.rs`): the index views' colormaps.
//! - [`RenderError`] (`error.rs`): the crate's one error type.

mod colormap;
mod error;
mod pipeline;
mod renderer;
mod stretch;

pub use colormap::{
    Colormap, INDEX_INVALID_RGB, LUT_SIZE, index_u8, lut_index, normalized_difference,
};
pub use error::RenderError;
pub use pipeline::{BACKGROUND_RGBA8, BASE_LAYER, IMAGERY_WGSL, ImageryPipeline, LayerId};
pub use renderer::Renderer;
pub use stretch::{percentile_stretch, stretch_u8, stretch_unit};

/// How band values are turned into numbers before the stretch.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ValueScale {
    /// Values as they are (digital numbers, reflectance, or bands already in dB).
    Linear,
    /// `factor * log10(value)`: factor 10 for power-like values (intensity, sigma0), 20 for
    /// amplitudes (Sentinel-1 GRD digital numbers are amplitudes: `20 * log10(DN)` is
    /// `10 * log10(DN^2)`). Non-positive values have no decibel value and count as missing.
    Decibel {
        /// 10 or 20.
        factor: f32,
    },
}

impl ValueScale {
    /// `0` for linear, else the dB factor: the uniform's `db_factor`.
    pub fn db_factor(self) -> f32 {
        match self {
            ValueScale::Linear => 0.0,
            ValueScale::Decibel { factor } => factor,
        }
    }

    /// A band value as the shader sees it after the conversion; `None` where it has no value
    /// (a non-positive value in dB). Same `f32` arithmetic as the shader.
    pub fn apply(self, value: f32) -> Option<f32> {
        match self {
            ValueScale::Linear => Some(value),
            ValueScale::Decibel { factor } if factor > 0.0 => {
                (value > 0.0).then(|| factor * (value.log2() * LOG10_2))
            }
            ValueScale::Decibel { .. } => Some(value),
        }
    }
}

/// `log10(2)`, which the shader writes as `0.30102999566` (the same `f32`):
/// `log10(x) = log2(x) * log10(2)`.
const LOG10_2: f32 = std::f32::consts::LOG10_2;

/// Which texture layers to show as red, green and blue, and how to stretch each.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Composite {
    /// Texture layer (band index given to `set_bands`) shown in R, G, B.
    pub channels: [u32; 3],
    /// Per channel, a layer subtracted after the [`ValueScale`] conversion: with decibels,
    /// `dB(a) - dB(b)` is the ratio `a / b` in dB (Sentinel-1 VV/VH).
    pub minus: [Option<u32>; 3],
    /// Conversion of band values before the stretch (RGB mode only).
    pub scale: ValueScale,
    /// Value mapped to 0 per channel.
    pub min: [f32; 3],
    /// Value mapped to 255 per channel.
    pub max: [f32; 3],
    /// Gamma per channel (positive; 1 is linear): `v = v^(1/gamma)`.
    pub gamma: [f32; 3],
    /// When set, an index view instead of RGB: the normalized difference of layers
    /// `channels[0]` and `channels[1]`, mapped from `[min[0], max[0]]` through this colormap
    /// (see [`index_u8`]).
    pub index: Option<Colormap>,
    /// The band value that marks missing data: pixels where a value read equals it show the
    /// nodata checkerboard ([`checker_rgba8`]) instead of a colour.
    pub nodata: Option<f32>,
}

impl Composite {
    /// One band in all three channels: a grey view.
    pub fn grey(layer: u32, min: f32, max: f32, gamma: f32) -> Self {
        Composite {
            channels: [layer; 3],
            minus: [None; 3],
            scale: ValueScale::Linear,
            min: [min; 3],
            max: [max; 3],
            gamma: [gamma; 3],
            index: None,
            nodata: None,
        }
    }

    /// The normalized difference `(a - b) / (a + b)` of layers `a` and `b`, over `[-1, 1]`
    /// through `colormap` (NDVI: NIR and red; NDWI: green and NIR).
    pub fn index(a: u32, b: u32, colormap: Colormap) -> Self {
        Composite {
            channels: [a, b, b],
            minus: [None; 3],
            scale: ValueScale::Linear,
            min: [-1.0; 3],
            max: [1.0; 3],
            gamma: [1.0; 3],
            index: Some(colormap),
            nodata: None,
        }
    }

    /// The value channel `c` stretches at texel `i` of `bands` (after the dB conversion and the
    /// subtraction), or `None` where the pixel is missing data. RGB mode.
    pub fn channel_value(&self, bands: &[&[f32]], i: usize, c: usize) -> Option<f32> {
        let read = |layer: u32| -> Option<f32> {
            let v = bands.get(layer as usize).and_then(|b| b.get(i)).copied()?;
            if Some(v) == self.nodata {
                return None;
            }
            self.scale.apply(v)
        };
        let a = read(self.channels[c])?;
        match self.minus[c] {
            Some(layer) => Some(a - read(layer)?),
            None => Some(a),
        }
    }

    /// Whether texel `i` is missing data for this composite (a value read equals the nodata
    /// value, or has no dB value).
    pub fn is_missing(&self, bands: &[&[f32]], i: usize) -> bool {
        if self.index.is_some() {
            let read = |layer: u32| {
                bands
                    .get(layer as usize)
                    .and_then(|b| b.get(i))
                    .copied()
                    .filter(|v| Some(*v) != self.nodata)
            };
            return read(self.channels[0]).is_none() || read(self.channels[1]).is_none();
        }
        (0..3).any(|c| self.channel_value(bands, i, c).is_none())
    }
}

/// The class overlay of a draw: a palette indexed by class value and an opacity.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Overlay {
    /// RGBA per class value; alpha 0 for values that are no class (255, nodata).
    pub palette: [[u8; 4]; LUT_SIZE],
    /// 0 (invisible) to 1 (opaque classes).
    pub opacity: f32,
}

impl Overlay {
    /// A palette from `(value, rgb)` pairs: those entries opaque, every other value clear.
    pub fn from_classes(classes: &[(u8, [u8; 3])], opacity: f32) -> Self {
        let mut palette = [[0u8; 4]; LUT_SIZE];
        for (value, rgb) in classes {
            palette[usize::from(*value)] = [rgb[0], rgb[1], rgb[2], 255];
        }
        Overlay { palette, opacity }
    }

    /// The overlay mixed over `base` (the imagery's channel values in `[0, 1]`) for class
    /// `value`, as output bytes: `mix(base, colour, alpha * opacity)` as the shader does.
    pub fn blend(&self, base: [f32; 3], value: f32) -> [u8; 3] {
        let mut out = base;
        if self.opacity > 0.0 && (0.0..=255.0).contains(&value) {
            let entry = self.palette[value as usize];
            let a = f32::from(entry[3]) / 255.0 * self.opacity;
            for c in 0..3 {
                let p = f32::from(entry[c]) / 255.0;
                out[c] = base[c] * (1.0 - a) + p * a;
            }
        }
        out.map(unit_to_u8)
    }
}

/// Where a layer of band textures sits in view texels: its texel `(0, 0)` has its top-left
/// corner at `(origin_x, origin_y)` and each of its texels covers `scale` view texels. The
/// overview is `Placement::IDENTITY`; a tile of a finer level has a scale below 1.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Placement {
    /// View texel x of the layer's left edge.
    pub origin_x: f32,
    /// View texel y of the layer's top edge.
    pub origin_y: f32,
    /// View texels per layer texel (positive).
    pub scale: f32,
}

impl Placement {
    /// The layer is the view's own texture.
    pub const IDENTITY: Placement = Placement {
        origin_x: 0.0,
        origin_y: 0.0,
        scale: 1.0,
    };

    /// The layer texel a view texel coordinate falls in, the shader's arithmetic:
    /// `floor((t - origin) / scale)`.
    pub fn texel(&self, tx: f32, ty: f32) -> (f32, f32) {
        (
            ((tx - self.origin_x) / self.scale).floor(),
            ((ty - self.origin_y) / self.scale).floor(),
        )
    }
}

/// Colours of the nodata checkerboard: 8-pixel squares of two neutral greys.
pub const CHECKER_RGBA8: [[u8; 4]; 2] = [[0x4a, 0x4f, 0x57, 0xff], [0x3a, 0x3e, 0x45, 0xff]];

/// The checkerboard colour of canvas pixel `(x, y)` (drawn where data is missing).
pub fn checker_rgba8(x: u32, y: u32) -> [u8; 4] {
    CHECKER_RGBA8[((x / 8 + y / 8) % 2) as usize]
}

/// A value in `[0, 1]` as an output byte: `round(v * 255)`.
fn unit_to_u8(v: f32) -> u8 {
    // Clamped to [0, 1], so the cast cannot saturate.
    (v.clamp(0.0, 1.0) * 255.0).round() as u8
}

/// How texture space maps onto the canvas: canvas pixel `(x, y)` shows texel
/// `floor(origin + (x + 0.5, y + 0.5) * texels_per_pixel)`; texels outside the texture show
/// the background colour [`BACKGROUND_RGBA8`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct View {
    /// Texture x (in texels) of the canvas' left edge.
    pub origin_x: f32,
    /// Texture y (in texels) of the canvas' top edge.
    pub origin_y: f32,
    /// Texels per canvas pixel (both axes); above 1 zooms out.
    pub texels_per_pixel: f32,
}

impl View {
    /// The view that fits a `tex_width` x `tex_height` texture whole into a
    /// `canvas_width` x `canvas_height` canvas, centred, keeping square texels.
    pub fn fit(tex_width: u32, tex_height: u32, canvas_width: u32, canvas_height: u32) -> Self {
        let (tw, th) = (tex_width as f32, tex_height as f32);
        let (cw, ch) = (canvas_width.max(1) as f32, canvas_height.max(1) as f32);
        let texels_per_pixel = (tw / cw).max(th / ch);
        View {
            origin_x: (tw - cw * texels_per_pixel) / 2.0,
            origin_y: (th - ch * texels_per_pixel) / 2.0,
            texels_per_pixel,
        }
    }

    /// The texel a canvas pixel shows, or `None` where it shows the background; the same
    /// arithmetic (in `f32`) as the shader.
    pub fn texel_at(&self, x: u32, y: u32, tex_width: u32, tex_height: u32) -> Option<(u32, u32)> {
        let tx = (self.origin_x + (x as f32 + 0.5) * self.texels_per_pixel).floor();
        let ty = (self.origin_y + (y as f32 + 0.5) * self.texels_per_pixel).floor();
        let inside = tx >= 0.0 && ty >= 0.0 && tx < tex_width as f32 && ty < tex_height as f32;
        inside.then_some((tx as u32, ty as u32))
    }
}

/// One layer of band values for [`render_layers_cpu`]: what was given to
/// `upload_layer` (and `upload_classes`).
#[derive(Debug, Clone, Copy)]
pub struct CpuLayer<'a> {
    /// Where it sits in view texels.
    pub placement: Placement,
    /// Width in texels.
    pub width: u32,
    /// Height in texels.
    pub height: u32,
    /// Band values, each `width * height`.
    pub bands: &'a [&'a [f32]],
    /// Class values (`width * height`), if the layer has a class raster.
    pub classes: Option<&'a [f32]>,
}

/// Renders `composite` through `view` on the CPU into `width` x `height` RGBA8 bytes: the
/// expected output of the GPU (within one step per channel). `bands` are the band values as
/// given to `set_bands`, each `tex_width * tex_height`.
pub fn render_cpu(
    bands: &[&[f32]],
    tex_width: u32,
    tex_height: u32,
    composite: &Composite,
    view: &View,
    width: u32,
    height: u32,
) -> Vec<u8> {
    let layer = CpuLayer {
        placement: Placement::IDENTITY,
        width: tex_width,
        height: tex_height,
        bands,
        classes: None,
    };
    render_layers_cpu(&[layer], composite, None, view, width, height)
}

/// The colour of texel `i` of `bands` for `composite` at canvas pixel `(x, y)`, as channel
/// values in `[0, 1]` (before rounding to bytes), as the shader computes it. `lut` is the
/// composite's colormap table (index views).
fn composite_unit(
    composite: &Composite,
    lut: Option<&[[u8; 3]; LUT_SIZE]>,
    bands: &[&[f32]],
    i: usize,
    x: u32,
    y: u32,
) -> [f32; 3] {
    let unit = |rgb: [u8; 3]| rgb.map(|v| f32::from(v) / 255.0);
    let checker = || {
        let c = checker_rgba8(x, y);
        unit([c[0], c[1], c[2]])
    };
    if composite.is_missing(bands, i) {
        return checker();
    }
    if let Some(lut) = lut {
        let band = |layer: u32| bands[layer as usize][i];
        let (a, b) = (band(composite.channels[0]), band(composite.channels[1]));
        let rgb = match normalized_difference(a, b) {
            Some(v) => lut[lut_index(v, composite.min[0], composite.max[0])],
            None => INDEX_INVALID_RGB,
        };
        return unit(rgb);
    }
    let mut out = [0.0; 3];
    for (c, o) in out.iter_mut().enumerate() {
        let v = composite.channel_value(bands, i, c).unwrap_or(f32::NAN);
        *o = stretch_unit(v, composite.min[c], composite.max[c], composite.gamma[c]);
    }
    out
}

/// Renders layers (bottom first) through `view` on the CPU into `width` x `height` RGBA8
/// bytes, with the class overlay where a layer has classes: the GPU's output within one step.
/// Pixels outside every layer are [`BACKGROUND_RGBA8`].
pub fn render_layers_cpu(
    layers: &[CpuLayer<'_>],
    composite: &Composite,
    overlay: Option<&Overlay>,
    view: &View,
    width: u32,
    height: u32,
) -> Vec<u8> {
    let mut out = Vec::with_capacity(width as usize * height as usize * 4);
    // The colormap table is built once, not per pixel.
    let lut = composite.index.map(Colormap::lut);
    for y in 0..height {
        for x in 0..width {
            let tx = view.origin_x + (x as f32 + 0.5) * view.texels_per_pixel;
            let ty = view.origin_y + (y as f32 + 0.5) * view.texels_per_pixel;
            let hit = layers.iter().rev().find_map(|l| {
                let (lx, ly) = l.placement.texel(tx, ty);
                let inside = lx >= 0.0 && ly >= 0.0 && lx < l.width as f32 && ly < l.height as f32;
                inside.then(|| (l, ly as usize * l.width as usize + lx as usize))
            });
            match hit {
                Some((l, i)) => {
                    let base = composite_unit(composite, lut.as_ref(), l.bands, i, x, y);
                    let rgb = match (overlay, l.classes) {
                        (Some(o), Some(classes)) => o.blend(base, classes[i]),
                        _ => base.map(unit_to_u8),
                    };
                    out.extend_from_slice(&rgb);
                    out.push(255);
                }
                None => out.extend_from_slice(&BACKGROUND_RGBA8),
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wgsl_parses_and_validates() {
        use wgpu::naga;
        let module = naga::front::wgsl::parse_str(IMAGERY_WGSL).expect("WGSL parses");
        let mut validator = naga::valid::Validator::new(
            naga::valid::ValidationFlags::all(),
            naga::valid::Capabilities::empty(),
        );
        validator.validate(&module).expect("WGSL validates");
        for entry in ["vs_main", "fs_main"] {
            assert!(
                module.entry_points.iter().any(|e| e.name == entry),
                "entry point {entry}"
            );
        }
    }

    #[test]
    fn wgsl_translates_to_webgl2_glsl() {
        // `naga` (dev-dependency) is the crate `wgpu::naga` re-exports, with its GLSL writer.
        use naga::back::glsl;
        let module = naga::front::wgsl::parse_str(IMAGERY_WGSL).expect("WGSL parses");
        let info = naga::valid::Validator::new(
            naga::valid::ValidationFlags::all(),
            naga::valid::Capabilities::empty(),
        )
        .validate(&module)
        .expect("WGSL validates");
        let options = glsl::Options {
            version: glsl::Version::Embedded {
                version: 300,
                is_webgl: true,
            },
            ..Default::default()
        };
        for (stage, entry_point) in [
            (naga::ShaderStage::Vertex, "vs_main"),
            (naga::ShaderStage::Fragment, "fs_main"),
        ] {
            let pipeline = glsl::PipelineOptions {
                shader_stage: stage,
                entry_point: entry_point.into(),
                multiview: None,
            };
            let mut out = String::new();
            let mut writer = glsl::Writer::new(
                &mut out,
                &module,
                &info,
                &options,
                &pipeline,
                naga::proc::BoundsCheckPolicies::default(),
            )
            .expect("GLSL ES 3.00 writer");
            writer.write().expect("GLSL ES 3.00 output");
            assert!(out.starts_with("#version 300 es"), "{out}");
            if stage == naga::ShaderStage::Fragment {
                assert!(out.contains("texelFetch"), "exact texel reads: {out}");
            }
        }
    }

    #[test]
    fn fit_centres_the_image() {
        // T33UUU at step 2 (768x384) in a 768x512 canvas: one texel a pixel, 64 rows of
        // background above and below.
        let v = View::fit(768, 384, 768, 512);
        assert_eq!(v.texels_per_pixel, 1.0);
        assert_eq!((v.origin_x, v.origin_y), (0.0, -64.0));
        assert_eq!(v.texel_at(0, 63, 768, 384), None);
        assert_eq!(v.texel_at(0, 64, 768, 384), Some((0, 0)));
        assert_eq!(v.texel_at(767, 447, 768, 384), Some((767, 383)));
        assert_eq!(v.texel_at(767, 448, 768, 384), None);
        // A tall image is fitted by height and centred horizontally.
        let v = View::fit(100, 400, 200, 200);
        assert_eq!(v.texels_per_pixel, 2.0);
        assert_eq!((v.origin_x, v.origin_y), (-150.0, 0.0));
        assert_eq!(v.texel_at(74, 0, 100, 400), None);
        // Pixel centres sample every other texel: (75.5, 0.5) * 2 - (150, 0) = (1, 1).
        assert_eq!(v.texel_at(75, 0, 100, 400), Some((1, 1)));
        assert_eq!(v.texel_at(124, 199, 100, 400), Some((99, 399)));
        assert_eq!(v.texel_at(125, 0, 100, 400), None);
    }

    #[test]
    fn cpu_render_matches_the_formula() {
        let red = [0.0, 10.0, 20.0, 30.0];
        let green = [5.0; 4];
        let comp = Composite {
            channels: [0, 1, 0],
            minus: [None; 3],
            scale: ValueScale::Linear,
            min: [0.0, 0.0, 10.0],
            max: [30.0, 10.0, 20.0],
            gamma: [1.0; 3],
            index: None,
            nodata: None,
        };
        let view = View::fit(2, 2, 4, 2);
        // 2x2 texture in a 4x2 canvas: one column of background each side.
        let px = render_cpu(&[&red, &green], 2, 2, &comp, &view, 4, 2);
        assert_eq!(&px[0..4], &BACKGROUND_RGBA8);
        assert_eq!(&px[4..8], &[0, 128, 0, 255]);
        assert_eq!(&px[8..12], &[85, 128, 0, 255]);
        assert_eq!(&px[20..24], &[170, 128, 255, 255]);
        assert_eq!(&px[28..32], &BACKGROUND_RGBA8);
    }

    #[test]
    fn decibels_ratio_and_nodata() {
        let amp = ValueScale::Decibel { factor: 20.0 };
        assert!((amp.apply(100.0).unwrap() - 40.0).abs() < 1e-4);
        assert_eq!(amp.apply(0.0), None);
        assert!((ValueScale::Decibel { factor: 10.0 }.apply(0.01).unwrap() + 20.0).abs() < 1e-4);
        assert_eq!(ValueScale::Linear.apply(-3.0), Some(-3.0));
        let vv = [1000.0, 0.0, 10.0];
        let vh = [100.0, 5.0, 10.0];
        let comp = Composite {
            channels: [0, 1, 0],
            minus: [None, None, Some(1)],
            scale: amp,
            min: [0.0; 3],
            max: [60.0, 60.0, 20.0],
            gamma: [1.0; 3],
            index: None,
            nodata: Some(0.0),
        };
        let bands: [&[f32]; 2] = [&vv, &vh];
        // VV/VH = 10 in amplitude: 20 dB.
        assert!((comp.channel_value(&bands, 0, 2).unwrap() - 20.0).abs() < 1e-4);
        assert!(comp.is_missing(&bands, 1));
        assert!(!comp.is_missing(&bands, 2));
        let view = View::fit(3, 1, 3, 1);
        let px = render_cpu(&bands, 3, 1, &comp, &view, 3, 1);
        assert_eq!(&px[0..4], &[255, 170, 255, 255]);
        assert_eq!(&px[4..8], &checker_rgba8(1, 0));
        assert_eq!(&px[8..12], &[85, 85, 0, 255]);
    }

    #[test]
    fn overlay_blends_listed_classes_only() {
        let o = Overlay::from_classes(&[(2, [255, 0, 0])], 0.5);
        assert_eq!(o.blend([0.0, 0.0, 0.0], 2.0), [128, 0, 0]);
        assert_eq!(o.blend([1.0, 1.0, 1.0], 255.0), [255, 255, 255]);
        assert_eq!(o.blend([0.2, 0.2, 0.2], 3.0), [51, 51, 51]);
        let clear = Overlay::from_classes(&[(2, [255, 0, 0])], 0.0);
        assert_eq!(clear.blend([0.2, 0.2, 0.2], 2.0), [51, 51, 51]);
    }

    #[test]
    fn placement_maps_view_texels() {
        let p = Placement {
            origin_x: 4.0,
            origin_y: 1.0,
            scale: 0.5,
        };
        assert_eq!(p.texel(4.0, 1.0), (0.0, 0.0));
        assert_eq!(p.texel(4.49, 1.6), (0.0, 1.0));
        assert_eq!(p.texel(3.9, 1.0), (-1.0, 0.0));
        assert_eq!(Placement::IDENTITY.texel(2.7, 0.2), (2.0, 0.0));
    }

    #[test]
    fn cpu_render_of_an_index() {
        let nir = [3000.0, 1000.0, 0.0, 2000.0];
        let red = [1000.0, 3000.0, 0.0, 2000.0];
        let comp = Composite::index(0, 1, Colormap::BrownGreen);
        let view = View::fit(2, 2, 2, 2);
        let px = render_cpu(&[&nir, &red], 2, 2, &comp, &view, 2, 2);
        let lut = Colormap::BrownGreen.lut();
        assert_eq!(&px[0..3], &lut[192]);
        assert_eq!(&px[4..7], &lut[64]);
        assert_eq!(&px[8..11], &INDEX_INVALID_RGB);
        assert_eq!(&px[12..15], &lut[128]);
        assert_eq!(
            &px[0..3],
            &index_u8(3000.0, 1000.0, -1.0, 1.0, Colormap::BrownGreen)
        );
    }
}
