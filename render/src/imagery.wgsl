// Imagery composite: three layers of an R32Float texture array, each stretched linearly
// between its min and max, gamma-corrected, drawn as opaque RGB. In index mode (mode 1) the
// normalized difference (a - b) / (a + b) of layers channels.x, channels.y is mapped from
// [min_value.x, max_value.x] onto a 256-entry colormap.
//
// The CPU references are `albedo_render::stretch_u8` and `albedo_render::index_u8`; keep them
// in step. Texels are read with textureLoad (no sampler, no filtering) so values are exact.

struct Params {
    // Texture coordinate (in texels) of the canvas' top-left corner.
    origin: vec2<f32>,
    // Texels covered by one canvas pixel along each axis.
    texels_per_pixel: f32,
    // 0: RGB composite; 1: normalized-difference index through the colormap.
    mode: i32,
    // Texture layer shown in R, G, B (w unused).
    channels: vec4<i32>,
    // Stretch bounds and gamma per channel (w unused).
    min_value: vec4<f32>,
    max_value: vec4<f32>,
    gamma: vec4<f32>,
    // Colour of canvas pixels outside the texture (opaque).
    background: vec4<f32>,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var bands: texture_2d_array<f32>;

// The colormap lookup table of index mode (rgb in [0, 1], w unused), uploaded once.
struct Colormap {
    entries: array<vec4<f32>, 256>,
}

@group(0) @binding(2) var<uniform> colormap: Colormap;

// One triangle that covers the whole viewport.
@vertex
fn vs_main(@builtin(vertex_index) index: u32) -> @builtin(position) vec4<f32> {
    var corners = array<vec2<f32>, 3>(
        vec2<f32>(-1.0, -1.0),
        vec2<f32>(3.0, -1.0),
        vec2<f32>(-1.0, 3.0),
    );
    return vec4<f32>(corners[index], 0.0, 1.0);
}

fn stretch(x: f32, lo: f32, hi: f32, gamma: f32) -> f32 {
    var v: f32;
    if (hi > lo) {
        v = clamp((x - lo) / (hi - lo), 0.0, 1.0);
    } else {
        v = select(0.0, 1.0, x >= hi);
    }
    // pow(0, y) is undefined in GLSL, and gamma 1 is kept exact.
    if (v > 0.0 && gamma != 1.0) {
        v = pow(v, 1.0 / gamma);
    }
    return v;
}

@fragment
fn fs_main(@builtin(position) position: vec4<f32>) -> @location(0) vec4<f32> {
    // position.xy is the pixel centre (x + 0.5, y + 0.5).
    let t = floor(params.origin + position.xy * params.texels_per_pixel);
    let size = vec2<f32>(textureDimensions(bands));
    if (t.x < 0.0 || t.y < 0.0 || t.x >= size.x || t.y >= size.y) {
        return params.background;
    }
    let texel = vec2<i32>(t);
    if (params.mode == 1) {
        let a = textureLoad(bands, texel, params.channels.x, 0).x;
        let b = textureLoad(bands, texel, params.channels.y, 0).x;
        let sum = a + b;
        if (sum == 0.0) {
            return vec4<f32>(0.0, 0.0, 0.0, 1.0);
        }
        let value = (a - b) / sum;
        let lo = params.min_value.x;
        let hi = params.max_value.x;
        var i = 0;
        if (hi > lo) {
            let k = clamp((value - lo) / (hi - lo), 0.0, 1.0);
            i = min(i32(floor(k * 256.0)), 255);
        }
        return vec4<f32>(colormap.entries[i].xyz, 1.0);
    }
    let r = textureLoad(bands, texel, params.channels.x, 0).x;
    let g = textureLoad(bands, texel, params.channels.y, 0).x;
    let b = textureLoad(bands, texel, params.channels.z, 0).x;
    return vec4<f32>(
        stretch(r, params.min_value.x, params.max_value.x, params.gamma.x),
        stretch(g, params.min_value.y, params.max_value.y, params.gamma.y),
        stretch(b, params.min_value.z, params.max_value.z, params.gamma.z),
        1.0,
    );
}
