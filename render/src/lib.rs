//! `albedo-render`: the wgpu imagery renderer of Albedo.
//!
//! What it is: raw band values on the GPU and the shaders that turn them into pixels. Bands go
//! up once as an `R32Float` 2D texture array (one layer per band, read with `textureLoad`, so
//! values are exact); a draw picks three layers, stretches each linearly between a min and a
//! max with a gamma, and maps texture space onto the canvas with a [`View`] (origin and
//! texels per pixel). Output goes to a non-sRGB 8-bit target, so each output byte is
//! `round(v * 255)` and can be recomputed on the CPU with [`stretch_u8`]. It runs in the
//! browser (WebGPU when the browser gives an adapter, WebGL2 otherwise) and natively.
//!
//! What it is not: no UI and no Leptos, no HTTP, no file reading: callers hand it `f32`
//! slices. It does not decide what to show; [`percentile_stretch`] only helps pick a stretch.
//!
//! Layout:
//! - [`Renderer`] (`renderer.rs`): the pipeline bound to a surface (a `<canvas>` on the web).
//! - [`ImageryPipeline`] (`pipeline.rs`): device-level pipeline, band texture and offscreen
//!   readback, usable without a surface (headless tests).
//! - `imagery.wgsl`: the shader, exported as [`IMAGERY_WGSL`].
//! - [`stretch_u8`], [`percentile_stretch`] (`stretch.rs`): CPU reference and auto-stretch.
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
pub use pipeline::{BACKGROUND_RGBA8, IMAGERY_WGSL, ImageryPipeline};
pub use renderer::Renderer;
pub use stretch::{percentile_stretch, stretch_u8};

/// Which texture layers to show as red, green and blue, and how to stretch each.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Composite {
    /// Texture layer (band index given to `set_bands`) shown in R, G, B.
    pub channels: [u32; 3],
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
}

impl Composite {
    /// One band in all three channels: a grey view.
    pub fn grey(layer: u32, min: f32, max: f32, gamma: f32) -> Self {
        Composite {
            channels: [layer; 3],
            min: [min; 3],
            max: [max; 3],
            gamma: [gamma; 3],
            index: None,
        }
    }

    /// The normalized difference `(a - b) / (a + b)` of layers `a` and `b`, over `[-1, 1]`
    /// through `colormap` (NDVI: NIR and red; NDWI: green and NIR).
    pub fn index(a: u32, b: u32, colormap: Colormap) -> Self {
        Composite {
            channels: [a, b, b],
            min: [-1.0; 3],
            max: [1.0; 3],
            gamma: [1.0; 3],
            index: Some(colormap),
        }
    }
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
    let mut out = Vec::with_capacity(width as usize * height as usize * 4);
    let lut = composite.index.map(Colormap::lut);
    let band = |layer: u32, i: usize| {
        bands
            .get(layer as usize)
            .and_then(|b| b.get(i))
            .copied()
            .unwrap_or(f32::NAN)
    };
    for y in 0..height {
        for x in 0..width {
            match view.texel_at(x, y, tex_width, tex_height) {
                Some((tx, ty)) => {
                    let i = ty as usize * tex_width as usize + tx as usize;
                    if let Some(lut) = &lut {
                        let a = band(composite.channels[0], i);
                        let b = band(composite.channels[1], i);
                        let rgb = match normalized_difference(a, b) {
                            Some(v) => lut[lut_index(v, composite.min[0], composite.max[0])],
                            None => INDEX_INVALID_RGB,
                        };
                        out.extend_from_slice(&rgb);
                        out.push(255);
                        continue;
                    }
                    for c in 0..3 {
                        let value = band(composite.channels[c], i);
                        out.push(stretch_u8(
                            value,
                            composite.min[c],
                            composite.max[c],
                            composite.gamma[c],
                        ));
                    }
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
            min: [0.0, 0.0, 10.0],
            max: [30.0, 10.0, 20.0],
            gamma: [1.0; 3],
            index: None,
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
