//! Regions of interest as the constructor gives them, checked once (pure):
//! a bad list is refused with 40001 before any media element exists.

use crate::api::crowddetector::RegionOfInterest;

/// Why a constructor's `rois` were refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RoiError {
    #[error("'rois' must list at least one region of interest")]
    Empty,
    #[error("ROI '{0}': the id must begin with a letter followed by letters, digits or /-_.:+")]
    BadId(String),
    #[error("ROI '{0}' is listed twice")]
    Duplicate(String),
    #[error("ROI '{0}': a region needs at least 3 points, got {1}")]
    TooFewPoints(String, usize),
    #[error("ROI '{0}': point ({1}, {2}) is outside the picture (x and y in [0, 1])")]
    PointOutside(String, f32, f32),
    #[error("ROI '{0}': {1} levels must satisfy 0 <= min <= med <= max <= 100, got {2}/{3}/{4}")]
    Levels(String, &'static str, i32, i32, i32),
    #[error("ROI '{0}': {1} must be at least 1, got {2}")]
    Frames(String, &'static str, i32),
}

/// Percent thresholds: the level is 0 below `min`, 1 up to `med`, 2 up to
/// `max`, 3 above (the kmd's RegionOfInterestConfig docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Levels {
    pub min: i32,
    pub med: i32,
    pub max: i32,
}

impl Levels {
    pub fn level(&self, percent: f32) -> i32 {
        if percent < self.min as f32 {
            0
        } else if percent < self.med as f32 {
            1
        } else if percent < self.max as f32 {
            2
        } else {
            3
        }
    }
}

/// One checked region, points as fractions of the picture.
#[derive(Debug, Clone, PartialEq)]
pub struct Roi {
    pub id: String,
    pub points: Vec<(f32, f32)>,
    pub occupancy: Levels,
    pub occupancy_frames: u32,
    pub fluidity: Levels,
    pub fluidity_frames: u32,
    pub send_direction: bool,
    pub direction_frames: u32,
    pub direction_reset_frames: u32,
    pub angle_offset: i32,
}

impl Roi {
    /// Whether the pixel centre (x, y) of a `w`×`h` picture lies inside
    /// the polygon (even-odd rule).
    pub fn contains(&self, x: usize, y: usize, w: usize, h: usize) -> bool {
        let px = (x as f32 + 0.5) / w as f32;
        let py = (y as f32 + 0.5) / h as f32;
        let mut inside = false;
        let n = self.points.len();
        let mut j = n - 1;
        for i in 0..n {
            let (xi, yi) = self.points[i];
            let (xj, yj) = self.points[j];
            if (yi > py) != (yj > py) && px < (xj - xi) * (py - yi) / (yj - yi) + xi {
                inside = !inside;
            }
            j = i;
        }
        inside
    }
}

fn id_ok(id: &str) -> bool {
    let mut chars = id.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || "/-_.:+".contains(c))
}

fn levels(id: &str, what: &'static str, min: i32, med: i32, max: i32) -> Result<Levels, RoiError> {
    if 0 <= min && min <= med && med <= max && max <= 100 {
        Ok(Levels { min, med, max })
    } else {
        Err(RoiError::Levels(id.to_string(), what, min, med, max))
    }
}

fn frames(id: &str, what: &'static str, n: i32) -> Result<u32, RoiError> {
    if n >= 1 { Ok(n as u32) } else { Err(RoiError::Frames(id.to_string(), what, n)) }
}

/// Checks the constructor's regions.
pub fn check(rois: &[RegionOfInterest]) -> Result<Vec<Roi>, RoiError> {
    if rois.is_empty() {
        return Err(RoiError::Empty);
    }
    let mut out: Vec<Roi> = Vec::with_capacity(rois.len());
    for r in rois {
        let id = r.id.as_str();
        if !id_ok(id) {
            return Err(RoiError::BadId(id.to_string()));
        }
        if out.iter().any(|o| o.id == id) {
            return Err(RoiError::Duplicate(id.to_string()));
        }
        if r.points.len() < 3 {
            return Err(RoiError::TooFewPoints(id.to_string(), r.points.len()));
        }
        for p in &r.points {
            if !(0.0..=1.0).contains(&p.x) || !(0.0..=1.0).contains(&p.y) {
                return Err(RoiError::PointOutside(id.to_string(), p.x, p.y));
            }
        }
        let c = &r.region_of_interest_config;
        out.push(Roi {
            id: id.to_string(),
            points: r.points.iter().map(|p| (p.x, p.y)).collect(),
            occupancy: levels(id, "occupancy", c.occupancy_level_min, c.occupancy_level_med, c.occupancy_level_max)?,
            occupancy_frames: frames(id, "occupancyNumFramesToEvent", c.occupancy_num_frames_to_event)?,
            fluidity: levels(id, "fluidity", c.fluidity_level_min, c.fluidity_level_med, c.fluidity_level_max)?,
            fluidity_frames: frames(id, "fluidityNumFramesToEvent", c.fluidity_num_frames_to_event)?,
            send_direction: c.send_optical_flow_event,
            direction_frames: frames(id, "opticalFlowNumFramesToEvent", c.optical_flow_num_frames_to_event)?,
            direction_reset_frames: frames(id, "opticalFlowNumFramesToReset", c.optical_flow_num_frames_to_reset)?,
            angle_offset: c.optical_flow_angle_offset,
        });
    }
    Ok(out)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::api::crowddetector::{RegionOfInterestConfig, RelativePoint};

    pub fn config() -> RegionOfInterestConfig {
        RegionOfInterestConfig {
            occupancy_level_min: 10,
            occupancy_level_med: 35,
            occupancy_level_max: 65,
            occupancy_num_frames_to_event: 5,
            fluidity_level_min: 10,
            fluidity_level_med: 35,
            fluidity_level_max: 65,
            fluidity_num_frames_to_event: 5,
            send_optical_flow_event: false,
            optical_flow_num_frames_to_event: 3,
            optical_flow_num_frames_to_reset: 3,
            optical_flow_angle_offset: 0,
        }
    }

    pub fn rect(id: &str, x0: f32, y0: f32, x1: f32, y1: f32) -> RegionOfInterest {
        let p = |x, y| RelativePoint { x, y };
        RegionOfInterest {
            points: vec![p(x0, y0), p(x1, y0), p(x1, y1), p(x0, y1)],
            region_of_interest_config: config(),
            id: id.into(),
        }
    }

    #[test]
    fn empty_list_bad_points_and_levels_are_refused() {
        assert_eq!(check(&[]), Err(RoiError::Empty));
        let mut r = rect("a", 0.0, 0.0, 0.5, 0.5);
        r.points.truncate(2);
        assert!(matches!(check(&[r]), Err(RoiError::TooFewPoints(..))));
        assert!(matches!(check(&[rect("a", -0.1, 0.0, 0.5, 0.5)]), Err(RoiError::PointOutside(..))));
        assert!(matches!(check(&[rect("1a", 0.0, 0.0, 0.5, 0.5)]), Err(RoiError::BadId(..))));
        let dup = [rect("a", 0.0, 0.0, 0.5, 0.5), rect("a", 0.5, 0.5, 1.0, 1.0)];
        assert!(matches!(check(&dup), Err(RoiError::Duplicate(..))));
        let mut r = rect("a", 0.0, 0.0, 0.5, 0.5);
        r.region_of_interest_config.occupancy_level_min = -1;
        assert!(matches!(check(&[r]), Err(RoiError::Levels(..))));
        let mut r = rect("a", 0.0, 0.0, 0.5, 0.5);
        r.region_of_interest_config.optical_flow_num_frames_to_event = 0;
        assert!(matches!(check(&[r]), Err(RoiError::Frames(..))));
    }

    #[test]
    fn polygon_contains_pixel_centres() {
        let r = &check(&[rect("left", 0.0, 0.0, 0.5, 1.0)]).unwrap()[0];
        assert!(r.contains(0, 0, 10, 10));
        assert!(r.contains(4, 9, 10, 10));
        assert!(!r.contains(5, 5, 10, 10));
    }

    #[test]
    fn levels_follow_the_thresholds() {
        let l = Levels { min: 10, med: 35, max: 65 };
        assert_eq!([l.level(0.0), l.level(10.0), l.level(40.0), l.level(90.0)], [0, 1, 2, 3]);
    }
}
