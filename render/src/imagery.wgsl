// Imagery composite, drawn layer by layer (a whole-product overview, then the tiles of a finer
// zoom level over it). Each layer is an R32Float texture array of band values plus an optional
// class raster of the same size.
//
// Per pixel: the view maps the pixel centre to "view texels" (the overview's texels); the
// layer's placement maps those to its own texel (origin, view texels per layer texel). Outside
// the layer: discard (a lower layer or the clear colour shows). Inside:
// - mode 0 (RGB): each channel reads a layer, optionally converts it to decibels
//   (db_factor * log10(v), factor 10 for power, 20 for amplitude), optionally subtracts a second
//   layer converted the same way (a ratio in dB), then stretches between min and max with a
//   gamma;
// - mode 1 (index): the normalized difference (a - b) / (a + b) of channels.x and channels.y,
//   mapped from [min_value.x, max_value.x] onto a 256-entry colormap.
// Any value read that equals the nodata value (or a non-positive value in dB) marks the pixel
// as missing: it shows a neutral checkerboard (8-pixel squares), never a colour of data. Then
// the class overlay: the class raster's value picks a palette entry (alpha 0 for values that
// are not a class, e.g. nodata 255) which is mixed over the imagery with the overlay opacity.
//
// The CPU references are `albedo_render::stretch_unit`, `index_u8` and `render_layers_cpu`;
// keep them in step. Texels are read with textureLoad (no sampler, no filtering).

struct Params {
    // View texel coordinate of the canvas' top-left corner.
    origin: vec2<f32>,
    // View texels covered by one canvas pixel along each axis.
    texels_per_pixel: f32,
    // 0: RGB composite; 1: normalized-difference index through the colormap.
    mode: i32,
    // Texture layer shown in R, G, B (w unused).
    channels: vec4<i32>,
    // Layer subtracted from each channel after the dB conversion, -1 for none (w unused).
    minus: vec4<i32>,
    // Stretch bounds and gamma per channel (w unused).
    min_value: vec4<f32>,
    max_value: vec4<f32>,
    gamma: vec4<f32>,
    // Colour of canvas pixels outside every layer (opaque).
    background: vec4<f32>,
    // The two colours of the nodata checkerboard.
    checker_a: vec4<f32>,
    checker_b: vec4<f32>,
    // The value that marks missing data, when has_nodata is 1.
    nodata: f32,
    has_nodata: i32,
    // 0: values as they are; 10 or 20: db_factor * log10(value).
    db_factor: f32,
    // Opacity of the class overlay (0: none).
    overlay_opacity: f32,
}

// Where one layer sits in view texels.
struct Layer {
    // View texel of the layer's texel (0, 0) top-left corner.
    origin: vec2<f32>,
    // View texels per layer texel.
    scale: f32,
    // 1 when the layer has a class raster.
    has_classes: i32,
}

// 256 RGBA entries (in [0, 1]): a colormap or the class palette.
struct Lut {
    entries: array<vec4<f32>, 256>,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<uniform> colormap: Lut;
@group(0) @binding(2) var<uniform> palette: Lut;
@group(1) @binding(0) var<uniform> layer: Layer;
@group(1) @binding(1) var bands: texture_2d_array<f32>;
@group(1) @binding(2) var classes: texture_2d_array<f32>;

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

fn is_missing(v: f32) -> bool {
    return params.has_nodata == 1 && v == params.nodata;
}

// The value of one layer after the dB conversion; `ok` is false where it is missing.
struct Value {
    v: f32,
    ok: bool,
}

fn value_of(texel: vec2<i32>, index: i32) -> Value {
    let raw = textureLoad(bands, texel, index, 0).x;
    if (is_missing(raw)) {
        return Value(0.0, false);
    }
    if (params.db_factor > 0.0) {
        if (raw <= 0.0) {
            return Value(0.0, false);
        }
        // log10(x) = log2(x) * log10(2).
        return Value(params.db_factor * (log2(raw) * 0.30102999566), true);
    }
    return Value(raw, true);
}

fn channel(texel: vec2<i32>, index: i32, minus: i32) -> Value {
    let a = value_of(texel, index);
    if (!a.ok || minus < 0) {
        return a;
    }
    let b = value_of(texel, minus);
    return Value(a.v - b.v, b.ok);
}

fn checker(position: vec2<f32>) -> vec4<f32> {
    let cell = vec2<i32>(floor(position / 8.0));
    if (((cell.x + cell.y) & 1) == 1) {
        return params.checker_b;
    }
    return params.checker_a;
}

fn imagery(texel: vec2<i32>, position: vec2<f32>) -> vec4<f32> {
    if (params.mode == 1) {
        let a = value_of(texel, params.channels.x);
        let b = value_of(texel, params.channels.y);
        if (!a.ok || !b.ok) {
            return checker(position);
        }
        let sum = a.v + b.v;
        if (sum == 0.0) {
            return vec4<f32>(0.0, 0.0, 0.0, 1.0);
        }
        let value = (a.v - b.v) / sum;
        let lo = params.min_value.x;
        let hi = params.max_value.x;
        var i = 0;
        if (hi > lo) {
            let k = clamp((value - lo) / (hi - lo), 0.0, 1.0);
            i = min(i32(floor(k * 256.0)), 255);
        }
        return vec4<f32>(colormap.entries[i].xyz, 1.0);
    }
    let r = channel(texel, params.channels.x, params.minus.x);
    let g = channel(texel, params.channels.y, params.minus.y);
    let b = channel(texel, params.channels.z, params.minus.z);
    if (!r.ok || !g.ok || !b.ok) {
        return checker(position);
    }
    return vec4<f32>(
        stretch(r.v, params.min_value.x, params.max_value.x, params.gamma.x),
        stretch(g.v, params.min_value.y, params.max_value.y, params.gamma.y),
        stretch(b.v, params.min_value.z, params.max_value.z, params.gamma.z),
        1.0,
    );
}

@fragment
fn fs_main(@builtin(position) position: vec4<f32>) -> @location(0) vec4<f32> {
    // position.xy is the pixel centre (x + 0.5, y + 0.5).
    let view_texel = params.origin + position.xy * params.texels_per_pixel;
    let t = floor((view_texel - layer.origin) / layer.scale);
    let size = vec2<f32>(textureDimensions(bands));
    if (t.x < 0.0 || t.y < 0.0 || t.x >= size.x || t.y >= size.y) {
        discard;
    }
    let texel = vec2<i32>(t);
    var colour = imagery(texel, position.xy);
    if (params.overlay_opacity > 0.0 && layer.has_classes == 1) {
        let k = textureLoad(classes, texel, 0, 0).x;
        if (k >= 0.0 && k <= 255.0) {
            let entry = palette.entries[i32(k)];
            let a = entry.w * params.overlay_opacity;
            colour = vec4<f32>(mix(colour.xyz, entry.xyz, a), 1.0);
        }
    }
    return colour;
}
