//! Where each port's picture goes on a mixing hub's output (spec §10.10).
//! Pure geometry, no GStreamer: the mixers turn these rectangles into
//! compositor pad properties.

/// A rectangle on the output frame, in pixels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rect {
    pub x: i32,
    pub y: i32,
    pub width: i32,
    pub height: i32,
}

/// Composite's grid for `n` pictures on a `width`×`height` output:
/// columns = ⌈√n⌉, rows = ⌈n/columns⌉, cells filled row-major. Each cell is
/// the space a picture may take; the compositor keeps the picture's aspect
/// inside it (`sizing-policy=keep-aspect-ratio`), black around it.
pub fn grid(n: usize, width: i32, height: i32) -> Vec<Rect> {
    if n == 0 {
        return Vec::new();
    }
    let cols = (n as f64).sqrt().ceil() as usize;
    let rows = n.div_ceil(cols);
    let cw = width / cols as i32;
    let ch = height / rows as i32;
    (0..n).map(|i| Rect { x: (i % cols) as i32 * cw, y: (i / cols) as i32 * ch, width: cw, height: ch }).collect()
}

/// AlphaBlending's placement of a port over the master picture
/// (`setPortProperties`): fractions of the master's size.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Placement {
    pub relative_x: f32,
    pub relative_y: f32,
    pub relative_width: f32,
    pub relative_height: f32,
    pub z_order: i32,
}

impl Placement {
    /// Checks the kmd's ranges: positions 0..1, sizes in (0, 1].
    pub fn validate(&self) -> Result<(), String> {
        let in_unit = |v: f32| v.is_finite() && (0.0..=1.0).contains(&v);
        for (name, v) in [("relativeX", self.relative_x), ("relativeY", self.relative_y)] {
            if !in_unit(v) {
                return Err(format!("'{name}' must be between 0 and 1, got {v}"));
            }
        }
        for (name, v) in [("relativeWidth", self.relative_width), ("relativeHeight", self.relative_height)] {
            if !in_unit(v) || v == 0.0 {
                return Err(format!("'{name}' must be greater than 0 and at most 1, got {v}"));
            }
        }
        Ok(())
    }

    /// The rectangle on a `width`×`height` master.
    pub fn rect(&self, width: i32, height: i32) -> Rect {
        let px = |f: f32, total: i32| (f as f64 * total as f64).round() as i32;
        Rect {
            x: px(self.relative_x, width),
            y: px(self.relative_y, height),
            width: px(self.relative_width, width).max(1),
            height: px(self.relative_height, height).max(1),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(x: i32, y: i32, width: i32, height: i32) -> Rect {
        Rect { x, y, width, height }
    }

    #[test]
    fn grid_grows_one_two_four_nine() {
        assert!(grid(0, 800, 600).is_empty());
        assert_eq!(grid(1, 800, 600), vec![r(0, 0, 800, 600)]);
        assert_eq!(grid(2, 640, 240), vec![r(0, 0, 320, 240), r(320, 0, 320, 240)]);
        // 3 and 4: 2×2, filled row-major.
        assert_eq!(grid(3, 800, 600), vec![r(0, 0, 400, 300), r(400, 0, 400, 300), r(0, 300, 400, 300)]);
        assert_eq!(grid(4, 800, 600)[3], r(400, 300, 400, 300));
        // 5..9: 3 columns; 5 and 6 need only 2 rows.
        assert_eq!(grid(5, 900, 600).len(), 5);
        assert_eq!(grid(5, 900, 600)[4], r(300, 300, 300, 300));
        assert_eq!(grid(9, 900, 900)[8], r(600, 600, 300, 300));
        // 10: 4 columns, 3 rows.
        assert_eq!(grid(10, 800, 600)[9], r(200, 400, 200, 200));
    }

    #[test]
    fn placement_is_relative_to_the_master() {
        let p = Placement { relative_x: 0.5, relative_y: 0.25, relative_width: 0.5, relative_height: 0.5, z_order: 2 };
        assert_eq!(p.rect(640, 480), r(320, 120, 320, 240));
        assert!(p.validate().is_ok());
    }

    #[test]
    fn placement_rejects_out_of_range_values() {
        let ok = Placement { relative_x: 0.0, relative_y: 0.0, relative_width: 1.0, relative_height: 1.0, z_order: 0 };
        assert!(ok.validate().is_ok());
        assert!(Placement { relative_x: 1.5, ..ok }.validate().unwrap_err().contains("relativeX"));
        assert!(Placement { relative_y: -0.1, ..ok }.validate().unwrap_err().contains("relativeY"));
        assert!(Placement { relative_width: 0.0, ..ok }.validate().unwrap_err().contains("relativeWidth"));
        assert!(Placement { relative_height: f32::NAN, ..ok }.validate().unwrap_err().contains("relativeHeight"));
    }
}
