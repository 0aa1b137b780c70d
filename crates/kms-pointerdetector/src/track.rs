//! Pointer tracking apart from GStreamer (pure, unit tested): the colour
//! learned from the calibration region, the pointer found as the centroid
//! of the pixels of that colour, and which windows it is in.
//!
//! Colours are compared by hue (with saturation and value floors), as
//! upstream's kmspointerdetector thresholds in HSV; the range is tabulated
//! at 5 bits a channel so a frame costs one table read per sampled pixel.

use std::collections::BTreeMap;

/// Below this saturation or value (0..=255) a pixel has no usable hue.
const MIN_SATURATION: u8 = 70;
const MIN_VALUE: u8 = 50;
/// Half-width of the tracked hue range (degrees).
const HALF_RANGE: f32 = 15.0;
/// Share of the calibration region that must be coloured.
const MIN_COLOURED_SHARE: f32 = 0.3;

/// Hue (degrees, 0..360), saturation and value (0..=255).
pub fn hsv(r: u8, g: u8, b: u8) -> (f32, u8, u8) {
    let max = r.max(g).max(b);
    let min = r.min(g).min(b);
    let delta = f32::from(max - min);
    if max == 0 || delta == 0.0 {
        return (0.0, 0, max);
    }
    let s = (delta * 255.0 / f32::from(max)) as u8;
    let (rf, gf, bf) = (f32::from(r), f32::from(g), f32::from(b));
    let h = if max == r {
        60.0 * ((gf - bf) / delta)
    } else if max == g {
        60.0 * ((bf - rf) / delta + 2.0)
    } else {
        60.0 * ((rf - gf) / delta + 4.0)
    };
    (if h < 0.0 { h + 360.0 } else { h }, s, max)
}

fn hue_distance(a: f32, b: f32) -> f32 {
    let d = (a - b).abs() % 360.0;
    if d > 180.0 { 360.0 - d } else { d }
}

/// The tracked colour, tabulated.
#[derive(Debug, Clone)]
pub struct Colour {
    pub hue: f32,
    cells: Vec<bool>,
}

impl Colour {
    /// The mean hue of the coloured pixels of the calibration region, or
    /// None when too few are coloured (grey, black, white).
    pub fn learn(pixels: impl Iterator<Item = (u8, u8, u8)>) -> Option<Colour> {
        let (mut n, mut coloured, mut x, mut y) = (0u64, 0u64, 0f64, 0f64);
        for (r, g, b) in pixels {
            n += 1;
            let (h, s, v) = hsv(r, g, b);
            if s >= MIN_SATURATION && v >= MIN_VALUE {
                coloured += 1;
                x += f64::from(h).to_radians().cos();
                y += f64::from(h).to_radians().sin();
            }
        }
        if n == 0 || (coloured as f32) < MIN_COLOURED_SHARE * n as f32 {
            return None;
        }
        let mut hue = y.atan2(x).to_degrees() as f32;
        if hue < 0.0 {
            hue += 360.0;
        }
        let centre = |q: usize| ((q << 3) | 4) as u8;
        let matches = |r, g, b| {
            let (h, s, v) = hsv(r, g, b);
            s >= MIN_SATURATION && v >= MIN_VALUE && hue_distance(h, hue) <= HALF_RANGE
        };
        let cells = (0..1 << 15).map(|i| matches(centre(i >> 10), centre((i >> 5) & 31), centre(i & 31))).collect();
        Some(Colour { hue, cells })
    }

    #[inline]
    pub fn matches(&self, r: u8, g: u8, b: u8) -> bool {
        self.cells[(usize::from(r >> 3) << 10) | (usize::from(g >> 3) << 5) | usize::from(b >> 3)]
    }
}

/// Accumulates matching pixels of one frame; the pointer is their
/// centroid when there are at least `min_pixels`.
#[derive(Debug, Default)]
pub struct Centroid {
    n: u64,
    sx: u64,
    sy: u64,
}

impl Centroid {
    pub fn add(&mut self, x: u32, y: u32) {
        self.n += 1;
        self.sx += u64::from(x);
        self.sy += u64::from(y);
    }

    pub fn point(&self, min_pixels: u64) -> Option<(u32, u32)> {
        (self.n >= min_pixels.max(1)).then(|| ((self.sx / self.n) as u32, (self.sy / self.n) as u32))
    }
}

/// A rectangle in pixels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rect {
    pub x: u32,
    pub y: u32,
    pub width: u32,
    pub height: u32,
}

impl Rect {
    /// From client values: negative corners or sizes below 1 are refused
    /// (the message names the field).
    pub fn checked(fields: [(&str, i32); 4]) -> Result<Rect, String> {
        for (i, (name, v)) in fields.iter().enumerate() {
            let min = if i < 2 { 0 } else { 1 };
            if *v < min {
                return Err(format!("'{name}' must be at least {min}, got {v}"));
            }
        }
        let [x, y, w, h] = fields.map(|(_, v)| v as u32);
        Ok(Rect { x, y, width: w, height: h })
    }

    pub fn contains(&self, (px, py): (u32, u32)) -> bool {
        px >= self.x && py >= self.y && px - self.x < self.width && py - self.y < self.height
    }

    /// The part inside a `w`×`h` frame: (x0, y0, x1, y1).
    pub fn clip(&self, w: u32, h: u32) -> Option<(u32, u32, u32, u32)> {
        let x1 = self.x.saturating_add(self.width).min(w);
        let y1 = self.y.saturating_add(self.height).min(h);
        (self.x < x1 && self.y < y1).then_some((self.x, self.y, x1, y1))
    }
}

/// A window crossing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Crossing {
    In(String),
    Out(String),
}

/// Which windows the pointer is in, by id; `update` says what changed.
#[derive(Debug, Default, Clone)]
pub struct Windows {
    /// id → (rect, pointer inside).
    pub windows: BTreeMap<String, (Rect, bool)>,
}

impl Windows {
    /// Adds or replaces `id` (a replaced window starts outside).
    pub fn insert(&mut self, id: String, rect: Rect) {
        self.windows.insert(id, (rect, false));
    }

    pub fn remove(&mut self, id: &str) -> bool {
        self.windows.remove(id).is_some()
    }

    /// The pointer is now at `point` (None: not seen): the windows it
    /// entered and left, in id order.
    pub fn update(&mut self, point: Option<(u32, u32)>) -> Vec<Crossing> {
        let mut out = vec![];
        for (id, (rect, inside)) in &mut self.windows {
            let now = point.is_some_and(|p| rect.contains(p));
            if now != *inside {
                *inside = now;
                out.push(if now { Crossing::In(id.clone()) } else { Crossing::Out(id.clone()) });
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn learns_a_colour_and_refuses_grey() {
        let blue = Colour::learn(std::iter::repeat_n((20, 30, 230), 100)).unwrap();
        assert!(blue.matches(0, 0, 255) && blue.matches(30, 40, 200));
        assert!(!blue.matches(255, 0, 0) && !blue.matches(0, 255, 0) && !blue.matches(128, 128, 128));
        assert!(Colour::learn(std::iter::repeat_n((128, 128, 128), 100)).is_none());
        assert!(Colour::learn(std::iter::empty()).is_none());
    }

    #[test]
    fn centroid_needs_enough_pixels() {
        let mut c = Centroid::default();
        for (x, y) in [(10, 10), (20, 30)] {
            c.add(x, y);
        }
        assert_eq!(c.point(2), Some((15, 20)));
        assert_eq!(c.point(3), None);
        assert_eq!(Centroid::default().point(0), None);
    }

    #[test]
    fn rects_are_checked() {
        let r = Rect::checked([("x", 10), ("y", 20), ("width", 30), ("height", 40)]).unwrap();
        assert!(r.contains((10, 20)) && r.contains((39, 59)) && !r.contains((40, 20)) && !r.contains((9, 30)));
        assert_eq!(r.clip(25, 100), Some((10, 20, 25, 60)));
        let e = Rect::checked([("x", 0), ("y", 0), ("width", 0), ("height", 4)]).unwrap_err();
        assert!(e.contains("'width'"), "{e}");
        assert!(Rect::checked([("upperRightX", -1), ("y", 0), ("w", 1), ("h", 1)]).is_err());
    }

    #[test]
    fn window_crossings_fire_once_each_way() {
        let mut w = Windows::default();
        w.insert("a".into(), Rect { x: 0, y: 0, width: 10, height: 10 });
        w.insert("b".into(), Rect { x: 100, y: 0, width: 10, height: 10 });
        assert_eq!(w.update(None), vec![]);
        assert_eq!(w.update(Some((5, 5))), vec![Crossing::In("a".into())]);
        assert_eq!(w.update(Some((6, 6))), vec![]);
        assert_eq!(w.update(Some((105, 5))), vec![Crossing::Out("a".into()), Crossing::In("b".into())]);
        assert_eq!(w.update(None), vec![Crossing::Out("b".into())]);
        assert!(w.remove("a") && !w.remove("a"));
    }
}
