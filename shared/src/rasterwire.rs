//! The binary array of band values the backend serves to the renderer.
//!
//! Media type `application/x-albedo-raster`. Layout, all little-endian:
//!
//! | offset | size | field |
//! |---|---|---|
//! | 0 | 4 | magic `ALBR` |
//! | 4 | 1 | version, [`WIRE_VERSION`] |
//! | 5 | 1 | dtype code: 0 u8, 1 u16, 2 i16, 3 u32, 4 i32, 5 f32, 6 f64 |
//! | 6 | 2 | band count (u16) |
//! | 8 | 4 | width in pixels (u32) |
//! | 12 | 4 | height in pixels (u32) |
//! | 16 | 1 | flags: bit 0 = a nodata value is set |
//! | 17 | 7 | reserved, zero |
//! | 24 | 8 | nodata value (f64), meaningful only when flag bit 0 is set |
//! | 32 | .. | samples, band-sequential (all of band 0 row by row, then band 1, ...) |
//!
//! The header is exactly [`HEADER_LEN`] bytes, so the samples start 8-byte aligned.

use crate::SharedError;
use crate::catalog::Dtype;

/// Length of the header in bytes.
pub const HEADER_LEN: usize = 32;
/// Current version of the layout.
pub const WIRE_VERSION: u8 = 1;
/// Media type of an encoded raster.
pub const MEDIA_TYPE: &str = "application/x-albedo-raster";
const MAGIC: [u8; 4] = *b"ALBR";

/// The decoded header of a raster on the wire.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RasterHeader {
    /// Sample type of every band.
    pub dtype: Dtype,
    /// Number of bands.
    pub bands: u16,
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// Value marking missing data.
    pub nodata: Option<f64>,
}

fn dtype_code(d: Dtype) -> u8 {
    match d {
        Dtype::U8 => 0,
        Dtype::U16 => 1,
        Dtype::I16 => 2,
        Dtype::U32 => 3,
        Dtype::I32 => 4,
        Dtype::F32 => 5,
        Dtype::F64 => 6,
    }
}

fn dtype_from_code(c: u8) -> Result<Dtype, SharedError> {
    Ok(match c {
        0 => Dtype::U8,
        1 => Dtype::U16,
        2 => Dtype::I16,
        3 => Dtype::U32,
        4 => Dtype::I32,
        5 => Dtype::F32,
        6 => Dtype::F64,
        other => return Err(SharedError::UnknownDtype(other)),
    })
}

impl RasterHeader {
    /// Number of payload bytes this header implies.
    pub fn payload_len(&self) -> Result<usize, SharedError> {
        let overflow = SharedError::Overflow {
            width: self.width,
            height: self.height,
            bands: self.bands,
        };
        (self.width as usize)
            .checked_mul(self.height as usize)
            .and_then(|n| n.checked_mul(self.bands as usize))
            .and_then(|n| n.checked_mul(self.dtype.size_bytes()))
            .ok_or(overflow)
    }

    /// Writes the header as its 32 bytes.
    pub fn encode(&self) -> [u8; HEADER_LEN] {
        let mut out = [0u8; HEADER_LEN];
        out[0..4].copy_from_slice(&MAGIC);
        out[4] = WIRE_VERSION;
        out[5] = dtype_code(self.dtype);
        out[6..8].copy_from_slice(&self.bands.to_le_bytes());
        out[8..12].copy_from_slice(&self.width.to_le_bytes());
        out[12..16].copy_from_slice(&self.height.to_le_bytes());
        if let Some(nd) = self.nodata {
            out[16] = 1;
            out[24..32].copy_from_slice(&nd.to_le_bytes());
        }
        out
    }

    /// Reads a header and returns it with the payload bytes that follow it, checking that
    /// the buffer holds the whole payload.
    pub fn decode(buf: &[u8]) -> Result<(RasterHeader, &[u8]), SharedError> {
        if buf.len() < HEADER_LEN {
            return Err(SharedError::Truncated {
                needed: HEADER_LEN,
                have: buf.len(),
            });
        }
        let magic: [u8; 4] = buf[0..4].try_into().expect("4 bytes");
        if magic != MAGIC {
            return Err(SharedError::BadMagic { found: magic });
        }
        if buf[4] != WIRE_VERSION {
            return Err(SharedError::UnsupportedVersion(buf[4]));
        }
        let u32_at = |i: usize| u32::from_le_bytes(buf[i..i + 4].try_into().expect("4 bytes"));
        let header = RasterHeader {
            dtype: dtype_from_code(buf[5])?,
            bands: u16::from_le_bytes([buf[6], buf[7]]),
            width: u32_at(8),
            height: u32_at(12),
            nodata: (buf[16] & 1 == 1)
                .then(|| f64::from_le_bytes(buf[24..32].try_into().expect("8 bytes"))),
        };
        let payload_len = header.payload_len()?;
        let needed = HEADER_LEN
            .checked_add(payload_len)
            .ok_or(SharedError::Overflow {
                width: header.width,
                height: header.height,
                bands: header.bands,
            })?;
        if buf.len() < needed {
            return Err(SharedError::Truncated {
                needed,
                have: buf.len(),
            });
        }
        Ok((header, &buf[HEADER_LEN..needed]))
    }
}

/// Converts a band-sequential payload of `header.dtype` to `f32` samples, in the same order.
pub fn payload_to_f32(header: &RasterHeader, payload: &[u8]) -> Vec<f32> {
    fn conv<const N: usize>(payload: &[u8], f: impl Fn([u8; N]) -> f32) -> Vec<f32> {
        payload
            .chunks_exact(N)
            .map(|c| f(c.try_into().expect("chunk of N")))
            .collect()
    }
    match header.dtype {
        Dtype::U8 => payload.iter().map(|&b| f32::from(b)).collect(),
        Dtype::U16 => conv::<2>(payload, |b| f32::from(u16::from_le_bytes(b))),
        Dtype::I16 => conv::<2>(payload, |b| f32::from(i16::from_le_bytes(b))),
        Dtype::U32 => conv::<4>(payload, |b| u32::from_le_bytes(b) as f32),
        Dtype::I32 => conv::<4>(payload, |b| i32::from_le_bytes(b) as f32),
        Dtype::F32 => conv::<4>(payload, f32::from_le_bytes),
        Dtype::F64 => conv::<8>(payload, |b| f64::from_le_bytes(b) as f32),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> (RasterHeader, Vec<u8>) {
        let h = RasterHeader {
            dtype: Dtype::U16,
            bands: 2,
            width: 3,
            height: 1,
            nodata: Some(0.0),
        };
        let mut buf = h.encode().to_vec();
        for v in [1u16, 2, 3, 400, 500, 65535] {
            buf.extend_from_slice(&v.to_le_bytes());
        }
        (h, buf)
    }

    #[test]
    fn round_trips_header_and_payload() {
        let (h, buf) = sample();
        let (back, payload) = RasterHeader::decode(&buf).unwrap();
        assert_eq!(back, h);
        assert_eq!(
            payload_to_f32(&back, payload),
            vec![1.0, 2.0, 3.0, 400.0, 500.0, 65535.0]
        );
    }

    #[test]
    fn rejects_bad_input() {
        let (_, buf) = sample();
        assert!(matches!(
            RasterHeader::decode(&buf[..buf.len() - 1]),
            Err(SharedError::Truncated { .. })
        ));
        let mut bad = buf.clone();
        bad[0] = b'X';
        assert!(matches!(
            RasterHeader::decode(&bad),
            Err(SharedError::BadMagic { .. })
        ));
        let mut bad = buf.clone();
        bad[5] = 42;
        assert_eq!(
            RasterHeader::decode(&bad),
            Err(SharedError::UnknownDtype(42))
        );
        let mut huge = buf;
        huge[8..12].copy_from_slice(&u32::MAX.to_le_bytes());
        huge[12..16].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(RasterHeader::decode(&huge).is_err());
    }
}
