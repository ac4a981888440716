//! [`Renderer`]: the imagery pipeline bound to a surface (a canvas on the web).

use std::sync::{Arc, Mutex};

use crate::error::RenderError;
use crate::pipeline::{BASE_LAYER, ImageryPipeline, LayerId};
use crate::{Composite, Overlay, Placement, View};

/// Draws band composites into a surface.
///
/// On the web, [`Renderer::for_canvas`] picks WebGPU when the browser hands out an adapter and
/// WebGL2 otherwise. Bands go to the GPU once ([`Renderer::set_bands`]); each
/// [`Renderer::draw`] then only updates a small uniform block.
#[derive(Debug)]
pub struct Renderer {
    device: wgpu::Device,
    queue: wgpu::Queue,
    surface: wgpu::Surface<'static>,
    config: wgpu::SurfaceConfiguration,
    backend: wgpu::Backend,
    adapter_name: String,
    pipeline: ImageryPipeline,
    /// First GPU error reported since the last check (validation, out of memory, lost).
    gpu_error: Arc<Mutex<Option<String>>>,
}

impl Renderer {
    /// Creates a renderer drawing into `canvas`, at the canvas' current `width` x `height`
    /// attributes.
    ///
    /// Uses WebGPU when `navigator.gpu` gives an adapter, else WebGL2
    /// (`wgpu::util::new_instance_with_webgpu_detection`).
    #[cfg(target_arch = "wasm32")]
    pub async fn for_canvas(canvas: web_sys::HtmlCanvasElement) -> Result<Self, RenderError> {
        let (width, height) = (canvas.width(), canvas.height());
        let mut desc = wgpu::InstanceDescriptor::new_without_display_handle();
        desc.backends = wgpu::Backends::BROWSER_WEBGPU | wgpu::Backends::GL;
        let instance = wgpu::util::new_instance_with_webgpu_detection(desc).await;
        let surface = instance
            .create_surface(wgpu::SurfaceTarget::Canvas(canvas))
            .map_err(|e| RenderError::Surface(e.to_string()))?;
        Self::from_surface(&instance, surface, width, height).await
    }

    /// Creates a renderer for an existing `surface` of `instance` (`width` x `height` pixels):
    /// picks an adapter that can present to it, opens a device with limits that fit the
    /// backend (WebGL2's downlevel limits on GL) and configures a non-sRGB 8-bit format.
    pub async fn from_surface(
        instance: &wgpu::Instance,
        surface: wgpu::Surface<'static>,
        width: u32,
        height: u32,
    ) -> Result<Self, RenderError> {
        if width == 0 || height == 0 {
            return Err(RenderError::EmptyTarget { width, height });
        }
        let adapter = instance
            .request_adapter(&wgpu::RequestAdapterOptions {
                compatible_surface: Some(&surface),
                ..Default::default()
            })
            .await
            .map_err(|e| RenderError::Adapter(e.to_string()))?;
        let info = adapter.get_info();
        let base_limits = match info.backend {
            wgpu::Backend::Gl => wgpu::Limits::downlevel_webgl2_defaults(),
            _ => wgpu::Limits::default(),
        };
        let (device, queue) = adapter
            .request_device(&wgpu::DeviceDescriptor {
                label: Some("albedo"),
                required_limits: base_limits.using_resolution(adapter.limits()),
                ..Default::default()
            })
            .await
            .map_err(|e| RenderError::Device(e.to_string()))?;

        let gpu_error: Arc<Mutex<Option<String>>> = Arc::default();
        let sink = gpu_error.clone();
        device.on_uncaptured_error(Arc::new(move |error: wgpu::Error| {
            tracing::error!(%error, "GPU error");
            let mut slot = sink.lock().unwrap_or_else(|e| e.into_inner());
            slot.get_or_insert_with(|| error.to_string());
        }));
        let sink = gpu_error.clone();
        device.set_device_lost_callback(move |reason, message| {
            tracing::error!(?reason, %message, "GPU device lost");
            let mut slot = sink.lock().unwrap_or_else(|e| e.into_inner());
            slot.get_or_insert_with(|| format!("device lost ({reason:?}): {message}"));
        });

        let caps = surface.get_capabilities(&adapter);
        let format = [
            wgpu::TextureFormat::Rgba8Unorm,
            wgpu::TextureFormat::Bgra8Unorm,
        ]
        .into_iter()
        .find(|f| caps.formats.contains(f))
        .ok_or_else(|| RenderError::Format(format!("{:?}", caps.formats)))?;
        let alpha_mode = if caps.alpha_modes.contains(&wgpu::CompositeAlphaMode::Opaque) {
            wgpu::CompositeAlphaMode::Opaque
        } else {
            caps.alpha_modes
                .first()
                .copied()
                .unwrap_or(wgpu::CompositeAlphaMode::Auto)
        };
        let config = wgpu::SurfaceConfiguration {
            usage: wgpu::TextureUsages::RENDER_ATTACHMENT,
            format,
            color_space: wgpu::SurfaceColorSpace::Auto,
            width,
            height,
            present_mode: wgpu::PresentMode::Fifo,
            desired_maximum_frame_latency: 2,
            alpha_mode,
            view_formats: vec![],
        };
        surface.configure(&device, &config);
        let pipeline = ImageryPipeline::new(&device, &queue, format);
        tracing::info!(
            backend = ?info.backend,
            adapter = %info.name,
            ?format,
            width,
            height,
            "renderer ready"
        );
        Ok(Renderer {
            device,
            queue,
            surface,
            config,
            backend: info.backend,
            adapter_name: info.name,
            pipeline,
            gpu_error,
        })
    }

    /// The backend in use: `"webgpu"` or `"webgl2"` in a browser; natively `"vulkan"`,
    /// `"metal"`, `"dx12"`, `"gl"` or `"noop"`.
    pub fn backend_name(&self) -> &'static str {
        match self.backend {
            wgpu::Backend::BrowserWebGpu => "webgpu",
            wgpu::Backend::Gl if cfg!(target_arch = "wasm32") => "webgl2",
            wgpu::Backend::Gl => "gl",
            wgpu::Backend::Vulkan => "vulkan",
            wgpu::Backend::Metal => "metal",
            wgpu::Backend::Dx12 => "dx12",
            wgpu::Backend::Noop => "noop",
        }
    }

    /// The adapter's name as the driver or browser reports it (may be empty on the web).
    pub fn adapter_name(&self) -> &str {
        &self.adapter_name
    }

    /// The surface format in use (`Rgba8Unorm` or `Bgra8Unorm`).
    pub fn format(&self) -> wgpu::TextureFormat {
        self.config.format
    }

    /// Surface size in pixels.
    pub fn size(&self) -> (u32, u32) {
        (self.config.width, self.config.height)
    }

    /// Size of the uploaded band texture (`width`, `height`, bands), if any.
    pub fn band_size(&self) -> Option<(u32, u32, u32)> {
        self.pipeline.band_size()
    }

    /// Reconfigures the surface for a new size (the canvas' new `width`/`height`).
    pub fn resize(&mut self, width: u32, height: u32) -> Result<(), RenderError> {
        if width == 0 || height == 0 {
            return Err(RenderError::EmptyTarget { width, height });
        }
        self.config.width = width;
        self.config.height = height;
        self.surface.configure(&self.device, &self.config);
        Ok(())
    }

    /// Uploads the bands (each `width * height` values, row by row) as one `R32Float` 2D
    /// texture array, one layer per band: the base layer, placed at [`Placement::IDENTITY`].
    /// Every other layer is dropped.
    pub fn set_bands(
        &mut self,
        width: u32,
        height: u32,
        bands: &[&[f32]],
    ) -> Result<(), RenderError> {
        self.take_gpu_error()?;
        self.pipeline
            .set_bands(&self.device, &self.queue, width, height, bands)?;
        self.take_gpu_error()
    }

    /// Uploads a layer of bands (a tile of a finer zoom level) at `placement` under `id`; it
    /// stays on the GPU until removed, drawn when a draw names it.
    pub fn upload_layer(
        &mut self,
        id: LayerId,
        placement: Placement,
        width: u32,
        height: u32,
        bands: &[&[f32]],
    ) -> Result<(), RenderError> {
        self.take_gpu_error()?;
        self.pipeline.upload_layer(
            &self.device,
            &self.queue,
            id,
            placement,
            width,
            height,
            bands,
        )?;
        self.take_gpu_error()
    }

    /// Uploads the class raster of layer `id` (its size), drawn by the overlay.
    pub fn upload_classes(&mut self, id: LayerId, classes: &[f32]) -> Result<(), RenderError> {
        self.take_gpu_error()?;
        self.pipeline
            .upload_classes(&self.device, &self.queue, id, classes)?;
        self.take_gpu_error()
    }

    /// Drops every layer's class raster.
    pub fn clear_classes(&mut self) {
        self.pipeline.clear_classes(&self.device, &self.queue);
    }

    /// Whether layer `id` is on the GPU.
    pub fn has_layer(&self, id: LayerId) -> bool {
        self.pipeline.has_layer(id)
    }

    /// Layers on the GPU.
    pub fn layer_count(&self) -> usize {
        self.pipeline.layer_count()
    }

    /// Keeps only the layers for which `keep` is true (the base layer included).
    pub fn retain_layers(&mut self, keep: impl FnMut(LayerId) -> bool) {
        self.pipeline.retain_layers(keep);
    }

    /// Draws `composite` seen through `view` into the surface and presents it (the base layer
    /// only, no overlay).
    pub fn draw(&mut self, composite: &Composite, view: &View) -> Result<(), RenderError> {
        self.draw_layers(composite, view, None, &[BASE_LAYER])
    }

    /// Draws `layers` (bottom first) with `composite` through `view`, and the class overlay,
    /// into the surface and presents it.
    ///
    /// GPU errors that the browser reports asynchronously (WebGPU) surface at the next call.
    pub fn draw_layers(
        &mut self,
        composite: &Composite,
        view: &View,
        overlay: Option<&Overlay>,
        layers: &[LayerId],
    ) -> Result<(), RenderError> {
        self.take_gpu_error()?;
        let frame = match self.surface.get_current_texture() {
            wgpu::CurrentSurfaceTexture::Success(frame)
            | wgpu::CurrentSurfaceTexture::Suboptimal(frame) => frame,
            wgpu::CurrentSurfaceTexture::Outdated | wgpu::CurrentSurfaceTexture::Lost => {
                self.surface.configure(&self.device, &self.config);
                match self.surface.get_current_texture() {
                    wgpu::CurrentSurfaceTexture::Success(frame)
                    | wgpu::CurrentSurfaceTexture::Suboptimal(frame) => frame,
                    other => return Err(RenderError::Frame(format!("{other:?}"))),
                }
            }
            other => return Err(RenderError::Frame(format!("{other:?}"))),
        };
        let target = frame
            .texture
            .create_view(&wgpu::TextureViewDescriptor::default());
        let mut encoder = self
            .device
            .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                label: Some("albedo draw"),
            });
        self.pipeline.encode_layers(
            &self.queue,
            &mut encoder,
            &target,
            self.size(),
            composite,
            view,
            overlay,
            layers,
        )?;
        self.queue.submit([encoder.finish()]);
        self.queue.present(frame);
        self.take_gpu_error()
    }

    /// Draws `layers` like [`Renderer::draw_layers`] into an offscreen texture of the
    /// surface's size and returns its RGBA8 bytes (rows top first), without touching the
    /// surface. On WebGPU in headless browsers, where presenting may fail, this is how output
    /// is checked.
    pub async fn read_back(
        &self,
        composite: &Composite,
        view: &View,
        overlay: Option<&Overlay>,
        layers: &[LayerId],
    ) -> Result<Vec<u8>, RenderError> {
        self.take_gpu_error()?;
        let rgba = self
            .pipeline
            .read_back(
                &self.device,
                &self.queue,
                self.size(),
                composite,
                view,
                overlay,
                layers,
            )
            .await?;
        self.take_gpu_error()?;
        Ok(rgba)
    }

    fn take_gpu_error(&self) -> Result<(), RenderError> {
        let mut slot = self.gpu_error.lock().unwrap_or_else(|e| e.into_inner());
        match slot.take() {
            Some(message) => Err(RenderError::Gpu(message)),
            None => Ok(()),
        }
    }
}
