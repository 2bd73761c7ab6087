//! Keeping the strongest keypoints while spreading them over the image: a dense textured corner
//! should not take every place from the rest of the picture.

use crate::Keypoint;

/// The `max` keypoints kept (all when `max` is 0 or there are fewer), strongest first: each cell
/// of a `grid x grid` partition of the `width x height` image first takes at most `cap` times
/// its even share, in order of score; the places left go to the strongest of the rest.
pub fn spread(
    mut points: Vec<Keypoint>,
    max: usize,
    width: usize,
    height: usize,
    grid: usize,
    cap: f32,
) -> Vec<Keypoint> {
    points.sort_by(|a, b| b.score.total_cmp(&a.score));
    if max == 0 || points.len() <= max {
        return points;
    }
    let cells = grid * grid;
    let per_cell = ((cap * max as f32 / cells as f32).ceil() as usize).max(1);
    let cell_of = |k: &Keypoint| {
        let cx = ((k.x.max(0.0) / width.max(1) as f32 * grid as f32) as usize).min(grid - 1);
        let cy = ((k.y.max(0.0) / height.max(1) as f32 * grid as f32) as usize).min(grid - 1);
        cy * grid + cx
    };
    let mut taken = vec![0usize; cells];
    let mut kept = vec![false; points.len()];
    let mut count = 0;
    for (i, k) in points.iter().enumerate() {
        let cell = cell_of(k);
        if count < max && taken[cell] < per_cell {
            taken[cell] += 1;
            kept[i] = true;
            count += 1;
        }
    }
    for flag in kept.iter_mut() {
        if count >= max {
            break;
        }
        if !*flag {
            *flag = true;
            count += 1;
        }
    }
    points.into_iter().zip(kept).filter_map(|(k, keep)| keep.then_some(k)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kp(x: f32, y: f32, score: f32) -> Keypoint {
        Keypoint { x, y, scale: 2.0, ori: 0.0, score }
    }

    #[test]
    fn a_crowded_cell_leaves_room_for_others() {
        // 10 strong points in the top-left cell, 2 weak ones elsewhere; keep 4 on a 2x2 grid
        // with a cap of 1x the share (1 per cell): each other cell gets its point.
        let mut points: Vec<_> = (0..10).map(|i| kp(1.0, 1.0, 10.0 + i as f32)).collect();
        points.push(kp(90.0, 10.0, 1.0));
        points.push(kp(10.0, 90.0, 0.5));
        let kept = spread(points, 4, 100, 100, 2, 1.0);
        assert_eq!(kept.len(), 4);
        assert!(kept.iter().any(|k| k.x == 90.0) && kept.iter().any(|k| k.y == 90.0));
        assert_eq!(kept[0].score, 19.0, "strongest first");
    }

    #[test]
    fn zero_means_all() {
        let points = vec![kp(1.0, 1.0, 1.0), kp(2.0, 2.0, 3.0)];
        let kept = spread(points, 0, 10, 10, 4, 2.0);
        assert_eq!(kept.len(), 2);
        assert_eq!(kept[0].score, 3.0);
    }
}
