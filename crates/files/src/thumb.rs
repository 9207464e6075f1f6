//! Thumbnails: PocketBase's size forms (`WxH`, `WxHt`, `WxHb`, `WxHf`, `0xH`, `Wx0`), decoded
//! under hard limits so a decompression bomb or a header claiming a gigantic canvas is refused
//! before any pixel buffer is allocated.

use std::io::Cursor;

use image::imageops::FilterType;
use image::{DynamicImage, ImageFormat, ImageReader, Limits};

use crate::{Error, Result};

/// Largest width or height of an image a thumb is made from.
pub const MAX_SOURCE_DIMENSION: u32 = 12_000;
/// Largest allocation the decoder may make (bytes).
pub const MAX_DECODE_ALLOC: u64 = 512 << 20;
/// Largest thumb side (PocketBase accepts any number; this bounds the output buffer).
pub const MAX_THUMB_DIMENSION: u32 = 4_000;

/// How a thumb fits its box.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// `WxH`: cover the box, crop around the center.
    Center,
    /// `WxHt`: cover the box, crop keeping the top.
    Top,
    /// `WxHb`: cover the box, crop keeping the bottom.
    Bottom,
    /// `WxHf`: fit inside the box, never enlarged, no crop.
    Fit,
    /// `0xH` / `Wx0`: one side fixed, the other from the aspect ratio.
    Scale,
}

/// A parsed thumb size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ThumbSize {
    /// Width (0 = from the aspect ratio).
    pub width: u32,
    /// Height (0 = from the aspect ratio).
    pub height: u32,
    /// Fitting mode.
    pub mode: Mode,
}

impl ThumbSize {
    /// Parses `^(\d+)x(\d+)(t|b|f)?$`; `0x0` and sides above [`MAX_THUMB_DIMENSION`] are
    /// refused, as is a suffix together with a zero side.
    pub fn parse(text: &str) -> Option<Self> {
        let (w, rest) = text.split_once('x')?;
        let digits_end = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        let (h, suffix) = rest.split_at(digits_end);
        let number = |s: &str| -> Option<u32> {
            if s.is_empty() || s.len() > 9 || !s.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            s.parse().ok()
        };
        let (width, height) = (number(w)?, number(h)?);
        if (width == 0 && height == 0)
            || width > MAX_THUMB_DIMENSION
            || height > MAX_THUMB_DIMENSION
        {
            return None;
        }
        let mode = match suffix {
            "" if width == 0 || height == 0 => Mode::Scale,
            "" => Mode::Center,
            "t" => Mode::Top,
            "b" => Mode::Bottom,
            "f" => Mode::Fit,
            _ => return None,
        };
        if mode != Mode::Scale && (width == 0 || height == 0) {
            return None;
        }
        Some(Self {
            width,
            height,
            mode,
        })
    }
}

/// Decoding limits applied to every source image.
fn limits() -> Limits {
    let mut limits = Limits::default();
    limits.max_image_width = Some(MAX_SOURCE_DIMENSION);
    limits.max_image_height = Some(MAX_SOURCE_DIMENSION);
    limits.max_alloc = Some(MAX_DECODE_ALLOC);
    limits
}

/// The format a thumb of `source` is written in: jpeg, gif and png keep theirs, anything else
/// becomes png.
fn output_format(source: ImageFormat) -> ImageFormat {
    match source {
        ImageFormat::Jpeg => ImageFormat::Jpeg,
        ImageFormat::Gif => ImageFormat::Gif,
        _ => ImageFormat::Png,
    }
}

/// Makes a thumb of the encoded image `source`. CPU-heavy: call it off the async executor.
pub fn render(source: &[u8], size: ThumbSize) -> Result<Vec<u8>> {
    let mut reader = ImageReader::new(Cursor::new(source))
        .with_guessed_format()
        .map_err(|e| Error::Image(e.to_string()))?;
    let format = reader
        .format()
        .ok_or_else(|| Error::Image("unknown image format".into()))?;
    reader.limits(limits());
    let (w, h) = reader
        .into_dimensions()
        .map_err(|e| Error::Image(e.to_string()))?;
    if w == 0 || h == 0 || w > MAX_SOURCE_DIMENSION || h > MAX_SOURCE_DIMENSION {
        return Err(Error::Image(format!("image of {w}x{h} refused")));
    }
    let mut reader = ImageReader::with_format(Cursor::new(source), format);
    reader.limits(limits());
    let image = reader.decode().map_err(|e| Error::Image(e.to_string()))?;
    let thumb = resize(image, size);
    let out_format = output_format(format);
    let mut out = Cursor::new(Vec::new());
    let thumb = match out_format {
        ImageFormat::Jpeg => DynamicImage::ImageRgb8(thumb.to_rgb8()),
        _ => thumb,
    };
    thumb
        .write_to(&mut out, out_format)
        .map_err(|e| Error::Image(e.to_string()))?;
    Ok(out.into_inner())
}

/// Scales (area-averaging when shrinking, linear when enlarging) to `w`×`h`.
fn scale(image: &DynamicImage, w: u32, h: u32) -> DynamicImage {
    let (w, h) = (w.max(1), h.max(1));
    if w <= image.width() && h <= image.height() {
        image.thumbnail_exact(w, h)
    } else {
        image.resize_exact(w, h, FilterType::Triangle)
    }
}

fn resize(image: DynamicImage, size: ThumbSize) -> DynamicImage {
    let (sw, sh) = (image.width() as f64, image.height() as f64);
    let (tw, th) = (size.width, size.height);
    match size.mode {
        Mode::Scale => {
            let (w, h) = if tw == 0 {
                ((sw * th as f64 / sh).round() as u32, th)
            } else {
                (tw, (sh * tw as f64 / sw).round() as u32)
            };
            scale(
                &image,
                w.clamp(1, MAX_THUMB_DIMENSION),
                h.clamp(1, MAX_THUMB_DIMENSION),
            )
        }
        Mode::Fit => {
            if image.width() <= tw && image.height() <= th {
                return image;
            }
            let ratio = (tw as f64 / sw).min(th as f64 / sh);
            let w = ((sw * ratio).round() as u32).max(1);
            let h = ((sh * ratio).round() as u32).max(1);
            scale(&image, w, h)
        }
        Mode::Center | Mode::Top | Mode::Bottom => {
            // Crop the largest region with the box's aspect ratio, then scale it to the box.
            let target = tw as f64 / th as f64;
            let (cw, ch) = if sw / sh > target {
                ((sh * target).round().max(1.0), sh)
            } else {
                (sw, (sw / target).round().max(1.0))
            };
            let x = ((sw - cw) / 2.0).round() as u32;
            let y = match size.mode {
                Mode::Top => 0,
                Mode::Bottom => (sh - ch) as u32,
                _ => ((sh - ch) / 2.0).round() as u32,
            };
            let cropped = image.crop_imm(x, y, cw as u32, ch as u32);
            scale(&cropped, tw, th)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::{ImageEncoder, RgbImage};

    fn png(w: u32, h: u32) -> Vec<u8> {
        let img = RgbImage::from_fn(w, h, |x, y| image::Rgb([x as u8, y as u8, 7]));
        let mut out = Vec::new();
        image::codecs::png::PngEncoder::new(&mut out)
            .write_image(img.as_raw(), w, h, image::ExtendedColorType::Rgb8)
            .unwrap();
        out
    }

    fn dims(bytes: &[u8]) -> (u32, u32) {
        ImageReader::new(Cursor::new(bytes))
            .with_guessed_format()
            .unwrap()
            .into_dimensions()
            .unwrap()
    }

    #[test]
    fn sizes_parse_like_pocketbase() {
        let s = |t| ThumbSize::parse(t);
        assert_eq!(s("100x50").unwrap().mode, Mode::Center);
        assert_eq!(s("100x50t").unwrap().mode, Mode::Top);
        assert_eq!(s("100x50b").unwrap().mode, Mode::Bottom);
        assert_eq!(s("100x50f").unwrap().mode, Mode::Fit);
        assert_eq!(s("0x50").unwrap().mode, Mode::Scale);
        assert_eq!(s("50x0").unwrap().mode, Mode::Scale);
        for bad in [
            "0x0", "x10", "10x", "10x10z", "-1x10", "10x10tt", "999999x1", "0x10f",
        ] {
            assert!(s(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn every_mode_produces_the_promised_dimensions() {
        let src = png(400, 200);
        let r = |t| dims(&render(&src, ThumbSize::parse(t).unwrap()).unwrap());
        assert_eq!(r("100x100"), (100, 100));
        assert_eq!(r("100x100t"), (100, 100));
        assert_eq!(r("100x100b"), (100, 100));
        assert_eq!(r("100x100f"), (100, 50));
        assert_eq!(r("0x50"), (100, 50));
        assert_eq!(r("200x0"), (200, 100));
        assert_eq!(r("1000x1000f"), (400, 200));
    }

    #[test]
    fn a_header_claiming_a_huge_canvas_is_refused() {
        let mut bomb = png(1, 1);
        // IHDR width/height live at bytes 16..24; patch them to 100,000 × 100,000.
        bomb[16..20].copy_from_slice(&100_000u32.to_be_bytes());
        bomb[20..24].copy_from_slice(&100_000u32.to_be_bytes());
        assert!(render(&bomb, ThumbSize::parse("10x10").unwrap()).is_err());
    }

    #[test]
    fn a_truncated_image_is_an_error_not_a_panic() {
        let src = png(64, 64);
        assert!(render(&src[..src.len() / 2], ThumbSize::parse("10x10").unwrap()).is_err());
        assert!(render(b"not an image", ThumbSize::parse("10x10").unwrap()).is_err());
    }
}
