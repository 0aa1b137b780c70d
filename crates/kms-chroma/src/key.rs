//! The chroma key, apart from GStreamer (pure, unit tested): which colour
//! the calibration window shows, learned over the first frames, and which
//! pixels match it.
//!
//! Colours are compared by hue, as upstream's kmschroma does in HSV: a
//! green screen under uneven light keeps its hue while brightness varies.
//! Greys have no meaningful hue, so pixels below a saturation and a value
//! floor never match (and never count during calibration).

/// Frames over which the key colour is learned (spec §12.6: the first 60).
pub const CALIBRATION_FRAMES: u32 = 60;
/// Below this saturation (0..=255) a pixel is grey: no hue.
const MIN_SATURATION: u8 = 60;
/// Below this value (0..=255) a pixel is black: no hue.
const MIN_VALUE: u8 = 40;
/// Half-width of the matched hue range around the learned hue, at least
/// (degrees): compression and lighting shift a screen's hue by a few.
const MIN_HALF_RANGE: f32 = 12.0;
/// At most: a wider range would eat neighbouring hues (skin, wood).
const MAX_HALF_RANGE: f32 = 30.0;
/// Share of the window's pixels that must be coloured for calibration to
/// trust them.
const MIN_COLOURED_SHARE: f32 = 0.5;

/// Hue (degrees, 0..360), saturation and value (0..=255) of an RGB pixel.
pub fn hsv(r: u8, g: u8, b: u8) -> (f32, u8, u8) {
    let max = r.max(g).max(b);
    let min = r.min(g).min(b);
    let delta = f32::from(max - min);
    if max == 0 || delta == 0.0 {
        return (0.0, 0, max);
    }
    let s = (delta * 255.0 / f32::from(max)) as u8;
    let (r, g, b) = (f32::from(r), f32::from(g), f32::from(b));
    let h = if max as f32 == r {
        60.0 * ((g - b) / delta)
    } else if max as f32 == g {
        60.0 * ((b - r) / delta + 2.0)
    } else {
        60.0 * ((r - g) / delta + 4.0)
    };
    (if h < 0.0 { h + 360.0 } else { h }, s, max)
}

/// Shortest distance between two hues, in degrees.
fn hue_distance(a: f32, b: f32) -> f32 {
    let d = (a - b).abs() % 360.0;
    if d > 180.0 { 360.0 - d } else { d }
}

/// The learned key colour: pixels whose hue is within `half_range` of
/// `hue` (and coloured enough) are background.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct KeyRange {
    pub hue: f32,
    pub half_range: f32,
}

impl KeyRange {
    pub fn matches(&self, r: u8, g: u8, b: u8) -> bool {
        let (h, s, v) = hsv(r, g, b);
        s >= MIN_SATURATION && v >= MIN_VALUE && hue_distance(h, self.hue) <= self.half_range
    }

    /// [`matches`](Self::matches) for every colour at 5 bits a channel
    /// (each cell judged by its centre), so a frame costs one table read a
    /// pixel instead of an HSV conversion.
    pub fn table(&self) -> KeyTable {
        let centre = |q: usize| ((q << 3) | 4) as u8;
        let cells =
            (0..1 << 15).map(|i| self.matches(centre(i >> 10), centre((i >> 5) & 31), centre(i & 31))).collect();
        KeyTable { cells }
    }
}

/// A [`KeyRange`] tabulated by [`KeyRange::table`].
#[derive(Debug, Clone)]
pub struct KeyTable {
    cells: Vec<bool>,
}

impl KeyTable {
    #[inline]
    pub fn matches(&self, r: u8, g: u8, b: u8) -> bool {
        let i = (usize::from(r >> 3) << 10) | (usize::from(g >> 3) << 5) | usize::from(b >> 3);
        self.cells[i]
    }
}

/// Learns the key colour from the calibration window's pixels, frame by
/// frame: the mean hue of the coloured pixels (as a unit vector, so reds
/// around 0°/360° average right) and their spread.
#[derive(Debug, Default, Clone)]
pub struct Calibrator {
    frames: u32,
    sum_x: f64,
    sum_y: f64,
    hues: Vec<f32>,
    total: u64,
}

/// What calibration ended with.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Calibration {
    /// Still learning.
    Pending,
    /// Learned.
    Done(KeyRange),
    /// The window showed no colour (grey, black, white): nothing to key.
    NoColour,
}

impl Calibrator {
    /// Adds one frame's window pixels (RGB triples).
    pub fn add_frame(&mut self, pixels: impl Iterator<Item = (u8, u8, u8)>) -> Calibration {
        for (r, g, b) in pixels {
            self.total += 1;
            let (h, s, v) = hsv(r, g, b);
            if s >= MIN_SATURATION && v >= MIN_VALUE {
                let rad = f64::from(h).to_radians();
                self.sum_x += rad.cos();
                self.sum_y += rad.sin();
                // A bounded sample for the spread; plenty for a statistic.
                if self.hues.len() < 100_000 {
                    self.hues.push(h);
                }
            }
        }
        self.frames += 1;
        if self.frames < CALIBRATION_FRAMES { Calibration::Pending } else { self.finish() }
    }

    fn finish(&self) -> Calibration {
        let coloured = self.hues.len() as f32;
        if self.total == 0 || coloured < MIN_COLOURED_SHARE * (self.total.min(100_000) as f32) {
            return Calibration::NoColour;
        }
        let mut hue = self.sum_y.atan2(self.sum_x).to_degrees() as f32;
        if hue < 0.0 {
            hue += 360.0;
        }
        let var = self.hues.iter().map(|&h| hue_distance(h, hue).powi(2)).sum::<f32>() / coloured;
        let half_range = (2.5 * var.sqrt()).clamp(MIN_HALF_RANGE, MAX_HALF_RANGE);
        Calibration::Done(KeyRange { hue, half_range })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hsv_of_primaries_and_greys() {
        assert_eq!(hsv(255, 0, 0), (0.0, 255, 255));
        assert_eq!(hsv(0, 255, 0), (120.0, 255, 255));
        assert_eq!(hsv(0, 0, 255), (240.0, 255, 255));
        assert_eq!(hsv(128, 128, 128), (0.0, 0, 128));
        let (h, _, _) = hsv(255, 0, 128);
        assert!((h - 330.0).abs() < 0.5, "{h}");
    }

    fn calibrate(pixel: (u8, u8, u8)) -> Calibration {
        let mut c = Calibrator::default();
        let mut last = Calibration::Pending;
        for _ in 0..CALIBRATION_FRAMES {
            last = c.add_frame(std::iter::repeat_n(pixel, 100));
        }
        last
    }

    #[test]
    fn a_green_window_keys_greens_and_nothing_else() {
        let Calibration::Done(key) = calibrate((10, 230, 20)) else { panic!("not calibrated") };
        assert!((key.hue - 123.0).abs() < 2.0, "{key:?}");
        assert!(key.matches(0, 255, 0));
        assert!(key.matches(40, 160, 50), "a darker, duller green");
        let table = key.table();
        for (r, g, b) in [(0, 255, 0), (40, 160, 50), (10, 230, 20)] {
            assert!(table.matches(r, g, b), "({r},{g},{b})");
        }
        for (r, g, b) in [(255, 0, 0), (0, 0, 255), (128, 128, 128), (0, 0, 0), (255, 255, 255), (230, 200, 40)] {
            assert!(!key.matches(r, g, b) && !table.matches(r, g, b), "({r},{g},{b})");
        }
    }

    #[test]
    fn reds_around_zero_degrees_average_right() {
        let mut c = Calibrator::default();
        let mut last = Calibration::Pending;
        for i in 0..CALIBRATION_FRAMES {
            // 355° and 5° alternately: the mean is 0°, not 180°.
            let px = if i % 2 == 0 { (255, 0, 21) } else { (255, 21, 0) };
            last = c.add_frame(std::iter::repeat_n(px, 10));
        }
        let Calibration::Done(key) = last else { panic!("not calibrated") };
        assert!(hue_distance(key.hue, 0.0) < 1.0, "{key:?}");
        assert!(key.matches(255, 0, 0) && !key.matches(0, 255, 0));
    }

    #[test]
    fn calibration_takes_its_frames_and_refuses_grey() {
        let mut c = Calibrator::default();
        for _ in 0..CALIBRATION_FRAMES - 1 {
            assert_eq!(c.add_frame(std::iter::repeat_n((0, 255, 0), 4)), Calibration::Pending);
        }
        assert!(matches!(c.add_frame(std::iter::repeat_n((0, 255, 0), 4)), Calibration::Done(_)));
        assert_eq!(calibrate((128, 128, 128)), Calibration::NoColour);
    }
}
