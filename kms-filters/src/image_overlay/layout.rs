//! Where an overlay image goes in a frame (pure): `addImage`'s fractions
//! of the frame (spec §10.11) to pixels.

/// An image's placement as `addImage` gives it: fractions of the frame.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Placement {
    pub offset_x: f32,
    pub offset_y: f32,
    pub width: f32,
    pub height: f32,
    /// Fit the image inside the box with its own aspect ratio.
    pub keep_aspect_ratio: bool,
    /// Centre the (fitted) image inside the box; else top-left.
    pub center: bool,
}

/// Why a placement is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlacementError {
    #[error("'{0}' must be a finite number")]
    NotFinite(&'static str),
    #[error("'{0}' must be greater than 0")]
    NotPositive(&'static str),
}

impl Placement {
    pub fn validate(&self) -> Result<(), PlacementError> {
        for (name, v) in [
            ("offsetXPercent", self.offset_x),
            ("offsetYPercent", self.offset_y),
            ("widthPercent", self.width),
            ("heightPercent", self.height),
        ] {
            if !v.is_finite() {
                return Err(PlacementError::NotFinite(name));
            }
        }
        if self.width <= 0.0 {
            return Err(PlacementError::NotPositive("widthPercent"));
        }
        if self.height <= 0.0 {
            return Err(PlacementError::NotPositive("heightPercent"));
        }
        Ok(())
    }

    /// `(x, y, width, height)` in pixels of a `frame_w`×`frame_h` frame for
    /// an `image_w`×`image_h` image; `None` when it would be empty.
    pub fn rect(&self, frame_w: u32, frame_h: u32, image_w: u32, image_h: u32) -> Option<(i32, i32, u32, u32)> {
        let (fw, fh) = (frame_w as f64, frame_h as f64);
        let (bx, by) = (self.offset_x as f64 * fw, self.offset_y as f64 * fh);
        let (bw, bh) = (self.width as f64 * fw, self.height as f64 * fh);
        let (w, h) = if self.keep_aspect_ratio && image_w > 0 && image_h > 0 {
            let scale = (bw / image_w as f64).min(bh / image_h as f64);
            (image_w as f64 * scale, image_h as f64 * scale)
        } else {
            (bw, bh)
        };
        let (x, y) = if self.center { (bx + (bw - w) / 2.0, by + (bh - h) / 2.0) } else { (bx, by) };
        let (w, h) = (w.round(), h.round());
        if w < 1.0 || h < 1.0 {
            return None;
        }
        Some((x.round() as i32, y.round() as i32, w as u32, h as u32))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(keep: bool, center: bool) -> Placement {
        Placement { offset_x: 0.5, offset_y: 0.0, width: 0.5, height: 0.5, keep_aspect_ratio: keep, center }
    }

    #[test]
    fn stretches_to_the_box_without_aspect_ratio() {
        assert_eq!(p(false, false).rect(640, 480, 10, 10), Some((320, 0, 320, 240)));
        assert_eq!(p(false, true).rect(640, 480, 10, 10), Some((320, 0, 320, 240)));
    }

    #[test]
    fn fits_and_centres_with_aspect_ratio() {
        // A square image in a 320x240 box: 240x240.
        assert_eq!(p(true, false).rect(640, 480, 10, 10), Some((320, 0, 240, 240)));
        assert_eq!(p(true, true).rect(640, 480, 10, 10), Some((360, 0, 240, 240)));
        // A wide image: 320x80, centred vertically.
        assert_eq!(p(true, true).rect(640, 480, 40, 10), Some((320, 80, 320, 80)));
    }

    #[test]
    fn refuses_empty_and_non_finite_placements() {
        let mut q = p(false, false);
        q.width = 0.0;
        assert_eq!(q.validate(), Err(PlacementError::NotPositive("widthPercent")));
        q.width = f32::NAN;
        assert_eq!(q.validate(), Err(PlacementError::NotFinite("widthPercent")));
        assert!(p(true, true).validate().is_ok());
        let tiny = Placement { width: 0.0001, ..p(false, false) };
        assert_eq!(tiny.rect(640, 480, 10, 10), None);
    }
}
