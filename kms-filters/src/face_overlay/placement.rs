//! Where the overlay image goes for each detected face (pure).
//!
//! `setOverlayedImage(uri, offsetXPercent, offsetYPercent, widthPercent,
//! heightPercent)` (spec §10.11): despite their names the four values are
//! ratios of the detected face's size. As in KMS (and the magic-mirror
//! tutorial, which puts a hat above the face with `-0.35, -1.2, 1.6,
//! 1.6`), the image's top-left corner is the face's top-left corner moved
//! by `offsetX × face width` and `offsetY × face height` (negative = left,
//! up), and its size is `width × face width` by `height × face height`.

/// A rectangle in pixels of some frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rect {
    pub x: i32,
    pub y: i32,
    pub width: u32,
    pub height: u32,
}

/// Largest `widthPercent` / `heightPercent` accepted: an image ten times
/// the face is already far larger than any frame the face fits in.
pub const MAX_SIZE_RATIO: f32 = 10.0;
/// Largest offset accepted, in face sizes either way.
pub const MAX_OFFSET_RATIO: f32 = 10.0;

/// Why a placement is refused (the `setOverlayedImage` answer, 40001).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PlacementError {
    #[error("'{name}' must be a number between 0 and {MAX_SIZE_RATIO}, got {value}")]
    Size { name: &'static str, value: f32 },
    #[error("'{name}' must be a number between -{MAX_OFFSET_RATIO} and {MAX_OFFSET_RATIO}, got {value}")]
    Offset { name: &'static str, value: f32 },
}

/// The four ratios of `setOverlayedImage`, validated.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Placement {
    offset_x: f32,
    offset_y: f32,
    width: f32,
    height: f32,
}

impl Placement {
    pub fn new(offset_x: f32, offset_y: f32, width: f32, height: f32) -> Result<Placement, PlacementError> {
        for (name, value) in [("offsetXPercent", offset_x), ("offsetYPercent", offset_y)] {
            if !value.is_finite() || value.abs() > MAX_OFFSET_RATIO {
                return Err(PlacementError::Offset { name, value });
            }
        }
        for (name, value) in [("widthPercent", width), ("heightPercent", height)] {
            // kmd: negative values are forbidden; 0 draws nothing (as KMS).
            if !value.is_finite() || !(0.0..=MAX_SIZE_RATIO).contains(&value) {
                return Err(PlacementError::Size { name, value });
            }
        }
        Ok(Placement { offset_x, offset_y, width, height })
    }

    /// The image's rectangle for `face`, or `None` when it would be empty
    /// or lies wholly outside a `frame_w` × `frame_h` frame (nothing to
    /// draw).
    pub fn overlay(&self, face: Rect, frame_w: u32, frame_h: u32) -> Option<Rect> {
        let fw = face.width as f32;
        let fh = face.height as f32;
        let x = face.x as f32 + self.offset_x * fw;
        let y = face.y as f32 + self.offset_y * fh;
        let w = (self.width * fw).round();
        let h = (self.height * fh).round();
        if w < 1.0 || h < 1.0 {
            return None;
        }
        let r = Rect { x: x.round() as i32, y: y.round() as i32, width: w as u32, height: h as u32 };
        let visible = r.x < frame_w as i32
            && r.y < frame_h as i32
            && r.x.saturating_add(r.width as i32) > 0
            && r.y.saturating_add(r.height as i32) > 0;
        visible.then_some(r)
    }
}

/// `face`, found in a `from` (width, height) copy of the frame, in the
/// coordinates of the `to` frame (detection runs on a scaled-down copy).
pub fn rescale(face: Rect, from: (u32, u32), to: (u32, u32)) -> Rect {
    if from.0 == 0 || from.1 == 0 {
        return face;
    }
    let sx = to.0 as f64 / from.0 as f64;
    let sy = to.1 as f64 / from.1 as f64;
    Rect {
        x: (face.x as f64 * sx).round() as i32,
        y: (face.y as f64 * sy).round() as i32,
        width: (face.width as f64 * sx).round() as u32,
        height: (face.height as f64 * sy).round() as u32,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FACE: Rect = Rect { x: 100, y: 80, width: 50, height: 60 };

    #[test]
    fn zero_offsets_and_unit_sizes_cover_the_face() {
        let p = Placement::new(0.0, 0.0, 1.0, 1.0).unwrap();
        assert_eq!(p.overlay(FACE, 640, 480), Some(FACE));
    }

    #[test]
    fn offsets_and_sizes_are_ratios_of_the_face() {
        // The magic-mirror hat: left by 0.35 face widths, up by 1.2 face
        // heights, 1.6 times the face.
        let p = Placement::new(-0.35, -1.2, 1.6, 1.6).unwrap();
        assert_eq!(p.overlay(FACE, 640, 480), Some(Rect { x: 83, y: 8, width: 80, height: 96 }));
        let p = Placement::new(0.5, 0.25, 0.5, 2.0).unwrap();
        assert_eq!(p.overlay(FACE, 640, 480), Some(Rect { x: 125, y: 95, width: 25, height: 120 }));
    }

    #[test]
    fn partly_outside_is_drawn_wholly_outside_is_not() {
        let p = Placement::new(-3.0, 0.0, 1.0, 1.0).unwrap();
        assert_eq!(p.overlay(FACE, 640, 480), None, "150 px left of a face at x=100");
        let p = Placement::new(-2.5, 0.0, 1.0, 1.0).unwrap();
        assert_eq!(p.overlay(FACE, 640, 480).map(|r| r.x), Some(-25));
        let p = Placement::new(0.0, 7.0, 1.0, 1.0).unwrap();
        assert_eq!(p.overlay(FACE, 640, 480), None, "below the frame");
    }

    #[test]
    fn tiny_results_are_skipped() {
        let p = Placement::new(0.0, 0.0, 0.001, 1.0).unwrap();
        assert_eq!(p.overlay(FACE, 640, 480), None);
    }

    #[test]
    fn bad_ratios_are_refused() {
        assert!(matches!(Placement::new(0.0, 0.0, -1.0, 1.0), Err(PlacementError::Size { name: "widthPercent", .. })));
        assert!(matches!(Placement::new(0.0, 0.0, 1.0, -0.1), Err(PlacementError::Size { name: "heightPercent", .. })));
        assert_eq!(Placement::new(0.0, 0.0, 0.0, 1.0).unwrap().overlay(FACE, 640, 480), None, "0 draws nothing");
        assert!(Placement::new(0.0, 0.0, 1.0, f32::INFINITY).is_err());
        assert!(Placement::new(f32::NAN, 0.0, 1.0, 1.0).is_err());
        assert!(Placement::new(0.0, -11.0, 1.0, 1.0).is_err());
        assert!(Placement::new(0.0, 0.0, 11.0, 1.0).is_err());
        assert!(Placement::new(-10.0, 10.0, 10.0, 10.0).is_ok());
    }

    #[test]
    fn faces_found_at_detection_size_map_back() {
        let f = Rect { x: 122, y: 30, width: 47, height: 47 };
        assert_eq!(rescale(f, (320, 240), (640, 480)), Rect { x: 244, y: 60, width: 94, height: 94 });
        assert_eq!(rescale(f, (0, 0), (640, 480)), f);
    }
}
