//! Headless GPU tests: draw offscreen with the real shader and read the pixels back, compared
//! with the CPU reference (`render_layers_cpu`) and with bytes worked out by hand.
//!
//! Natively these run on whatever adapter wgpu finds (Mesa's llvmpipe through EGL on a
//! machine without a GPU: `wgpu` is built with `gles` for this crate's tests). Where no
//! adapter exists at all they say so on stderr and pass without drawing.

use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use albedo_render::{
    BACKGROUND_RGBA8, Composite, CpuLayer, ImageryPipeline, LayerId, Overlay, Placement,
    ValueScale, View, checker_rgba8, render_layers_cpu, stretch_unit,
};

/// Runs a future that completes without waking (native wgpu resolves adapter, device and
/// buffer-mapping futures while polling the device).
fn block_on<F: Future>(future: F) -> F::Output {
    let mut future = pin!(future);
    let mut cx = Context::from_waker(Waker::noop());
    loop {
        if let Poll::Ready(v) = future.as_mut().poll(&mut cx) {
            return v;
        }
        std::thread::yield_now();
    }
}

fn gpu() -> Option<(wgpu::Device, wgpu::Queue)> {
    let mut desc = wgpu::InstanceDescriptor::new_without_display_handle();
    desc.backends = wgpu::Backends::all();
    let instance = wgpu::Instance::new(desc);
    let adapter = match block_on(instance.request_adapter(&wgpu::RequestAdapterOptions::default()))
    {
        Ok(a) => a,
        Err(e) => {
            // `cargo xtask test` (CI) makes sure Mesa's llvmpipe is there and sets this: a
            // missing adapter is then a failure, not a silent pass.
            assert!(
                std::env::var_os("ALBEDO_REQUIRE_GPU").is_none(),
                "no GPU adapter (software or hardware) although ALBEDO_REQUIRE_GPU is set: {e}"
            );
            eprintln!("SKIPPED: no GPU adapter on this machine ({e})");
            return None;
        }
    };
    eprintln!("adapter: {:?}", adapter.get_info());
    let limits = wgpu::Limits::downlevel_webgl2_defaults().using_resolution(adapter.limits());
    let device = block_on(adapter.request_device(&wgpu::DeviceDescriptor {
        label: Some("albedo headless test"),
        required_limits: limits,
        ..Default::default()
    }))
    .expect("device");
    Some(device)
}

const W: u32 = 64;
const H: u32 = 32;

/// RGBA bytes of canvas pixel `(x, y)`.
fn px(rgba: &[u8], x: u32, y: u32) -> [u8; 4] {
    let i = ((y * W + x) * 4) as usize;
    [rgba[i], rgba[i + 1], rgba[i + 2], rgba[i + 3]]
}

fn assert_close(gpu: &[u8], cpu: &[u8], what: &str) {
    assert_eq!(gpu.len(), cpu.len());
    let worst = gpu
        .iter()
        .zip(cpu)
        .enumerate()
        .map(|(i, (a, b))| (a.abs_diff(*b), i))
        .max()
        .unwrap_or((0, 0));
    let at = worst.1 / 4 * 4;
    assert!(
        worst.0 <= 1,
        "{what}: byte {} differs by {} (gpu {:?}, cpu {:?})",
        worst.1,
        worst.0,
        &gpu[at..at + 4],
        &cpu[at..at + 4]
    );
}

#[test]
fn class_overlay_mixes_the_palette_at_its_opacity() {
    let Some((device, queue)) = gpu() else {
        return;
    };
    let mut pipeline = ImageryPipeline::new(&device, &queue, wgpu::TextureFormat::Rgba8Unorm);
    // A 16x8 grey ramp; classes: left half 0 (red), right half 1 (blue), last column 255
    // (nodata: no colour), bottom row 7 (no such class: no colour).
    let (tw, th) = (16u32, 8u32);
    let band: Vec<f32> = (0..tw * th).map(|i| ((i % tw) * 100) as f32).collect();
    let classes: Vec<f32> = (0..tw * th)
        .map(|i| {
            let (x, y) = (i % tw, i / tw);
            if x == tw - 1 {
                255.0
            } else if y == th - 1 {
                7.0
            } else if x < tw / 2 {
                0.0
            } else {
                1.0
            }
        })
        .collect();
    let base = LayerId(0);
    pipeline
        .upload_layer(&device, &queue, base, Placement::IDENTITY, tw, th, &[&band])
        .expect("upload");
    pipeline
        .upload_classes(&device, &queue, base, &classes)
        .expect("classes");
    let composite = Composite::grey(0, 0.0, 1500.0, 1.0);
    // 4 canvas pixels per texel: the 16x8 texture fills the 64x32 canvas.
    let view = View::fit(tw, th, W, H);
    assert_eq!(view.texels_per_pixel, 0.25);
    let palette = [(0u8, [255u8, 0, 0]), (1, [0, 0, 255])];
    for opacity in [0.0f32, 0.4, 1.0] {
        let overlay = Overlay::from_classes(&palette, opacity);
        let gpu = block_on(pipeline.read_back(
            &device,
            &queue,
            (W, H),
            &composite,
            &view,
            Some(&overlay),
            &[base],
        ))
        .expect("read back");
        let layer = CpuLayer {
            placement: Placement::IDENTITY,
            width: tw,
            height: th,
            bands: &[&band],
            classes: Some(&classes),
        };
        let cpu = render_layers_cpu(&[layer], &composite, Some(&overlay), &view, W, H);
        assert_close(&gpu, &cpu, &format!("opacity {opacity}"));
        let mix = |base: f32, class: f32| {
            ((base * (1.0 - opacity) + class * opacity) * 255.0).round() as u8
        };
        // By hand: texel (2, 1) (value 200, class 0: red) at canvas (9, 5).
        let grey = stretch_unit(200.0, 0.0, 1500.0, 1.0);
        assert_eq!(
            px(&gpu, 9, 5),
            [mix(grey, 1.0), mix(grey, 0.0), mix(grey, 0.0), 255]
        );
        // Texel (12, 2) (value 1200, class 1: blue).
        let grey = stretch_unit(1200.0, 0.0, 1500.0, 1.0);
        assert_eq!(
            px(&gpu, 49, 9),
            [mix(grey, 0.0), mix(grey, 0.0), mix(grey, 1.0), 255]
        );
        // Nodata class 255 and an unknown class 7 leave the imagery as it is.
        let plain = |v: f32| (stretch_unit(v, 0.0, 1500.0, 1.0) * 255.0).round() as u8;
        assert_eq!(
            px(&gpu, 61, 9),
            [plain(1500.0), plain(1500.0), plain(1500.0), 255]
        );
        assert_eq!(
            px(&gpu, 9, 30),
            [plain(200.0), plain(200.0), plain(200.0), 255]
        );
    }
}

#[test]
fn tiles_nodata_checker_and_decibel_ratio() {
    let Some((device, queue)) = gpu() else {
        return;
    };
    let mut pipeline = ImageryPipeline::new(&device, &queue, wgpu::TextureFormat::Rgba8Unorm);
    // Overview 8x4 (two bands: "VV", "VH" amplitudes); nodata 0 in its first column.
    let (tw, th) = (8u32, 4u32);
    let vv: Vec<f32> = (0..tw * th)
        .map(|i| {
            if i % tw == 0 {
                0.0
            } else {
                100.0 + i as f32 * 10.0
            }
        })
        .collect();
    let vh: Vec<f32> = (0..tw * th).map(|i| 20.0 + (i % 5) as f32 * 5.0).collect();
    // A finer tile (scale 0.5: 2x2 tile texels a view texel) over view texels 4..6 x 1..3.
    let (fw, fh) = (4u32, 4u32);
    let fvv: Vec<f32> = (0..fw * fh).map(|i| 300.0 + i as f32 * 20.0).collect();
    let fvh: Vec<f32> = (0..fw * fh).map(|i| 30.0 + i as f32).collect();
    let tile = Placement {
        origin_x: 4.0,
        origin_y: 1.0,
        scale: 0.5,
    };
    pipeline
        .upload_layer(
            &device,
            &queue,
            LayerId(0),
            Placement::IDENTITY,
            tw,
            th,
            &[&vv, &vh],
        )
        .expect("overview");
    pipeline
        .upload_layer(&device, &queue, LayerId(7), tile, fw, fh, &[&fvv, &fvh])
        .expect("tile");
    // R: VV in dB (amplitude: 20 log10), G: VH in dB, B: VV/VH in dB.
    let composite = Composite {
        channels: [0, 1, 0],
        minus: [None, None, Some(1)],
        scale: ValueScale::Decibel { factor: 20.0 },
        min: [35.0, 25.0, 0.0],
        max: [55.0, 35.0, 25.0],
        gamma: [1.0, 1.0, 1.0],
        index: None,
        nodata: Some(0.0),
    };
    // Zoomed out a little so the background shows on the right and bottom.
    let view = View {
        origin_x: 0.0,
        origin_y: 0.0,
        texels_per_pixel: 10.0 / W as f32,
    };
    let layers = [LayerId(0), LayerId(7)];
    let gpu =
        block_on(pipeline.read_back(&device, &queue, (W, H), &composite, &view, None, &layers))
            .expect("read back");
    let cpu = render_layers_cpu(
        &[
            CpuLayer {
                placement: Placement::IDENTITY,
                width: tw,
                height: th,
                bands: &[&vv, &vh],
                classes: None,
            },
            CpuLayer {
                placement: tile,
                width: fw,
                height: fh,
                bands: &[&fvv, &fvh],
                classes: None,
            },
        ],
        &composite,
        None,
        &view,
        W,
        H,
    );
    assert_close(&gpu, &cpu, "tiles over the overview");
    // Column 0 is nodata: the checkerboard, not black.
    assert_eq!(px(&gpu, 1, 1), checker_rgba8(1, 1));
    assert_eq!(px(&gpu, 1, 9), checker_rgba8(1, 9));
    assert_ne!(checker_rgba8(1, 1), checker_rgba8(1, 9));
    // Outside every layer: the background.
    assert_eq!(px(&gpu, 63, 31), BACKGROUND_RGBA8);
    // Inside the tile: canvas (28, 8) shows view texel (4.45, 1.33), tile texel (0, 0).
    let db = |v: f32| 20.0 * v.log10();
    let expected = [
        ((db(300.0) - 35.0) / 20.0 * 255.0).round() as u8,
        ((db(30.0) - 25.0) / 10.0 * 255.0).round() as u8,
        ((db(300.0) - db(30.0)) / 25.0 * 255.0).round() as u8,
        255,
    ];
    let got = px(&gpu, 28, 8);
    assert!(
        got.iter().zip(expected).all(|(a, b)| a.abs_diff(b) <= 1),
        "tile texel (0, 0): got {got:?}, expected {expected:?}"
    );
}
