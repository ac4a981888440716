//! The viewer's tile pyramid arithmetic: which tiles of which zoom level cover a view.
//!
//! The backend's scheme (`GET /api/products/{id}/tiles/{z}/{x}/{y}`, see `backend/src/catalog.rs`):
//! level 0 is the product grid, level `L + 1` halves level `L` (`ceil`), the top level is the
//! first whose sides are both at most [`TILE_SIZE`]; zoom `z = Lmax - L`; tiles are
//! [`TILE_SIZE`] pixels from the top-left corner, cropped at the edges. Below level 0 a tile
//! pixel is the mean of the valid grid pixels under it.
//!
//! The viewer draws a whole-product overview (every `step`-th grid pixel, from `/raster`) and,
//! once the view is zoomed in past the overview's resolution, the tiles of the level whose
//! pixels are at most one canvas pixel over it. Positions are in "view texels", the overview's
//! texels: grid pixel `g` is view texel `g / step`.

use albedo_render::{LayerId, Placement, View};

use crate::api::GridWindow;

/// Side of a tile in pixels.
pub const TILE_SIZE: u32 = 256;

/// Size of level `level` of a `width` x `height` grid.
pub fn level_size(width: u32, height: u32, level: u32) -> (u32, u32) {
    let f = 1u64 << level.min(40);
    (
        u64::from(width).div_ceil(f) as u32,
        u64::from(height).div_ceil(f) as u32,
    )
}

/// The largest zoom (native resolution) of a `width` x `height` grid.
pub fn max_zoom(width: u32, height: u32) -> u32 {
    let mut level = 0;
    while level < 40 {
        let (w, h) = level_size(width, height, level);
        if w <= TILE_SIZE && h <= TILE_SIZE {
            return level;
        }
        level += 1;
    }
    level
}

/// One tile of one level.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TileKey {
    /// Pyramid level (0: native resolution).
    pub level: u32,
    /// Column of the tile.
    pub x: u32,
    /// Row of the tile.
    pub y: u32,
}

impl TileKey {
    /// Grid pixels per tile pixel along each axis.
    pub fn level_step(&self) -> u32 {
        1 << self.level.min(31)
    }

    /// The zoom of the tile URL for a `grid` product.
    pub fn zoom(&self, grid: (u32, u32)) -> u32 {
        max_zoom(grid.0, grid.1).saturating_sub(self.level)
    }

    /// The renderer layer holding this tile (never the overview's layer 0).
    pub fn layer_id(&self) -> LayerId {
        LayerId(
            (1u64 << 62)
                | (u64::from(self.level) << 48)
                | (u64::from(self.y) << 24)
                | u64::from(self.x),
        )
    }

    /// Tile width and height in pixels (edge tiles are cropped).
    pub fn size(&self, grid: (u32, u32)) -> (u32, u32) {
        let (lw, lh) = level_size(grid.0, grid.1, self.level);
        (
            TILE_SIZE.min(lw.saturating_sub(self.x * TILE_SIZE)),
            TILE_SIZE.min(lh.saturating_sub(self.y * TILE_SIZE)),
        )
    }

    /// The grid pixels the tile covers (cropped to the grid).
    pub fn grid_window(&self, grid: (u32, u32)) -> GridWindow {
        let s = self.level_step();
        let x = self.x * TILE_SIZE * s;
        let y = self.y * TILE_SIZE * s;
        GridWindow {
            x,
            y,
            width: (TILE_SIZE * s).min(grid.0.saturating_sub(x)),
            height: (TILE_SIZE * s).min(grid.1.saturating_sub(y)),
        }
    }

    /// Where the tile sits among view texels of an overview fetched every `step` grid pixels.
    pub fn placement(&self, step: u32) -> Placement {
        let step = step.max(1) as f32;
        let s = self.level_step() as f32;
        Placement {
            origin_x: (self.x * TILE_SIZE) as f32 * s / step,
            origin_y: (self.y * TILE_SIZE) as f32 * s / step,
            scale: s / step,
        }
    }
}

/// The level whose tiles a view needs, or `None` while the overview (every `step`-th grid
/// pixel) is at least as fine as the canvas pixels: the coarsest level finer than the
/// overview whose pixels are at most one canvas pixel wide, `floor(log2(grid px per canvas
/// px))`, at least 0.
pub fn wanted_level(view: &View, step: u32) -> Option<u32> {
    let grid_per_px = view.texels_per_pixel * step as f32;
    if step <= 1 || !grid_per_px.is_finite() || grid_per_px >= step as f32 {
        return None;
    }
    let level = if grid_per_px < 2.0 {
        0
    } else {
        grid_per_px.log2().floor() as u32
    };
    ((1u32 << level.min(31)) < step).then_some(level)
}

/// The tiles of `level` under a `canvas` seen through `view`, row by row.
pub fn visible_tiles(
    view: &View,
    canvas: (u32, u32),
    grid: (u32, u32),
    step: u32,
    level: u32,
) -> Vec<TileKey> {
    let tile_grid = (TILE_SIZE << level.min(20)) as f32;
    let step = step.max(1) as f32;
    let to_tile = |texel: f32| texel * step / tile_grid;
    let x0 = to_tile(view.origin_x).floor().max(0.0);
    let y0 = to_tile(view.origin_y).floor().max(0.0);
    let x1 = to_tile(view.origin_x + canvas.0 as f32 * view.texels_per_pixel).ceil();
    let y1 = to_tile(view.origin_y + canvas.1 as f32 * view.texels_per_pixel).ceil();
    let (lw, lh) = level_size(grid.0, grid.1, level);
    let (nx, ny) = (lw.div_ceil(TILE_SIZE) as f32, lh.div_ceil(TILE_SIZE) as f32);
    let mut out = Vec::new();
    let (x1, y1) = (x1.min(nx), y1.min(ny));
    let mut y = y0;
    while y < y1 {
        let mut x = x0;
        while x < x1 {
            out.push(TileKey {
                level,
                x: x as u32,
                y: y as u32,
            });
            x += 1.0;
        }
        y += 1.0;
    }
    out
}

/// `view` zoomed by `factor` (above 1 zooms in) around canvas pixel `(x, y)`, which keeps
/// showing the same view texel. The scale is kept between `min_tpp` and `max_tpp`.
pub fn zoom_view(view: &View, x: f32, y: f32, factor: f32, min_tpp: f32, max_tpp: f32) -> View {
    let tpp = (view.texels_per_pixel / factor).clamp(min_tpp, max_tpp);
    let tx = view.origin_x + x * view.texels_per_pixel;
    let ty = view.origin_y + y * view.texels_per_pixel;
    View {
        origin_x: tx - x * tpp,
        origin_y: ty - y * tpp,
        texels_per_pixel: tpp,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pyramid_matches_the_backend() {
        // The backend's own examples: 1536 x 768 has zooms 0..3, 6 x 3 tiles at zoom 3.
        assert_eq!(max_zoom(1536, 768), 3);
        assert_eq!(max_zoom(256, 100), 0);
        assert_eq!(level_size(1536, 768, 1), (768, 384));
        let t = TileKey {
            level: 0,
            x: 5,
            y: 2,
        };
        assert_eq!(t.zoom((1536, 768)), 3);
        assert_eq!(t.size((1536, 768)), (256, 256));
        let edge = TileKey {
            level: 1,
            x: 1,
            y: 0,
        };
        // Level 1 of 687 x 687 is 344 x 344: the second tile is 88 wide.
        assert_eq!(edge.size((687, 687)), (88, 256));
        assert_eq!(
            edge.grid_window((687, 687)),
            GridWindow {
                x: 512,
                y: 0,
                width: 175,
                height: 512
            }
        );
        assert_ne!(edge.layer_id(), t.layer_id());
        assert_ne!(edge.layer_id(), LayerId(0));
    }

    #[test]
    fn placement_in_view_texels() {
        // Overview every 2nd grid pixel; a native tile (1, 0) starts at grid x 256 = view 128.
        let p = TileKey {
            level: 0,
            x: 1,
            y: 0,
        }
        .placement(2);
        assert_eq!((p.origin_x, p.origin_y, p.scale), (128.0, 0.0, 0.5));
        // View texel 130.3 is grid 260.6: native pixel 260, tile texel 4.
        assert_eq!(p.texel(130.3, 0.2), (4.0, 0.0));
    }

    #[test]
    fn levels_for_views() {
        let view = |tpp: f32| View {
            origin_x: 0.0,
            origin_y: 0.0,
            texels_per_pixel: tpp,
        };
        // The fitted overview (one texel a pixel) needs no tile.
        assert_eq!(wanted_level(&view(1.0), 2), None);
        assert_eq!(wanted_level(&view(0.9), 2), Some(0));
        assert_eq!(wanted_level(&view(0.25), 21), Some(2));
        assert_eq!(wanted_level(&view(0.7), 21), Some(3));
        assert_eq!(wanted_level(&view(0.1), 1), None);
        // Tiles under the canvas: 768 x 512 canvas, overview step 2, zoomed 2x at the origin.
        let tiles = visible_tiles(&view(0.5), (768, 512), (1536, 768), 2, 0);
        assert_eq!(tiles.len(), 3 * 2);
        assert_eq!(
            tiles[0],
            TileKey {
                level: 0,
                x: 0,
                y: 0
            }
        );
        // Panned past the end: cropped to the pyramid.
        let far = View {
            origin_x: 700.0,
            origin_y: 350.0,
            texels_per_pixel: 0.5,
        };
        assert_eq!(
            visible_tiles(&far, (768, 512), (1536, 768), 2, 0),
            vec![TileKey {
                level: 0,
                x: 5,
                y: 2
            }]
        );
    }

    #[test]
    fn zoom_keeps_the_point_under_the_cursor() {
        let v = View {
            origin_x: 10.0,
            origin_y: -64.0,
            texels_per_pixel: 1.0,
        };
        let z = zoom_view(&v, 100.0, 200.0, 2.0, 0.01, 100.0);
        assert_eq!(z.texels_per_pixel, 0.5);
        assert_eq!(z.origin_x + 100.0 * 0.5, 110.0);
        assert_eq!(z.origin_y + 200.0 * 0.5, 136.0);
        let clamped = zoom_view(&v, 0.0, 0.0, 1000.0, 0.05, 100.0);
        assert_eq!(clamped.texels_per_pixel, 0.05);
    }
}
