//! Per-ROI crowd measures on a small luma picture (pure: frames in,
//! detections out, unit tested without GStreamer).
//!
//! * occupancy: share of the ROI that differs from a learned background
//!   (running average, fast where the picture matches it, very slow under
//!   foreground so standing people are not learned away within seconds);
//! * fluidity: share of the occupied pixels that changed within the last
//!   few frames (a crowd that flows vs one that stands); the short memory
//!   keeps duplicated frames (a 15 fps camera in a 30 fps stream) from
//!   reading as a standstill;
//! * direction: block matching between the previous and the current frame
//!   over the changed blocks of the ROI, mean displacement quantized to
//!   left (0) / up (90) / right (180) / down (270) plus the ROI's offset.
//!
//! A level or direction is reported once it was seen on N consecutive
//! frames (the ROI's `*NumFramesToEvent`) and differs from the last one
//! reported, as upstream's filter does.

use crate::roi::Roi;

/// Luma difference above which a pixel counts as foreground / changed.
const DIFF: i16 = 30;
/// Background learning rate where the picture matches the background.
const LEARN_BG: f32 = 0.05;
/// Learning rate under foreground (minutes, not seconds, to absorb).
const LEARN_FG: f32 = 0.0005;
/// Block size and search radius of the block matching, in processing pixels.
const BLOCK: usize = 8;
const SEARCH: isize = 4;
/// Mean luma error per pixel above which a block match is no match.
const MAX_MATCH_ERROR: u32 = 12;
/// Frames a changed pixel counts as moving for fluidity.
const MOTION_MEMORY: u8 = 4;
/// Occupancy below this share of the ROI: fluidity is not measured.
const MIN_OCCUPIED: f32 = 1.0;

/// Something worth an event.
#[derive(Debug, Clone, PartialEq)]
pub enum Detection {
    Occupancy { roi: String, percentage: f32, level: i32 },
    Fluidity { roi: String, percentage: f32, level: i32 },
    Direction { roi: String, angle: f32 },
}

/// Debounce: a value is reported after `needed` consecutive sightings.
#[derive(Debug, Default)]
struct Debounce {
    reported: i32,
    candidate: i32,
    count: u32,
}

impl Debounce {
    fn see(&mut self, value: i32, needed: u32) -> bool {
        if value == self.reported {
            self.count = 0;
            return false;
        }
        if value == self.candidate {
            self.count += 1;
        } else {
            self.candidate = value;
            self.count = 1;
        }
        if self.count >= needed {
            self.reported = value;
            self.count = 0;
            return true;
        }
        false
    }
}

struct RoiState {
    roi: Roi,
    /// Indices of the ROI's pixels in the processing picture.
    pixels: Vec<usize>,
    /// Blocks (top-left x, y) whose centre lies in the ROI.
    blocks: Vec<(usize, usize)>,
    occupancy: Debounce,
    fluidity: Debounce,
    /// Direction: `reported` = -1 when none reported yet.
    direction: Debounce,
    still_frames: u32,
}

/// The analysis state for one picture size.
pub struct Analyzer {
    width: usize,
    height: usize,
    rois: Vec<RoiState>,
    background: Vec<f32>,
    prev: Vec<u8>,
    /// Per pixel: frames left during which it counts as recently moved.
    recent: Vec<u8>,
}

impl Analyzer {
    pub fn new(rois: &[Roi], width: usize, height: usize) -> Analyzer {
        let rois = rois
            .iter()
            .map(|roi| {
                let mut pixels = vec![];
                for y in 0..height {
                    for x in 0..width {
                        if roi.contains(x, y, width, height) {
                            pixels.push(y * width + x);
                        }
                    }
                }
                let mut blocks = vec![];
                for by in (0..height.saturating_sub(BLOCK - 1)).step_by(BLOCK) {
                    for bx in (0..width.saturating_sub(BLOCK - 1)).step_by(BLOCK) {
                        if roi.contains(bx + BLOCK / 2, by + BLOCK / 2, width, height) {
                            blocks.push((bx, by));
                        }
                    }
                }
                RoiState {
                    roi: roi.clone(),
                    pixels,
                    blocks,
                    occupancy: Debounce::default(),
                    fluidity: Debounce::default(),
                    direction: Debounce { reported: -1, candidate: -1, count: 0 },
                    still_frames: 0,
                }
            })
            .collect();
        Analyzer { width, height, rois, background: vec![], prev: vec![], recent: vec![0; width * height] }
    }

    pub fn size(&self) -> (usize, usize) {
        (self.width, self.height)
    }

    /// Feeds one `width`×`height` luma picture (tightly packed).
    pub fn feed(&mut self, luma: &[u8]) -> Vec<Detection> {
        assert_eq!(luma.len(), self.width * self.height);
        if self.background.is_empty() {
            self.background = luma.iter().map(|&v| v as f32).collect();
            self.prev = luma.to_vec();
            return vec![];
        }
        let fg: Vec<bool> =
            luma.iter().zip(&self.background).map(|(&v, &b)| (v as f32 - b).abs() > DIFF as f32).collect();
        let moved: Vec<bool> = luma.iter().zip(&self.prev).map(|(&v, &p)| (v as i16 - p as i16).abs() > DIFF).collect();
        for (r, &m) in self.recent.iter_mut().zip(&moved) {
            *r = if m { MOTION_MEMORY } else { r.saturating_sub(1) };
        }
        let mut out = vec![];
        for st in &mut self.rois {
            let area = st.pixels.len().max(1) as f32;
            let occupied = st.pixels.iter().filter(|&&i| fg[i]).count() as f32;
            let occupancy = 100.0 * occupied / area;
            let level = st.roi.occupancy.level(occupancy);
            if st.occupancy.see(level, st.roi.occupancy_frames) {
                out.push(Detection::Occupancy { roi: st.roi.id.clone(), percentage: occupancy, level });
            }
            let fluidity = if occupancy < MIN_OCCUPIED {
                0.0
            } else {
                let flowing = st.pixels.iter().filter(|&&i| fg[i] && self.recent[i] > 0).count() as f32;
                100.0 * flowing / occupied
            };
            let level = st.roi.fluidity.level(fluidity);
            if st.fluidity.see(level, st.roi.fluidity_frames) {
                out.push(Detection::Fluidity { roi: st.roi.id.clone(), percentage: fluidity, level });
            }
            // A crowd's direction: nothing to follow in an (almost) empty
            // ROI, e.g. a blinking pixel or noise.
            if st.roi.send_direction {
                let moving = if occupancy < MIN_OCCUPIED {
                    None
                } else {
                    motion(&self.prev, luma, self.width, self.height, &st.blocks, &moved)
                };
                match moving {
                    Some(angle) => {
                        st.still_frames = 0;
                        let angle = (angle + st.roi.angle_offset).rem_euclid(360);
                        if st.direction.see(angle, st.roi.direction_frames) {
                            out.push(Detection::Direction { roi: st.roi.id.clone(), angle: angle as f32 });
                        }
                    }
                    None => {
                        // Duplicated frames (a 15 fps source at 30 fps) are
                        // not a stop; a few still frames in a row are.
                        st.still_frames += 1;
                        if st.still_frames >= st.roi.direction_reset_frames {
                            st.direction = Debounce { reported: -1, candidate: -1, count: 0 };
                        }
                    }
                }
            }
        }
        for ((b, &v), &f) in self.background.iter_mut().zip(luma).zip(&fg) {
            *b += (v as f32 - *b) * if f { LEARN_FG } else { LEARN_BG };
        }
        self.prev.copy_from_slice(luma);
        out
    }
}

/// Mean displacement of the changed blocks, quantized to 0/90/180/270
/// (left/up/right/down); `None` when nothing moved.
fn motion(prev: &[u8], cur: &[u8], w: usize, h: usize, blocks: &[(usize, usize)], moved: &[bool]) -> Option<i32> {
    let (mut sx, mut sy, mut n) = (0isize, 0isize, 0isize);
    for &(bx, by) in blocks {
        let changed =
            (0..BLOCK).map(|dy| (0..BLOCK).filter(|&dx| moved[(by + dy) * w + bx + dx]).count()).sum::<usize>();
        if changed * 8 < BLOCK * BLOCK {
            continue;
        }
        // Where did the current block come from in the previous frame?
        let mut best = (u32::MAX, 0isize, 0isize);
        let mut still = u32::MAX;
        for oy in -SEARCH..=SEARCH {
            for ox in -SEARCH..=SEARCH {
                let (px, py) = (bx as isize + ox, by as isize + oy);
                if px < 0 || py < 0 || px as usize + BLOCK > w || py as usize + BLOCK > h {
                    continue;
                }
                let mut sad = 0u32;
                for dy in 0..BLOCK {
                    let c = &cur[(by + dy) * w + bx..][..BLOCK];
                    let p = &prev[(py as usize + dy) * w + px as usize..][..BLOCK];
                    sad += c.iter().zip(p).map(|(&a, &b)| (a as i32 - b as i32).unsigned_abs()).sum::<u32>();
                }
                if ox == 0 && oy == 0 {
                    still = sad;
                }
                // Ties prefer the smaller shift.
                if sad < best.0 || (sad == best.0 && ox.abs() + oy.abs() < best.1.abs() + best.2.abs()) {
                    best = (sad, ox, oy);
                }
            }
        }
        // Only a shift that explains the change counts (a flicker or a
        // new object matches no shift well).
        let pixels = (BLOCK * BLOCK) as u32;
        if best.0 > pixels * MAX_MATCH_ERROR || best.0 * 2 > still {
            continue;
        }
        // Content moved by minus the offset it came from.
        sx -= best.1;
        sy -= best.2;
        n += 1;
    }
    if n == 0 || (sx == 0 && sy == 0) {
        return None;
    }
    // Image y grows downwards; left = 0, up = 90, right = 180, down = 270.
    let deg = (-(sy as f64)).atan2(-(sx as f64)).to_degrees();
    let q = ((deg / 90.0).round() as i32 * 90).rem_euclid(360);
    Some(q)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::roi::check;
    use crate::roi::tests::rect;

    const W: usize = 80;
    const H: usize = 60;

    fn picture(blobs: &[(usize, usize, usize)]) -> Vec<u8> {
        let mut p = vec![128u8; W * H];
        for &(x0, y0, s) in blobs {
            for y in y0..(y0 + s).min(H) {
                for x in x0..(x0 + s).min(W) {
                    // Textured so block matching has something to match.
                    p[y * W + x] = if (x + y) % 3 == 0 { 10 } else { 40 };
                }
            }
        }
        p
    }

    fn analyzer(direction: bool) -> Analyzer {
        let mut left = rect("left", 0.0, 0.0, 0.5, 1.0);
        left.region_of_interest_config.send_optical_flow_event = direction;
        Analyzer::new(&check(&[left, rect("right", 0.5, 0.0, 1.0, 1.0)]).unwrap(), W, H)
    }

    #[test]
    fn blobs_in_one_roi_raise_its_occupancy_only() {
        let mut a = analyzer(false);
        let empty = picture(&[]);
        for _ in 0..10 {
            assert!(a.feed(&empty).is_empty());
        }
        // Left half is 40×60 = 2400 px; two 20×20 blobs = 33 %: level 1.
        let blobs = picture(&[(5, 5, 20), (15, 35, 20)]);
        let mut seen = vec![];
        for _ in 0..10 {
            seen.extend(a.feed(&blobs));
        }
        let occ: Vec<_> = seen.iter().filter(|d| matches!(d, Detection::Occupancy { .. })).collect();
        assert_eq!(occ.len(), 1, "{seen:?}");
        let Detection::Occupancy { roi, percentage, level } = occ[0] else { unreachable!() };
        assert_eq!(roi, "left");
        assert!((percentage - 33.3).abs() < 1.0, "{percentage}");
        assert_eq!(*level, 1);
        assert!(seen.iter().all(|d| !matches!(d, Detection::Occupancy { roi, .. } if roi == "right")));
    }

    #[test]
    fn a_level_needs_consecutive_frames() {
        let mut a = analyzer(false);
        a.feed(&picture(&[]));
        // Four frames of blobs (5 are needed), then empty again: nothing.
        for _ in 0..4 {
            assert!(a.feed(&picture(&[(5, 5, 30)])).is_empty());
        }
        for _ in 0..10 {
            assert!(a.feed(&picture(&[])).is_empty());
        }
    }

    #[test]
    fn moving_blobs_flow_and_have_a_direction() {
        let mut a = analyzer(true);
        a.feed(&picture(&[]));
        let mut seen = vec![];
        for i in 0..12 {
            seen.extend(a.feed(&picture(&[(4 + 2 * i, 20, 14)])));
        }
        assert!(
            seen.iter().any(|d| matches!(d, Detection::Fluidity { roi, level, .. } if roi == "left" && *level > 0))
        );
        let dirs: Vec<_> = seen.iter().filter(|d| matches!(d, Detection::Direction { .. })).collect();
        assert_eq!(dirs, [&Detection::Direction { roi: "left".into(), angle: 180.0 }], "{seen:?}");
    }
}
