//! The imagery pipeline on a device: band texture array, uniforms, render pipeline.
//!
//! [`ImageryPipeline`] needs only a `wgpu::Device` and a colour format, no surface, so the
//! same code draws into a canvas ([`crate::Renderer`]) and into an offscreen texture
//! (read back with [`ImageryPipeline::read_back`], for headless tests and for checking WebGPU
//! output without presenting).

use std::cell::Cell;
use std::sync::{Arc, Mutex};

use bytemuck::{Pod, Zeroable};

use crate::error::RenderError;
use crate::{Colormap, Composite, LUT_SIZE, View};

/// The WGSL source of the imagery shader (vertex `vs_main`, fragment `fs_main`).
pub const IMAGERY_WGSL: &str = include_str!("imagery.wgsl");

/// Colour of canvas pixels outside the image: opaque `#1b1f24`.
pub const BACKGROUND_RGBA8: [u8; 4] = [0x1b, 0x1f, 0x24, 0xff];

/// Size of the colormap uniform: `LUT_SIZE` vec4 of f32.
const COLORMAP_BYTES: u64 = (LUT_SIZE * 16) as u64;

/// Band texture format: one exact 32-bit float per texel, read with `textureLoad`.
const BAND_FORMAT: wgpu::TextureFormat = wgpu::TextureFormat::R32Float;

/// Uniform block of `imagery.wgsl` (`Params`), 96 bytes.
#[repr(C)]
#[derive(Debug, Clone, Copy, Pod, Zeroable)]
struct Params {
    origin: [f32; 2],
    texels_per_pixel: f32,
    mode: i32,
    channels: [i32; 4],
    min_value: [f32; 4],
    max_value: [f32; 4],
    gamma: [f32; 4],
    background: [f32; 4],
}

impl Params {
    fn new(composite: &Composite, view: &View) -> Self {
        let c = composite;
        // Layers are checked against the band count (at most a few hundred) before this.
        let layer = |i: usize| i32::try_from(c.channels[i]).unwrap_or(i32::MAX);
        Params {
            origin: [view.origin_x, view.origin_y],
            texels_per_pixel: view.texels_per_pixel,
            mode: i32::from(c.index.is_some()),
            channels: [layer(0), layer(1), layer(2), 0],
            min_value: [c.min[0], c.min[1], c.min[2], 0.0],
            max_value: [c.max[0], c.max[1], c.max[2], 1.0],
            gamma: [c.gamma[0], c.gamma[1], c.gamma[2], 1.0],
            background: BACKGROUND_RGBA8.map(|b| f32::from(b) / 255.0),
        }
    }
}

/// The colormap uniform of `imagery.wgsl` (`Colormap`): rgb in `[0, 1]`, w 1.
fn colormap_uniform(colormap: Colormap) -> Vec<[f32; 4]> {
    colormap
        .lut()
        .iter()
        .map(|c| [c[0], c[1], c[2], 255].map(|v| f32::from(v) / 255.0))
        .collect()
}

/// The bands on the GPU.
#[derive(Debug)]
struct BandTexture {
    width: u32,
    height: u32,
    /// Bands the caller gave.
    bands: u32,
    /// Layers allocated (see [`allocated_layers`]).
    layers: u32,
    texture: wgpu::Texture,
    bind_group: wgpu::BindGroup,
}

/// Number of array layers to allocate for `bands` bands of a `width` x `height` texture.
///
/// The GL backend (WebGL2) guesses a texture's GL target from its shape: one layer becomes a
/// plain `TEXTURE_2D` and a square texture with a multiple of six layers a cube map, and
/// neither can be bound as `texture_2d_array`. One spare (never read) layer avoids both.
fn allocated_layers(width: u32, height: u32, bands: u32) -> u32 {
    if bands == 1 || (width == height && bands.is_multiple_of(6)) {
        bands + 1
    } else {
        bands
    }
}

/// Render pipeline, uniform buffer and band texture of the imagery composite.
#[derive(Debug)]
pub struct ImageryPipeline {
    format: wgpu::TextureFormat,
    pipeline: wgpu::RenderPipeline,
    layout: wgpu::BindGroupLayout,
    params: wgpu::Buffer,
    /// Lookup table of index mode (`LUT_SIZE` vec4), written when the colormap changes.
    colormap: wgpu::Buffer,
    /// Colormap now in `colormap`.
    colormap_loaded: Cell<Option<Colormap>>,
    bands: Option<BandTexture>,
}

impl ImageryPipeline {
    /// Builds the pipeline for render targets of `format`. Use a non-sRGB format
    /// (`Rgba8Unorm`, `Bgra8Unorm`) so output bytes are `round(v * 255)`.
    pub fn new(device: &wgpu::Device, format: wgpu::TextureFormat) -> Self {
        let module = device.create_shader_module(wgpu::ShaderModuleDescriptor {
            label: Some("albedo imagery"),
            source: wgpu::ShaderSource::Wgsl(IMAGERY_WGSL.into()),
        });
        let layout = device.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
            label: Some("albedo imagery"),
            entries: &[
                wgpu::BindGroupLayoutEntry {
                    binding: 0,
                    visibility: wgpu::ShaderStages::FRAGMENT,
                    ty: wgpu::BindingType::Buffer {
                        ty: wgpu::BufferBindingType::Uniform,
                        has_dynamic_offset: false,
                        min_binding_size: wgpu::BufferSize::new(size_of::<Params>() as u64),
                    },
                    count: None,
                },
                wgpu::BindGroupLayoutEntry {
                    binding: 1,
                    visibility: wgpu::ShaderStages::FRAGMENT,
                    ty: wgpu::BindingType::Texture {
                        sample_type: wgpu::TextureSampleType::Float { filterable: false },
                        view_dimension: wgpu::TextureViewDimension::D2Array,
                        multisampled: false,
                    },
                    count: None,
                },
                wgpu::BindGroupLayoutEntry {
                    binding: 2,
                    visibility: wgpu::ShaderStages::FRAGMENT,
                    ty: wgpu::BindingType::Buffer {
                        ty: wgpu::BufferBindingType::Uniform,
                        has_dynamic_offset: false,
                        min_binding_size: wgpu::BufferSize::new(COLORMAP_BYTES),
                    },
                    count: None,
                },
            ],
        });
        let pipeline_layout = device.create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
            label: Some("albedo imagery"),
            bind_group_layouts: &[Some(&layout)],
            immediate_size: 0,
        });
        let pipeline = device.create_render_pipeline(&wgpu::RenderPipelineDescriptor {
            label: Some("albedo imagery"),
            layout: Some(&pipeline_layout),
            vertex: wgpu::VertexState {
                module: &module,
                entry_point: Some("vs_main"),
                compilation_options: Default::default(),
                buffers: &[],
            },
            primitive: wgpu::PrimitiveState::default(),
            depth_stencil: None,
            multisample: wgpu::MultisampleState::default(),
            fragment: Some(wgpu::FragmentState {
                module: &module,
                entry_point: Some("fs_main"),
                compilation_options: Default::default(),
                targets: &[Some(wgpu::ColorTargetState {
                    format,
                    blend: None,
                    write_mask: wgpu::ColorWrites::ALL,
                })],
            }),
            multiview_mask: None,
            cache: None,
        });
        let params = device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("albedo imagery params"),
            size: size_of::<Params>() as u64,
            usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        let colormap = device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("albedo colormap"),
            size: COLORMAP_BYTES,
            usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        ImageryPipeline {
            format,
            pipeline,
            layout,
            params,
            colormap,
            colormap_loaded: Cell::new(None),
            bands: None,
        }
    }

    /// The render target format this pipeline was built for.
    pub fn format(&self) -> wgpu::TextureFormat {
        self.format
    }

    /// Size of the band texture (`width`, `height`, bands), if bands were set.
    pub fn band_size(&self) -> Option<(u32, u32, u32)> {
        self.bands.as_ref().map(|b| (b.width, b.height, b.bands))
    }

    /// Uploads `bands` (each `width * height` values, row by row) as the layers of an
    /// `R32Float` 2D texture array, replacing the previous bands. The texture is reused when
    /// its size is unchanged.
    pub fn set_bands(
        &mut self,
        device: &wgpu::Device,
        queue: &wgpu::Queue,
        width: u32,
        height: u32,
        bands: &[&[f32]],
    ) -> Result<(), RenderError> {
        let count = u32::try_from(bands.len()).unwrap_or(u32::MAX);
        let limits = device.limits();
        let layers = allocated_layers(width, height, count);
        let max_side = limits.max_texture_dimension_2d;
        if bands.is_empty() || width == 0 || height == 0 {
            return Err(RenderError::EmptyBands {
                width,
                height,
                bands: bands.len(),
            });
        }
        if width > max_side || height > max_side || layers > limits.max_texture_array_layers {
            return Err(RenderError::TooLarge {
                width,
                height,
                bands: count,
                max_side,
                max_layers: limits.max_texture_array_layers,
            });
        }
        let expected = width as usize * height as usize;
        if let Some((index, band)) = bands.iter().enumerate().find(|(_, b)| b.len() != expected) {
            return Err(RenderError::BandLength {
                index,
                len: band.len(),
                expected,
            });
        }

        let reuse = self
            .bands
            .as_ref()
            .is_some_and(|b| b.width == width && b.height == height && b.layers == layers);
        if !reuse {
            let texture = device.create_texture(&wgpu::TextureDescriptor {
                label: Some("albedo bands"),
                size: wgpu::Extent3d {
                    width,
                    height,
                    depth_or_array_layers: layers,
                },
                mip_level_count: 1,
                sample_count: 1,
                dimension: wgpu::TextureDimension::D2,
                format: BAND_FORMAT,
                usage: wgpu::TextureUsages::TEXTURE_BINDING | wgpu::TextureUsages::COPY_DST,
                view_formats: &[],
            });
            let view = texture.create_view(&wgpu::TextureViewDescriptor {
                label: Some("albedo bands"),
                dimension: Some(wgpu::TextureViewDimension::D2Array),
                ..Default::default()
            });
            let bind_group = device.create_bind_group(&wgpu::BindGroupDescriptor {
                label: Some("albedo imagery"),
                layout: &self.layout,
                entries: &[
                    wgpu::BindGroupEntry {
                        binding: 0,
                        resource: self.params.as_entire_binding(),
                    },
                    wgpu::BindGroupEntry {
                        binding: 1,
                        resource: wgpu::BindingResource::TextureView(&view),
                    },
                    wgpu::BindGroupEntry {
                        binding: 2,
                        resource: self.colormap.as_entire_binding(),
                    },
                ],
            });
            self.bands = Some(BandTexture {
                width,
                height,
                bands: count,
                layers,
                texture,
                bind_group,
            });
        }
        let target = self.bands.as_mut().expect("band texture was just ensured");
        target.bands = count;
        for (layer, band) in (0u32..).zip(bands) {
            queue.write_texture(
                wgpu::TexelCopyTextureInfo {
                    texture: &target.texture,
                    mip_level: 0,
                    origin: wgpu::Origin3d {
                        x: 0,
                        y: 0,
                        z: layer,
                    },
                    aspect: wgpu::TextureAspect::All,
                },
                bytemuck::cast_slice(band),
                wgpu::TexelCopyBufferLayout {
                    offset: 0,
                    bytes_per_row: Some(width * 4),
                    rows_per_image: Some(height),
                },
                wgpu::Extent3d {
                    width,
                    height,
                    depth_or_array_layers: 1,
                },
            );
        }
        tracing::debug!(width, height, bands = count, layers, "bands uploaded");
        Ok(())
    }

    /// Checks `composite` against the bands and records a render pass that fills `target`
    /// (a view of a texture of this pipeline's format) with the composite.
    pub fn encode(
        &self,
        queue: &wgpu::Queue,
        encoder: &mut wgpu::CommandEncoder,
        target: &wgpu::TextureView,
        composite: &Composite,
        view: &View,
    ) -> Result<(), RenderError> {
        let bands = self.bands.as_ref().ok_or(RenderError::NoBands)?;
        if let Some(&layer) = composite.channels.iter().find(|&&c| c >= bands.bands) {
            return Err(RenderError::Channel {
                layer,
                bands: bands.bands,
            });
        }
        let view_ok = view.texels_per_pixel.is_finite()
            && view.texels_per_pixel > 0.0
            && view.origin_x.is_finite()
            && view.origin_y.is_finite();
        if !view_ok {
            return Err(RenderError::View(*view));
        }
        if composite.gamma.iter().any(|g| !(g.is_finite() && *g > 0.0)) {
            return Err(RenderError::Gamma(composite.gamma));
        }
        if let Some(map) = composite.index
            && self.colormap_loaded.get() != Some(map)
        {
            queue.write_buffer(
                &self.colormap,
                0,
                bytemuck::cast_slice(&colormap_uniform(map)),
            );
            self.colormap_loaded.set(Some(map));
        }
        queue.write_buffer(
            &self.params,
            0,
            bytemuck::bytes_of(&Params::new(composite, view)),
        );
        let mut pass = encoder.begin_render_pass(&wgpu::RenderPassDescriptor {
            label: Some("albedo imagery"),
            color_attachments: &[Some(wgpu::RenderPassColorAttachment {
                view: target,
                depth_slice: None,
                resolve_target: None,
                ops: wgpu::Operations {
                    load: wgpu::LoadOp::Clear(wgpu::Color {
                        r: f64::from(BACKGROUND_RGBA8[0]) / 255.0,
                        g: f64::from(BACKGROUND_RGBA8[1]) / 255.0,
                        b: f64::from(BACKGROUND_RGBA8[2]) / 255.0,
                        a: 1.0,
                    }),
                    store: wgpu::StoreOp::Store,
                },
            })],
            depth_stencil_attachment: None,
            timestamp_writes: None,
            occlusion_query_set: None,
            multiview_mask: None,
        });
        pass.set_pipeline(&self.pipeline);
        pass.set_bind_group(0, &bands.bind_group, &[]);
        pass.draw(0..3, 0..1);
        Ok(())
    }

    /// Draws the composite into an offscreen `width` x `height` texture and reads it back
    /// as tightly packed RGBA8 rows, top row first (BGRA targets are swizzled to RGBA).
    ///
    /// Works on every backend: on WebGL2 the map callback fires from `device.poll`, on
    /// WebGPU from the browser's event loop while this future waits.
    pub async fn read_back(
        &self,
        device: &wgpu::Device,
        queue: &wgpu::Queue,
        width: u32,
        height: u32,
        composite: &Composite,
        view: &View,
    ) -> Result<Vec<u8>, RenderError> {
        let swizzle = match self.format {
            wgpu::TextureFormat::Rgba8Unorm => false,
            wgpu::TextureFormat::Bgra8Unorm => true,
            other => return Err(RenderError::Format(format!("{other:?}"))),
        };
        if width == 0 || height == 0 {
            return Err(RenderError::EmptyTarget { width, height });
        }
        let texture = device.create_texture(&wgpu::TextureDescriptor {
            label: Some("albedo readback target"),
            size: wgpu::Extent3d {
                width,
                height,
                depth_or_array_layers: 1,
            },
            mip_level_count: 1,
            sample_count: 1,
            dimension: wgpu::TextureDimension::D2,
            format: self.format,
            usage: wgpu::TextureUsages::RENDER_ATTACHMENT | wgpu::TextureUsages::COPY_SRC,
            view_formats: &[],
        });
        let target = texture.create_view(&wgpu::TextureViewDescriptor::default());
        let row_bytes = width * 4;
        let padded_row = row_bytes.div_ceil(wgpu::COPY_BYTES_PER_ROW_ALIGNMENT)
            * wgpu::COPY_BYTES_PER_ROW_ALIGNMENT;
        let buffer = device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("albedo readback"),
            size: u64::from(padded_row) * u64::from(height),
            usage: wgpu::BufferUsages::COPY_DST | wgpu::BufferUsages::MAP_READ,
            mapped_at_creation: false,
        });
        let mut encoder = device.create_command_encoder(&wgpu::CommandEncoderDescriptor {
            label: Some("albedo readback"),
        });
        self.encode(queue, &mut encoder, &target, composite, view)?;
        encoder.copy_texture_to_buffer(
            texture.as_image_copy(),
            wgpu::TexelCopyBufferInfo {
                buffer: &buffer,
                layout: wgpu::TexelCopyBufferLayout {
                    offset: 0,
                    bytes_per_row: Some(padded_row),
                    rows_per_image: Some(height),
                },
            },
            wgpu::Extent3d {
                width,
                height,
                depth_or_array_layers: 1,
            },
        );
        queue.submit([encoder.finish()]);

        let mapped = MapFuture::default();
        let shared = mapped.shared.clone();
        buffer.map_async(wgpu::MapMode::Read, .., move |result| {
            let mut state = shared.lock().unwrap_or_else(|e| e.into_inner());
            state.result = Some(result.map_err(|e| e.to_string()));
            if let Some(waker) = state.waker.take() {
                waker.wake();
            }
        });
        wait_for_map(device, mapped).await?;

        let mut rgba = Vec::with_capacity(row_bytes as usize * height as usize);
        {
            let data = buffer
                .get_mapped_range(..)
                .map_err(|e| RenderError::Gpu(e.to_string()))?;
            for row in data.chunks_exact(padded_row as usize) {
                rgba.extend_from_slice(&row[..row_bytes as usize]);
            }
        }
        buffer.unmap();
        if swizzle {
            for px in rgba.chunks_exact_mut(4) {
                px.swap(0, 2);
            }
        }
        Ok(rgba)
    }
}

/// Waits until the `map_async` callback behind `mapped` has run.
///
/// Natively, `device.poll` blocks until the GPU is done and runs the callback.
#[cfg(not(target_arch = "wasm32"))]
async fn wait_for_map(device: &wgpu::Device, mapped: MapFuture) -> Result<(), RenderError> {
    device
        .poll(wgpu::PollType::wait_indefinitely())
        .map_err(|e| RenderError::Gpu(e.to_string()))?;
    mapped.await.map_err(RenderError::Gpu)
}

/// Waits until the `map_async` callback behind `mapped` has run.
///
/// In a browser nothing may block: WebGL2 (wgpu-core) runs the callback only from
/// `device.poll`, and its fences signal only between event-loop tasks, so this polls once per
/// task (a zero-delay `setTimeout`); WebGPU runs the callback from the event loop by itself.
#[cfg(target_arch = "wasm32")]
async fn wait_for_map(device: &wgpu::Device, mapped: MapFuture) -> Result<(), RenderError> {
    loop {
        device
            .poll(wgpu::PollType::Poll)
            .map_err(|e| RenderError::Gpu(e.to_string()))?;
        if mapped.is_ready() {
            return mapped.await.map_err(RenderError::Gpu);
        }
        next_task().await;
    }
}

/// Resolves in a later event-loop task (`setTimeout(0)`), or at once outside a window.
#[cfg(target_arch = "wasm32")]
async fn next_task() {
    let promise = js_sys::Promise::new(&mut |resolve, _reject| {
        let scheduled = web_sys::window().is_some_and(|w| {
            w.set_timeout_with_callback_and_timeout_and_arguments_0(&resolve, 0)
                .is_ok()
        });
        if !scheduled {
            // No window (a worker): a resolved promise still lets other tasks run.
            let _ = resolve.call0(&wasm_bindgen::JsValue::UNDEFINED);
        }
    });
    let _ = wasm_bindgen_futures::JsFuture::from(promise).await;
}

#[derive(Debug, Default)]
struct MapState {
    result: Option<Result<(), String>>,
    waker: Option<std::task::Waker>,
}

/// Resolves when a `map_async` callback has run.
#[derive(Debug, Default)]
struct MapFuture {
    shared: Arc<Mutex<MapState>>,
}

impl MapFuture {
    /// Whether the callback has run (the future would complete now).
    #[cfg(target_arch = "wasm32")]
    fn is_ready(&self) -> bool {
        let state = self.shared.lock().unwrap_or_else(|e| e.into_inner());
        state.result.is_some()
    }
}

impl Future for MapFuture {
    type Output = Result<(), String>;

    fn poll(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Self::Output> {
        let mut state = self.shared.lock().unwrap_or_else(|e| e.into_inner());
        match state.result.take() {
            Some(result) => std::task::Poll::Ready(result),
            None => {
                state.waker = Some(cx.waker().clone());
                std::task::Poll::Pending
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn params_match_the_wgsl_uniform_layout() {
        // origin 8 + tpp 4 + pad 4 + five vec4 of 16 bytes.
        assert_eq!(size_of::<Params>(), 96);
        let module = wgpu::naga::front::wgsl::parse_str(IMAGERY_WGSL).expect("WGSL parses");
        let (_, global) = module
            .global_variables
            .iter()
            .find(|(_, g)| g.name.as_deref() == Some("params"))
            .expect("params uniform");
        let mut layouter = wgpu::naga::proc::Layouter::default();
        layouter
            .update(module.to_ctx())
            .expect("layout of WGSL types");
        assert_eq!(layouter[global.ty].size as usize, size_of::<Params>());
    }

    #[test]
    fn layers_avoid_gl_target_guesses() {
        assert_eq!(allocated_layers(100, 50, 1), 2);
        assert_eq!(allocated_layers(100, 50, 3), 3);
        assert_eq!(allocated_layers(100, 100, 6), 7);
        assert_eq!(allocated_layers(100, 50, 6), 6);
        assert_eq!(allocated_layers(64, 64, 12), 13);
        assert_eq!(allocated_layers(64, 64, 13), 13);
    }

    #[test]
    fn background_matches_the_design() {
        let p = Params::new(
            &Composite {
                channels: [0, 1, 2],
                min: [0.0; 3],
                max: [1.0; 3],
                gamma: [1.0; 3],
                index: None,
            },
            &View {
                origin_x: 0.0,
                origin_y: 0.0,
                texels_per_pixel: 1.0,
            },
        );
        let bytes = p.background.map(|c| (c * 255.0).round() as u8);
        assert_eq!(bytes, [27, 31, 36, 255]);
    }

    #[test]
    fn colormap_uniform_matches_the_wgsl_layout() {
        let module = wgpu::naga::front::wgsl::parse_str(IMAGERY_WGSL).expect("WGSL parses");
        let (_, global) = module
            .global_variables
            .iter()
            .find(|(_, g)| g.name.as_deref() == Some("colormap"))
            .expect("colormap uniform");
        let mut layouter = wgpu::naga::proc::Layouter::default();
        layouter
            .update(module.to_ctx())
            .expect("layout of WGSL types");
        assert_eq!(u64::from(layouter[global.ty].size), COLORMAP_BYTES);
        let u = colormap_uniform(Colormap::Blues);
        assert_eq!(u.len(), LUT_SIZE);
        // Bytes come back exact through a Unorm target: round(c / 255 * 255) == c.
        assert_eq!(
            u[0].map(|v| (v * 255.0).round() as u8),
            [247, 251, 255, 255]
        );
    }
}
