//! Finding a licence plate in a luma picture (pure): the largest bright,
//! plate-shaped blob whose width is near the expected plate width.

/// A plate candidate in picture pixels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rect {
    pub x: usize,
    pub y: usize,
    pub w: usize,
    pub h: usize,
}

/// Luma above which a pixel belongs to the (white) plate background.
const BRIGHT: u8 = 170;
/// Plates are 2:1 (square formats) to 6:1 (EU) wide.
const MIN_ASPECT: f32 = 1.8;
const MAX_ASPECT: f32 = 6.5;
/// Bright pixels per bounding-box pixel: the characters are dark holes.
const MIN_FILL: f32 = 0.45;

/// The best plate candidate of a `w`×`h` picture, whose width is between
/// half and twice `expected_width` (a fraction of the picture width).
pub fn find_plate(luma: &[u8], w: usize, h: usize, expected_width: f32) -> Option<Rect> {
    let expected = expected_width * w as f32;
    let (min_w, max_w) = ((expected * 0.5).max(16.0), expected * 2.0);
    let mut label = vec![false; w * h];
    let mut best: Option<(usize, Rect)> = None;
    let mut stack = vec![];
    for start in 0..w * h {
        if label[start] || luma[start] < BRIGHT {
            continue;
        }
        // Flood fill (4-connected) one bright component.
        label[start] = true;
        stack.push(start);
        let (mut x0, mut y0, mut x1, mut y1, mut n) = (w, h, 0, 0, 0usize);
        while let Some(i) = stack.pop() {
            let (x, y) = (i % w, i / w);
            n += 1;
            (x0, y0, x1, y1) = (x0.min(x), y0.min(y), x1.max(x), y1.max(y));
            let mut visit = |j: usize| {
                if !label[j] && luma[j] >= BRIGHT {
                    label[j] = true;
                    stack.push(j);
                }
            };
            if x > 0 {
                visit(i - 1);
            }
            if x + 1 < w {
                visit(i + 1);
            }
            if y > 0 {
                visit(i - w);
            }
            if y + 1 < h {
                visit(i + w);
            }
        }
        let r = Rect { x: x0, y: y0, w: x1 - x0 + 1, h: y1 - y0 + 1 };
        let aspect = r.w as f32 / r.h as f32;
        let fill = n as f32 / (r.w * r.h) as f32;
        if (min_w..=max_w).contains(&(r.w as f32))
            && (MIN_ASPECT..=MAX_ASPECT).contains(&aspect)
            && fill >= MIN_FILL
            && best.is_none_or(|(bn, _)| n > bn)
        {
            best = Some((n, r));
        }
    }
    best.map(|(_, r)| r)
}

/// The plate's pixels, tightly packed, as a binary PGM (what tesseract
/// reads from stdin).
pub fn crop_pgm(luma: &[u8], w: usize, r: Rect) -> Vec<u8> {
    let mut out = format!("P5\n{} {}\n255\n", r.w, r.h).into_bytes();
    for y in r.y..r.y + r.h {
        out.extend_from_slice(&luma[y * w + r.x..y * w + r.x + r.w]);
    }
    out
}

/// Tesseract's text reduced to a plate: uppercase letters and digits.
pub fn normalize(text: &str) -> String {
    text.chars().filter(|c| c.is_ascii_alphanumeric()).map(|c| c.to_ascii_uppercase()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scene(plate: Option<(usize, usize, usize, usize)>) -> Vec<u8> {
        let (w, h) = (200, 100);
        let mut p = vec![60u8; w * h];
        // A bright but square window: not a plate.
        for y in 5..35 {
            for x in 5..35 {
                p[y * w + x] = 240;
            }
        }
        if let Some((px, py, pw, ph)) = plate {
            for y in py..py + ph {
                for x in px..px + pw {
                    // Dark "characters" in the middle rows.
                    let ch = y > py + ph / 4 && y < py + 3 * ph / 4 && (x / 6) % 2 == 0;
                    p[y * w + x] = if ch { 20 } else { 230 };
                }
            }
        }
        p
    }

    #[test]
    fn finds_the_plate_shaped_bright_box_only() {
        let p = scene(Some((60, 50, 80, 20)));
        assert_eq!(find_plate(&p, 200, 100, 0.4), Some(Rect { x: 60, y: 50, w: 80, h: 20 }));
        assert_eq!(find_plate(&scene(None), 200, 100, 0.4), None);
        // Far narrower than expected: ignored.
        assert_eq!(find_plate(&p, 200, 100, 0.95), None);
    }

    #[test]
    fn crop_is_a_pgm_of_the_box() {
        let p = scene(Some((60, 50, 80, 20)));
        let pgm = crop_pgm(&p, 200, Rect { x: 60, y: 50, w: 80, h: 20 });
        assert!(pgm.starts_with(b"P5\n80 20\n255\n"));
        assert_eq!(pgm.len(), b"P5\n80 20\n255\n".len() + 1600);
    }

    #[test]
    fn text_is_normalized() {
        assert_eq!(normalize(" krs-4521\n"), "KRS4521");
    }
}
