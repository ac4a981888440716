//! The imagery pipeline on a device: band texture array, uniforms, render pipeline.
//!
//! [`ImageryPipeline`] needs only a `wgpu::Device` and a colour format, no surface, so the
//! same code draws into a canvas ([`crate::Renderer`]) and into an offscreen texture
//! (read back with [`ImageryPipeline::read_back`], for headless tests and for checking WebGPU
//! output without presenting).

use std::cell::Cell;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use bytemuck::{Pod, Zeroable};

use crate::error::RenderError;
use crate::{CHECKER_RGBA8, Colormap, Composite, LUT_SIZE, Overlay, Placement, View};

/// The WGSL source of the imagery shader (vertex `vs_main`, fragment `fs_main`).
pub const IMAGERY_WGSL: &str = include_str!("imagery.wgsl");

/// Colour of canvas pixels outside the image: opaque `#1b1f24`.
pub const BACKGROUND_RGBA8: [u8; 4] = [0x1b, 0x1f, 0x24, 0xff];

/// Size of a 256-entry lookup table uniform (colormap, palette): `LUT_SIZE` vec4 of f32.
const LUT_BYTES: u64 = (LUT_SIZE * 16) as u64;

/// Band texture format: one exact 32-bit float per texel, read with `textureLoad`.
const BAND_FORMAT: wgpu::TextureFormat = wgpu::TextureFormat::R32Float;

/// Names a layer of band textures uploaded to an [`ImageryPipeline`] (the caller picks ids).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LayerId(pub u64);

/// Uniform block of `imagery.wgsl` (`Params`), 160 bytes.
#[repr(C)]
#[derive(Debug, Clone, Copy, Pod, Zeroable)]
struct Params {
    origin: [f32; 2],
    texels_per_pixel: f32,
    mode: i32,
    channels: [i32; 4],
    minus: [i32; 4],
    min_value: [f32; 4],
    max_value: [f32; 4],
    gamma: [f32; 4],
    background: [f32; 4],
    checker_a: [f32; 4],
    checker_b: [f32; 4],
    nodata: f32,
    has_nodata: i32,
    db_factor: f32,
    overlay_opacity: f32,
}

fn unit4(c: [u8; 4]) -> [f32; 4] {
    c.map(|b| f32::from(b) / 255.0)
}

impl Params {
    fn new(composite: &Composite, view: &View, overlay: Option<&Overlay>) -> Self {
        let c = composite;
        // Layers are checked against the band count (at most a few hundred) before this.
        let layer = |i: u32| i32::try_from(i).unwrap_or(i32::MAX);
        let minus = |i: usize| c.minus[i].map(layer).unwrap_or(-1);
        Params {
            origin: [view.origin_x, view.origin_y],
            texels_per_pixel: view.texels_per_pixel,
            mode: i32::from(c.index.is_some()),
            channels: [
                layer(c.channels[0]),
                layer(c.channels[1]),
                layer(c.channels[2]),
                0,
            ],
            minus: [minus(0), minus(1), minus(2), -1],
            min_value: [c.min[0], c.min[1], c.min[2], 0.0],
            max_value: [c.max[0], c.max[1], c.max[2], 1.0],
            gamma: [c.gamma[0], c.gamma[1], c.gamma[2], 1.0],
            background: unit4(BACKGROUND_RGBA8),
            checker_a: unit4(CHECKER_RGBA8[0]),
            checker_b: unit4(CHECKER_RGBA8[1]),
            nodata: c.nodata.unwrap_or(0.0),
            has_nodata: i32::from(c.nodata.is_some()),
            db_factor: if c.index.is_some() {
                0.0
            } else {
                c.scale.db_factor()
            },
            overlay_opacity: overlay.map(|o| o.opacity.clamp(0.0, 1.0)).unwrap_or(0.0),
        }
    }
}

/// Uniform block `Layer` of `imagery.wgsl`, 16 bytes.
#[repr(C)]
#[derive(Debug, Clone, Copy, Pod, Zeroable)]
struct LayerUniform {
    origin: [f32; 2],
    scale: f32,
    has_classes: i32,
}

/// The colormap uniform of `imagery.wgsl` (`Lut`): rgb in `[0, 1]`, w 1.
fn colormap_uniform(colormap: Colormap) -> Vec<[f32; 4]> {
    colormap
        .lut()
        .iter()
        .map(|c| unit4([c[0], c[1], c[2], 255]))
        .collect()
}

/// The palette uniform of `imagery.wgsl` (`Lut`): rgba in `[0, 1]`.
fn palette_uniform(overlay: &Overlay) -> Vec<[f32; 4]> {
    overlay.palette.iter().map(|c| unit4(*c)).collect()
}

/// One layer of bands on the GPU (and its class raster, if any).
#[derive(Debug)]
struct GpuLayer {
    placement: Placement,
    width: u32,
    height: u32,
    /// Bands the caller gave.
    bands: u32,
    _texture: wgpu::Texture,
    texture_view: wgpu::TextureView,
    uniform: wgpu::Buffer,
    classes: Option<(wgpu::Texture, wgpu::TextureView)>,
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

/// An `R32Float` texture array holding `bands` (each `width * height`), with its view.
fn band_texture(
    device: &wgpu::Device,
    queue: &wgpu::Queue,
    label: &str,
    width: u32,
    height: u32,
    bands: &[&[f32]],
) -> (wgpu::Texture, wgpu::TextureView) {
    let count = u32::try_from(bands.len()).unwrap_or(u32::MAX);
    let layers = allocated_layers(width, height, count);
    let texture = device.create_texture(&wgpu::TextureDescriptor {
        label: Some(label),
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
    for (layer, band) in (0u32..).zip(bands) {
        queue.write_texture(
            wgpu::TexelCopyTextureInfo {
                texture: &texture,
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
    let view = texture.create_view(&wgpu::TextureViewDescriptor {
        label: Some(label),
        dimension: Some(wgpu::TextureViewDimension::D2Array),
        ..Default::default()
    });
    (texture, view)
}

/// Render pipeline, uniforms and band layers of the imagery composite.
#[derive(Debug)]
pub struct ImageryPipeline {
    format: wgpu::TextureFormat,
    pipeline: wgpu::RenderPipeline,
    layer_layout: wgpu::BindGroupLayout,
    params: wgpu::Buffer,
    /// Lookup table of index mode (`LUT_SIZE` vec4), written when the colormap changes.
    colormap: wgpu::Buffer,
    /// Colormap now in `colormap`.
    colormap_loaded: Cell<Option<Colormap>>,
    /// Class palette of the overlay (`LUT_SIZE` vec4).
    palette: wgpu::Buffer,
    /// Palette now in `palette`.
    palette_loaded: Cell<Option<[[u8; 4]; LUT_SIZE]>>,
    globals: wgpu::BindGroup,
    /// Bound where a layer has no class raster (WebGL2 needs every binding filled).
    no_classes: wgpu::TextureView,
    layers: BTreeMap<LayerId, GpuLayer>,
}

/// The layer [`ImageryPipeline::set_bands`] fills (drawn by [`ImageryPipeline::encode`]).
pub const BASE_LAYER: LayerId = LayerId(0);

impl ImageryPipeline {
    /// Builds the pipeline for render targets of `format`. Use a non-sRGB format
    /// (`Rgba8Unorm`, `Bgra8Unorm`) so output bytes are `round(v * 255)`.
    pub fn new(device: &wgpu::Device, queue: &wgpu::Queue, format: wgpu::TextureFormat) -> Self {
        let module = device.create_shader_module(wgpu::ShaderModuleDescriptor {
            label: Some("albedo imagery"),
            source: wgpu::ShaderSource::Wgsl(IMAGERY_WGSL.into()),
        });
        let uniform = |binding: u32, size: u64| wgpu::BindGroupLayoutEntry {
            binding,
            visibility: wgpu::ShaderStages::FRAGMENT,
            ty: wgpu::BindingType::Buffer {
                ty: wgpu::BufferBindingType::Uniform,
                has_dynamic_offset: false,
                min_binding_size: wgpu::BufferSize::new(size),
            },
            count: None,
        };
        let texture = |binding: u32| wgpu::BindGroupLayoutEntry {
            binding,
            visibility: wgpu::ShaderStages::FRAGMENT,
            ty: wgpu::BindingType::Texture {
                sample_type: wgpu::TextureSampleType::Float { filterable: false },
                view_dimension: wgpu::TextureViewDimension::D2Array,
                multisampled: false,
            },
            count: None,
        };
        let global_layout = device.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
            label: Some("albedo imagery globals"),
            entries: &[
                uniform(0, size_of::<Params>() as u64),
                uniform(1, LUT_BYTES),
                uniform(2, LUT_BYTES),
            ],
        });
        let layer_layout = device.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
            label: Some("albedo imagery layer"),
            entries: &[
                uniform(0, size_of::<LayerUniform>() as u64),
                texture(1),
                texture(2),
            ],
        });
        let pipeline_layout = device.create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
            label: Some("albedo imagery"),
            bind_group_layouts: &[Some(&global_layout), Some(&layer_layout)],
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
        let buffer = |label: &str, size: u64| {
            device.create_buffer(&wgpu::BufferDescriptor {
                label: Some(label),
                size,
                usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
                mapped_at_creation: false,
            })
        };
        let params = buffer("albedo imagery params", size_of::<Params>() as u64);
        let colormap = buffer("albedo colormap", LUT_BYTES);
        let palette = buffer("albedo class palette", LUT_BYTES);
        let globals = device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some("albedo imagery globals"),
            layout: &global_layout,
            entries: &[
                wgpu::BindGroupEntry {
                    binding: 0,
                    resource: params.as_entire_binding(),
                },
                wgpu::BindGroupEntry {
                    binding: 1,
                    resource: colormap.as_entire_binding(),
                },
                wgpu::BindGroupEntry {
                    binding: 2,
                    resource: palette.as_entire_binding(),
                },
            ],
        });
        let (_, no_classes) = band_texture(device, queue, "albedo no classes", 1, 1, &[&[255.0]]);
        ImageryPipeline {
            format,
            pipeline,
            layer_layout,
            params,
            colormap,
            colormap_loaded: Cell::new(None),
            palette,
            palette_loaded: Cell::new(None),
            globals,
            no_classes,
            layers: BTreeMap::new(),
        }
    }

    /// The render target format this pipeline was built for.
    pub fn format(&self) -> wgpu::TextureFormat {
        self.format
    }

    /// Size of the base layer (`width`, `height`, bands), if bands were set.
    pub fn band_size(&self) -> Option<(u32, u32, u32)> {
        self.layers
            .get(&BASE_LAYER)
            .map(|b| (b.width, b.height, b.bands))
    }

    /// Number of layers on the GPU.
    pub fn layer_count(&self) -> usize {
        self.layers.len()
    }

    /// Whether layer `id` is on the GPU.
    pub fn has_layer(&self, id: LayerId) -> bool {
        self.layers.contains_key(&id)
    }

    /// Uploads `bands` (each `width * height` values, row by row) as the base layer
    /// ([`BASE_LAYER`], placed at [`Placement::IDENTITY`]) and drops every other layer.
    pub fn set_bands(
        &mut self,
        device: &wgpu::Device,
        queue: &wgpu::Queue,
        width: u32,
        height: u32,
        bands: &[&[f32]],
    ) -> Result<(), RenderError> {
        self.layers.clear();
        self.upload_layer(
            device,
            queue,
            BASE_LAYER,
            Placement::IDENTITY,
            width,
            height,
            bands,
        )
    }

    /// Uploads `bands` (each `width * height` values, row by row) as the layers of an
    /// `R32Float` 2D texture array placed at `placement`, under `id` (replacing a layer of that
    /// id). Every layer drawn together must hold the same bands in the same order.
    #[allow(clippy::too_many_arguments)]
    pub fn upload_layer(
        &mut self,
        device: &wgpu::Device,
        queue: &wgpu::Queue,
        id: LayerId,
        placement: Placement,
        width: u32,
        height: u32,
        bands: &[&[f32]],
    ) -> Result<(), RenderError> {
        let count = u32::try_from(bands.len()).unwrap_or(u32::MAX);
        self.check_size(device, width, height, count)?;
        let expected = width as usize * height as usize;
        if let Some((index, band)) = bands.iter().enumerate().find(|(_, b)| b.len() != expected) {
            return Err(RenderError::BandLength {
                index,
                len: band.len(),
                expected,
            });
        }
        let placement_ok = placement.origin_x.is_finite()
            && placement.origin_y.is_finite()
            && placement.scale.is_finite()
            && placement.scale > 0.0;
        if !placement_ok {
            return Err(RenderError::Placement(placement));
        }
        let (texture, texture_view) =
            band_texture(device, queue, "albedo bands", width, height, bands);
        let uniform = device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("albedo layer"),
            size: size_of::<LayerUniform>() as u64,
            usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        let bind_group = self.layer_bind_group(device, &uniform, &texture_view, None);
        let layer = GpuLayer {
            placement,
            width,
            height,
            bands: count,
            _texture: texture,
            texture_view,
            uniform,
            classes: None,
            bind_group,
        };
        self.write_layer_uniform(queue, &layer);
        self.layers.insert(id, layer);
        tracing::debug!(id = id.0, width, height, bands = count, "layer uploaded");
        Ok(())
    }

    /// Uploads the class raster of layer `id` (`width * height` class values, the layer's
    /// size), drawn through the overlay's palette.
    pub fn upload_classes(
        &mut self,
        device: &wgpu::Device,
        queue: &wgpu::Queue,
        id: LayerId,
        classes: &[f32],
    ) -> Result<(), RenderError> {
        let Some(layer) = self.layers.get(&id) else {
            return Err(RenderError::NoLayer(id.0));
        };
        let expected = layer.width as usize * layer.height as usize;
        if classes.len() != expected {
            return Err(RenderError::BandLength {
                index: 0,
                len: classes.len(),
                expected,
            });
        }
        let (w, h) = (layer.width, layer.height);
        let (texture, view) = band_texture(device, queue, "albedo classes", w, h, &[classes]);
        let bind_group =
            self.layer_bind_group(device, &layer.uniform, &layer.texture_view, Some(&view));
        let layer = self.layers.get_mut(&id).expect("checked above");
        layer.classes = Some((texture, view));
        layer.bind_group = bind_group;
        let layer = &self.layers[&id];
        self.write_layer_uniform(queue, layer);
        Ok(())
    }

    /// Drops the class rasters of every layer.
    pub fn clear_classes(&mut self, device: &wgpu::Device, queue: &wgpu::Queue) {
        let ids: Vec<LayerId> = self
            .layers
            .iter()
            .filter(|(_, l)| l.classes.is_some())
            .map(|(id, _)| *id)
            .collect();
        for id in ids {
            let layer = &self.layers[&id];
            let bind_group =
                self.layer_bind_group(device, &layer.uniform, &layer.texture_view, None);
            let layer = self.layers.get_mut(&id).expect("listed above");
            layer.classes = None;
            layer.bind_group = bind_group;
            let layer = &self.layers[&id];
            self.write_layer_uniform(queue, layer);
        }
    }

    /// Drops layer `id` (its textures are freed).
    pub fn remove_layer(&mut self, id: LayerId) {
        self.layers.remove(&id);
    }

    /// Keeps only the layers for which `keep` is true.
    pub fn retain_layers(&mut self, mut keep: impl FnMut(LayerId) -> bool) {
        self.layers.retain(|id, _| keep(*id));
    }

    fn check_size(
        &self,
        device: &wgpu::Device,
        width: u32,
        height: u32,
        count: u32,
    ) -> Result<(), RenderError> {
        let limits = device.limits();
        let layers = allocated_layers(width, height, count);
        let max_side = limits.max_texture_dimension_2d;
        if count == 0 || width == 0 || height == 0 {
            return Err(RenderError::EmptyBands {
                width,
                height,
                bands: count as usize,
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
        Ok(())
    }

    fn layer_bind_group(
        &self,
        device: &wgpu::Device,
        uniform: &wgpu::Buffer,
        bands: &wgpu::TextureView,
        classes: Option<&wgpu::TextureView>,
    ) -> wgpu::BindGroup {
        device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some("albedo imagery layer"),
            layout: &self.layer_layout,
            entries: &[
                wgpu::BindGroupEntry {
                    binding: 0,
                    resource: uniform.as_entire_binding(),
                },
                wgpu::BindGroupEntry {
                    binding: 1,
                    resource: wgpu::BindingResource::TextureView(bands),
                },
                wgpu::BindGroupEntry {
                    binding: 2,
                    resource: wgpu::BindingResource::TextureView(
                        classes.unwrap_or(&self.no_classes),
                    ),
                },
            ],
        })
    }

    fn write_layer_uniform(&self, queue: &wgpu::Queue, layer: &GpuLayer) {
        let u = LayerUniform {
            origin: [layer.placement.origin_x, layer.placement.origin_y],
            scale: layer.placement.scale,
            has_classes: i32::from(layer.classes.is_some()),
        };
        queue.write_buffer(&layer.uniform, 0, bytemuck::bytes_of(&u));
    }

    /// Checks `composite` against the base layer and records a render pass that fills
    /// `target` (a view of a `width` x `height` texture of this pipeline's format) with it.
    #[allow(clippy::too_many_arguments)]
    pub fn encode(
        &self,
        queue: &wgpu::Queue,
        encoder: &mut wgpu::CommandEncoder,
        target: &wgpu::TextureView,
        size: (u32, u32),
        composite: &Composite,
        view: &View,
    ) -> Result<(), RenderError> {
        self.encode_layers(
            queue,
            encoder,
            target,
            size,
            composite,
            view,
            None,
            &[BASE_LAYER],
        )
    }

    /// Records a render pass that clears `target` (a view of a `size` texture of this
    /// pipeline's format) to the background and draws `layers` in order (bottom first) with
    /// `composite` through `view`, and the class overlay where a layer has classes. Layers not
    /// on the GPU are skipped.
    #[allow(clippy::too_many_arguments)]
    pub fn encode_layers(
        &self,
        queue: &wgpu::Queue,
        encoder: &mut wgpu::CommandEncoder,
        target: &wgpu::TextureView,
        size: (u32, u32),
        composite: &Composite,
        view: &View,
        overlay: Option<&Overlay>,
        layers: &[LayerId],
    ) -> Result<(), RenderError> {
        let drawn: Vec<&GpuLayer> = layers.iter().filter_map(|id| self.layers.get(id)).collect();
        if drawn.is_empty() {
            return Err(RenderError::NoBands);
        }
        let bands = drawn.iter().map(|l| l.bands).min().unwrap_or(0);
        let used = composite
            .channels
            .iter()
            .chain(composite.minus.iter().flatten());
        if let Some(&layer) = used.into_iter().find(|&&c| c >= bands) {
            return Err(RenderError::Channel { layer, bands });
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
        if let Some(o) = overlay
            && self.palette_loaded.get() != Some(o.palette)
        {
            queue.write_buffer(&self.palette, 0, bytemuck::cast_slice(&palette_uniform(o)));
            self.palette_loaded.set(Some(o.palette));
        }
        queue.write_buffer(
            &self.params,
            0,
            bytemuck::bytes_of(&Params::new(composite, view, overlay)),
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
        pass.set_bind_group(0, &self.globals, &[]);
        for layer in drawn {
            // Only the canvas pixels the layer may cover (the shader discards the rest).
            let Some((x, y, w, h)) = scissor(layer, view, size) else {
                continue;
            };
            pass.set_scissor_rect(x, y, w, h);
            pass.set_bind_group(1, &layer.bind_group, &[]);
            pass.draw(0..3, 0..1);
        }
        Ok(())
    }

    /// Draws the composite into an offscreen `width` x `height` texture and reads it back
    /// as tightly packed RGBA8 rows, top row first (BGRA targets are swizzled to RGBA).
    ///
    /// Works on every backend: on WebGL2 the map callback fires from `device.poll`, on
    /// WebGPU from the browser's event loop while this future waits.
    #[allow(clippy::too_many_arguments)]
    pub async fn read_back(
        &self,
        device: &wgpu::Device,
        queue: &wgpu::Queue,
        (width, height): (u32, u32),
        composite: &Composite,
        view: &View,
        overlay: Option<&Overlay>,
        layers: &[LayerId],
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
        self.encode_layers(
            queue,
            &mut encoder,
            &target,
            (width, height),
            composite,
            view,
            overlay,
            layers,
        )?;
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

/// The canvas rectangle `(x, y, width, height)` that `layer` may cover in a `size` target
/// seen through `view`, one pixel wider each side against rounding; `None` when it is off the
/// target.
fn scissor(layer: &GpuLayer, view: &View, (tw, th): (u32, u32)) -> Option<(u32, u32, u32, u32)> {
    let p = layer.placement;
    let to_px = |texel: f32, origin: f32| (texel - origin) / view.texels_per_pixel;
    let x0 = to_px(p.origin_x, view.origin_x).floor() - 1.0;
    let y0 = to_px(p.origin_y, view.origin_y).floor() - 1.0;
    let x1 = to_px(p.origin_x + layer.width as f32 * p.scale, view.origin_x).ceil() + 1.0;
    let y1 = to_px(p.origin_y + layer.height as f32 * p.scale, view.origin_y).ceil() + 1.0;
    let clamp = |v: f32, hi: u32| v.clamp(0.0, hi as f32) as u32;
    let (x0, x1) = (clamp(x0, tw), clamp(x1, tw));
    let (y0, y1) = (clamp(y0, th), clamp(y1, th));
    (x1 > x0 && y1 > y0).then_some((x0, y0, x1 - x0, y1 - y0))
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

    fn layout_size(name: &str) -> u64 {
        let module = wgpu::naga::front::wgsl::parse_str(IMAGERY_WGSL).expect("WGSL parses");
        let (_, global) = module
            .global_variables
            .iter()
            .find(|(_, g)| g.name.as_deref() == Some(name))
            .unwrap_or_else(|| panic!("{name} uniform"));
        let mut layouter = wgpu::naga::proc::Layouter::default();
        layouter
            .update(module.to_ctx())
            .expect("layout of WGSL types");
        u64::from(layouter[global.ty].size)
    }

    #[test]
    fn params_match_the_wgsl_uniform_layout() {
        // origin 8 + tpp 4 + mode 4 + eight vec4 of 16 bytes + four scalars.
        assert_eq!(size_of::<Params>(), 160);
        assert_eq!(layout_size("params"), size_of::<Params>() as u64);
        assert_eq!(layout_size("layer"), size_of::<LayerUniform>() as u64);
        assert_eq!(layout_size("colormap"), LUT_BYTES);
        assert_eq!(layout_size("palette"), LUT_BYTES);
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
    fn params_carry_background_checker_and_options() {
        let mut composite = Composite::grey(0, 0.0, 1.0, 1.0);
        composite.minus = [Some(1), None, None];
        composite.scale = crate::ValueScale::Decibel { factor: 20.0 };
        composite.nodata = Some(-99.0);
        let view = View {
            origin_x: 0.0,
            origin_y: 0.0,
            texels_per_pixel: 1.0,
        };
        let overlay = Overlay::from_classes(&[(1, [255, 0, 0])], 0.4);
        let p = Params::new(&composite, &view, Some(&overlay));
        let bytes = p.background.map(|c| (c * 255.0).round() as u8);
        assert_eq!(bytes, [27, 31, 36, 255]);
        assert_eq!(
            p.checker_a.map(|c| (c * 255.0).round() as u8),
            CHECKER_RGBA8[0]
        );
        assert_eq!(p.minus, [1, -1, -1, -1]);
        assert_eq!((p.nodata, p.has_nodata), (-99.0, 1));
        assert_eq!((p.db_factor, p.overlay_opacity), (20.0, 0.4));
        // Index views never convert to dB.
        let p = Params::new(&Composite::index(0, 1, Colormap::Blues), &view, None);
        assert_eq!(
            (p.db_factor, p.overlay_opacity, p.has_nodata),
            (0.0, 0.0, 0)
        );
    }

    #[test]
    fn luts_are_unit_rgba() {
        let u = colormap_uniform(Colormap::Blues);
        assert_eq!(u.len(), LUT_SIZE);
        // Bytes come back exact through a Unorm target: round(c / 255 * 255) == c.
        assert_eq!(
            u[0].map(|v| (v * 255.0).round() as u8),
            [247, 251, 255, 255]
        );
        let p = palette_uniform(&Overlay::from_classes(&[(3, [0, 128, 255])], 1.0));
        assert_eq!(p[3].map(|v| (v * 255.0).round() as u8), [0, 128, 255, 255]);
        assert_eq!(p[255], [0.0; 4]);
    }
}
