//! 2-D drawing on an [`Image`] for recording frames and report plots: filled rectangles (caption
//! bars, colour chips), lines, nearest-neighbour blits (policy-camera insets) and text in the
//! embedded bitmap font.
//!
//! Everything clips at the image border, so callers can lay out without bounds checks, and uses
//! integer arithmetic only, so frames are the same bytes on every machine.

use super::font::{self, GLYPH_HEIGHT, GLYPH_WIDTH};
use crate::sim::camera::Image;

/// Horizontal distance from one character to the next, in font pixels (one column of spacing).
pub const CHAR_ADVANCE: u32 = GLYPH_WIDTH + 1;

/// An axis-aligned rectangle in pixels; `x`, `y` is its top-left corner and may lie outside the image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rect {
    /// Left column.
    pub x: i32,
    /// Top row.
    pub y: i32,
    /// Width (px).
    pub width: u32,
    /// Height (px).
    pub height: u32,
}

impl Rect {
    /// The part of the rectangle inside `image`, as column and row ranges.
    fn clipped(&self, image: &Image) -> (std::ops::Range<usize>, std::ops::Range<usize>) {
        let span = |start: i32, length: u32, size: u32| {
            let begin = i64::from(start).clamp(0, i64::from(size)) as usize;
            let end = (i64::from(start) + i64::from(length)).clamp(0, i64::from(size)) as usize;
            begin..end
        };
        (span(self.x, self.width, image.width), span(self.y, self.height, image.height))
    }
}

/// Fills `rect` with `rgb`.
pub fn fill_rect(image: &mut Image, rect: Rect, rgb: [u8; 3]) {
    let (columns, rows) = rect.clipped(image);
    let width = image.width as usize;
    for row in rows {
        let line = &mut image.rgb[(row * width + columns.start) * 3..(row * width + columns.end) * 3];
        for pixel in line.chunks_exact_mut(3) {
            pixel.copy_from_slice(&rgb);
        }
    }
}

/// Draws a line from `from` to `to` as `thickness`-pixel squares stepped along its longer axis.
pub fn draw_line(image: &mut Image, from: (i32, i32), to: (i32, i32), thickness: u32, rgb: [u8; 3]) {
    let steps = (to.0 - from.0).abs().max((to.1 - from.1).abs()).max(1);
    let half = thickness as i32 / 2;
    for i in 0..=steps {
        let x = from.0 + (to.0 - from.0) * i / steps;
        let y = from.1 + (to.1 - from.1) * i / steps;
        fill_rect(image, Rect { x: x - half, y: y - half, width: thickness, height: thickness }, rgb);
    }
}

/// Draws a `thickness`-pixel frame just outside `rect`.
pub fn outline_rect(image: &mut Image, rect: Rect, thickness: u32, rgb: [u8; 3]) {
    let t = thickness as i32;
    let (outer_width, outer_height) = (rect.width + 2 * thickness, rect.height + 2 * thickness);
    let (left, top) = (rect.x - t, rect.y - t);
    fill_rect(image, Rect { x: left, y: top, width: outer_width, height: thickness }, rgb);
    fill_rect(image, Rect { x: left, y: rect.y + rect.height as i32, width: outer_width, height: thickness }, rgb);
    fill_rect(image, Rect { x: left, y: top, width: thickness, height: outer_height }, rgb);
    fill_rect(image, Rect { x: rect.x + rect.width as i32, y: top, width: thickness, height: outer_height }, rgb);
}

/// Copies `source` enlarged `scale` times (nearest neighbour) with its top-left corner at `x`, `y`.
pub fn blit_scaled(image: &mut Image, source: &Image, x: i32, y: i32, scale: u32) {
    let target = Rect { x, y, width: source.width * scale, height: source.height * scale };
    let (columns, rows) = target.clipped(image);
    let width = image.width as usize;
    for row in rows {
        let source_row = (row as i64 - i64::from(y)) as u32 / scale;
        for column in columns.clone() {
            let source_column = (column as i64 - i64::from(x)) as u32 / scale;
            let i = (row * width + column) * 3;
            image.rgb[i..i + 3].copy_from_slice(&source.pixel(source_column, source_row));
        }
    }
}

/// Width of `text` drawn at `scale` (px), without the trailing spacing column.
pub fn text_width(text: &str, scale: u32) -> u32 {
    let count = text.chars().count() as u32;
    (count * CHAR_ADVANCE).saturating_sub(1) * scale
}

/// Height of one line of text at `scale` (px), descender row included.
pub fn text_height(scale: u32) -> u32 {
    GLYPH_HEIGHT * scale
}

/// Draws `text` with its top-left corner at `x`, `y`, each font pixel a `scale`×`scale` square.
/// Characters outside printable ASCII are drawn as `?`.
pub fn draw_text(image: &mut Image, x: i32, y: i32, text: &str, scale: u32, rgb: [u8; 3]) {
    let (advance, dot) = ((CHAR_ADVANCE * scale) as i32, scale as i32);
    for (i, c) in text.chars().enumerate() {
        let left = x + i as i32 * advance;
        for (row, bits) in font::glyph(c).iter().enumerate() {
            for column in 0..GLYPH_WIDTH {
                if bits >> (GLYPH_WIDTH - 1 - column) & 1 == 1 {
                    let pixel =
                        Rect { x: left + column as i32 * dot, y: y + row as i32 * dot, width: scale, height: scale };
                    fill_rect(image, pixel, rgb);
                }
            }
        }
    }
}

/// `text` shortened with a trailing `..` so it is at most `max_width` px wide at `scale`.
pub fn fit_text(text: &str, max_width: u32, scale: u32) -> String {
    if text_width(text, scale) <= max_width {
        return text.to_string();
    }
    let fitting = (max_width / scale + 1) / CHAR_ADVANCE;
    let kept = fitting.saturating_sub(2) as usize;
    text.chars().take(kept).chain("..".chars()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const INK: [u8; 3] = [255, 255, 255];

    /// The image as rows of '#' (any non-black pixel) and '.'.
    fn picture(image: &Image) -> Vec<String> {
        (0..image.height)
            .map(|y| (0..image.width).map(|x| if image.pixel(x, y) == [0; 3] { '.' } else { '#' }).collect())
            .collect()
    }

    #[test]
    fn text_pixels_follow_the_glyph_at_scale_one_and_two() {
        let mut image = Image::new(7, 9);
        draw_text(&mut image, 1, 0, "T", 1, INK);
        let expected =
            [".#####.", "...#...", "...#...", "...#...", "...#...", "...#...", "...#...", ".......", "......."];
        assert_eq!(picture(&image), expected);

        let mut image = Image::new(10, 16);
        draw_text(&mut image, 0, 0, "i", 2, INK);
        let rows = picture(&image);
        assert_eq!(rows[0], "....##....");
        assert_eq!(rows[1], "....##....");
        assert_eq!(rows[2], "..........");
        assert_eq!(rows[12], "..######..");
        assert_eq!(image.pixel(4, 0), INK);
    }

    #[test]
    fn characters_advance_by_six_font_pixels_and_non_ascii_is_a_question_mark() {
        let (mut unicode, mut ascii) = (Image::new(24, 8), Image::new(24, 8));
        draw_text(&mut unicode, 0, 0, "a→é", 1, INK);
        draw_text(&mut ascii, 0, 0, "a??", 1, INK);
        assert_eq!(unicode, ascii);
        assert_eq!(text_width("a→é", 1), 17);
        assert_eq!(text_width("ab", 3), 33);
    }

    #[test]
    fn drawing_clips_at_the_border() {
        // What lands inside a small image equals the same window of an unclipped drawing.
        let draw = |image: &mut Image, offset: i32| {
            fill_rect(image, Rect { x: offset - 2, y: offset + 2, width: 10, height: 10 }, [0, 90, 0]);
            draw_text(image, offset - 3, offset - 5, "W", 2, INK);
        };
        let mut small = Image::new(4, 4);
        draw(&mut small, 0);
        let mut large = Image::new(30, 30);
        draw(&mut large, 10);
        let pixels: Vec<(u32, u32)> = (0..4).flat_map(|y| (0..4).map(move |x| (x, y))).collect();
        for &(x, y) in &pixels {
            assert_eq!(small.pixel(x, y), large.pixel(x + 10, y + 10), "({x}, {y})");
        }
        let colours: Vec<[u8; 3]> = pixels.iter().map(|&(x, y)| small.pixel(x, y)).collect();
        assert!(colours.contains(&INK) && colours.contains(&[0, 90, 0]), "both drawings reach the window");
    }

    #[test]
    fn blit_enlarges_by_nearest_neighbour() {
        let mut source = Image::new(2, 1);
        source.rgb = vec![10, 20, 30, 40, 50, 60];
        let mut image = Image::new(5, 3);
        blit_scaled(&mut image, &source, 1, 1, 2);
        assert_eq!(image.pixel(0, 1), [0; 3]);
        assert_eq!([image.pixel(1, 1), image.pixel(2, 2)], [[10, 20, 30]; 2]);
        assert_eq!([image.pixel(3, 1), image.pixel(4, 2)], [[40, 50, 60]; 2]);
    }

    #[test]
    fn long_text_is_shortened_to_fit() {
        let fitted = fit_text("lift the red block from the sliding cabinet", 100, 1);
        assert!(fitted.ends_with("..") && text_width(&fitted, 1) <= 100, "{fitted}");
        assert_eq!(fit_text("open", 100, 1), "open");
    }
}
