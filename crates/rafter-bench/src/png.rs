//! A minimal RGB canvas and PNG encoder for the election benchmark's CDF
//! plots: lines, rectangles and a tiny font (digits and the units'
//! letters), written as a deflate-compressed PNG (small enough to keep next
//! to BENCHMARKS.md). Enough for a readable chart without a plotting library
//! and its font and system-library dependencies.

/// An RGB colour.
pub type Rgb = [u8; 3];

/// 3×5 pixel glyphs, one row per entry (bit 2 is the left column).
fn glyph(c: char) -> [u8; 5] {
    match c {
        '0' => [7, 5, 5, 5, 7],
        '1' => [2, 6, 2, 2, 7],
        '2' => [7, 1, 7, 4, 7],
        '3' => [7, 1, 7, 1, 7],
        '4' => [5, 5, 7, 1, 1],
        '5' => [7, 4, 7, 1, 7],
        '6' => [7, 4, 7, 5, 7],
        '7' => [7, 1, 1, 1, 1],
        '8' => [7, 5, 7, 5, 7],
        '9' => [7, 5, 7, 1, 7],
        '-' => [0, 0, 7, 0, 0],
        '.' => [0, 0, 0, 0, 2],
        '%' => [5, 1, 2, 4, 5],
        'm' => [0, 0, 7, 7, 5],
        's' => [3, 4, 2, 1, 6],
        'g' => [0, 7, 5, 7, 3],
        _ => [0; 5],
    }
}

/// A picture being drawn.
pub struct Canvas {
    width_px: usize,
    height_px: usize,
    pixels: Vec<Rgb>,
}

impl Canvas {
    /// A canvas filled with `background`.
    pub fn new(width_px: usize, height_px: usize, background: Rgb) -> Self {
        Self {
            width_px,
            height_px,
            pixels: vec![background; width_px * height_px],
        }
    }

    /// Colours one pixel; points outside the canvas are ignored.
    pub fn set(&mut self, x: i64, y: i64, color: Rgb) {
        if x >= 0 && y >= 0 && (x as usize) < self.width_px && (y as usize) < self.height_px {
            self.pixels[y as usize * self.width_px + x as usize] = color;
        }
    }

    /// A filled axis-aligned rectangle.
    pub fn fill_rect(&mut self, x: i64, y: i64, width_px: i64, height_px: i64, color: Rgb) {
        for dy in 0..height_px {
            for dx in 0..width_px {
                self.set(x + dx, y + dy, color);
            }
        }
    }

    /// A straight line `thickness_px` pixels wide (Bresenham).
    pub fn line(&mut self, from: (i64, i64), to: (i64, i64), thickness_px: i64, color: Rgb) {
        let (mut x, mut y) = from;
        let (dx, dy) = ((to.0 - x).abs(), -(to.1 - y).abs());
        let (sx, sy) = ((to.0 - x).signum(), (to.1 - y).signum());
        let mut error = dx + dy;
        loop {
            self.fill_rect(x, y, thickness_px, thickness_px, color);
            if (x, y) == to {
                break;
            }
            let doubled = 2 * error;
            if doubled >= dy {
                error += dy;
                x += sx;
            }
            if doubled <= dx {
                error += dx;
                y += sy;
            }
        }
    }

    /// Text in the 3×5 font (digits, `-.%ms`), each font pixel drawn as a
    /// `scale`×`scale` square, top-left corner at (x, y).
    pub fn text(&mut self, x: i64, y: i64, text: &str, scale: i64, color: Rgb) {
        for (index, c) in text.chars().enumerate() {
            let left = x + index as i64 * 4 * scale;
            for (row, bits) in glyph(c).iter().enumerate() {
                for column in 0..3 {
                    if bits & (4 >> column) != 0 {
                        let top = y + row as i64 * scale;
                        self.fill_rect(left + column * scale, top, scale, scale, color);
                    }
                }
            }
        }
    }

    /// Width in pixels of `text` drawn at `scale`.
    pub fn text_width_px(text: &str, scale: i64) -> i64 {
        (text.chars().count() as i64 * 4 - 1).max(0) * scale
    }

    /// The picture as a PNG file.
    pub fn to_png(&self) -> Vec<u8> {
        let mut raw = Vec::with_capacity(self.height_px * (1 + 3 * self.width_px));
        for row in self.pixels.chunks(self.width_px) {
            raw.push(0); // filter type: none
            for pixel in row {
                raw.extend_from_slice(pixel);
            }
        }
        let mut header = Vec::with_capacity(13);
        header.extend_from_slice(&(self.width_px as u32).to_be_bytes());
        header.extend_from_slice(&(self.height_px as u32).to_be_bytes());
        header.extend_from_slice(&[8, 2, 0, 0, 0]); // 8-bit RGB, no interlace
        let mut png = vec![0x89, b'P', b'N', b'G', 0x0D, 0x0A, 0x1A, 0x0A];
        chunk(&mut png, b"IHDR", &header);
        chunk(
            &mut png,
            b"IDAT",
            &miniz_oxide::deflate::compress_to_vec_zlib(&raw, 9),
        );
        chunk(&mut png, b"IEND", &[]);
        png
    }
}

/// Appends a PNG chunk: length, type, data, CRC of type and data.
fn chunk(png: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
    png.extend_from_slice(&(data.len() as u32).to_be_bytes());
    let start = png.len();
    png.extend_from_slice(kind);
    png.extend_from_slice(data);
    let crc = crc32(&png[start..]);
    png.extend_from_slice(&crc.to_be_bytes());
}

fn crc32(data: &[u8]) -> u32 {
    let mut crc = 0xFFFF_FFFFu32;
    for byte in data {
        crc ^= u32::from(*byte);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checksums_match_known_values() {
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
    }

    #[test]
    fn png_has_signature_header_and_end() {
        let mut canvas = Canvas::new(4, 3, [255, 255, 255]);
        canvas.line((0, 0), (3, 2), 1, [0, 0, 0]);
        canvas.text(0, 0, "1", 1, [0, 0, 0]);
        let png = canvas.to_png();
        assert_eq!(&png[..8], &[0x89, b'P', b'N', b'G', 0x0D, 0x0A, 0x1A, 0x0A]);
        assert_eq!(&png[12..16], b"IHDR");
        assert_eq!(&png[png.len() - 8..png.len() - 4], b"IEND");
        // IDAT follows the 25-byte IHDR chunk: it inflates to the rows.
        let idat_len = u32::from_be_bytes(png[33..37].try_into().unwrap()) as usize;
        assert_eq!(&png[37..41], b"IDAT");
        let rows = miniz_oxide::inflate::decompress_to_vec_zlib(&png[41..41 + idat_len]).unwrap();
        assert_eq!(rows.len(), 3 * (1 + 3 * 4));
        assert_eq!(
            &rows[..4],
            &[0, 0, 0, 0],
            "filter byte, then the black pixel at (0, 0)"
        );
    }
}
