//! Geometry in normalized coordinates: (0, 0) is the top-left corner of the image, (1, 1) the
//! bottom-right, whatever the image's size. Drivers turn them into pixels.

use serde::{Deserialize, Serialize};

/// A point `[x, y]`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Point(pub f64, pub f64);

impl Point {
    /// x.
    pub fn x(self) -> f64 {
        self.0
    }
    /// y.
    pub fn y(self) -> f64 {
        self.1
    }
    /// Both coordinates are finite numbers.
    pub fn is_finite(self) -> bool {
        self.0.is_finite() && self.1.is_finite()
    }
    /// In pixels of a `width`x`height` image, clipped to the image.
    pub fn to_pixels(self, width: u32, height: u32) -> (i32, i32) {
        let clip = |v: f64, max: u32| {
            (v.clamp(0.0, 1.0) * f64::from(max.saturating_sub(1))).round() as i32
        };
        (clip(self.0, width), clip(self.1, height))
    }
}

/// A segment from one point to another.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Line {
    /// Start.
    pub from: Point,
    /// End.
    pub to: Point,
}

fn cross(o: Point, a: Point, b: Point) -> f64 {
    (a.0 - o.0) * (b.1 - o.1) - (a.1 - o.1) * (b.0 - o.0)
}

impl Line {
    /// The point where two segments cross, if they do (touching counts; collinear overlaps
    /// return `None`).
    pub fn intersection(&self, other: &Line) -> Option<Point> {
        let (p, r) = (
            self.from,
            Point(self.to.0 - self.from.0, self.to.1 - self.from.1),
        );
        let (q, s) = (
            other.from,
            Point(other.to.0 - other.from.0, other.to.1 - other.from.1),
        );
        let denom = r.0 * s.1 - r.1 * s.0;
        if denom.abs() < 1e-12 {
            return None;
        }
        let qp = Point(q.0 - p.0, q.1 - p.1);
        let t = (qp.0 * s.1 - qp.1 * s.0) / denom;
        let u = (qp.0 * r.1 - qp.1 * r.0) / denom;
        ((0.0..=1.0).contains(&t) && (0.0..=1.0).contains(&u))
            .then_some(Point(p.0 + t * r.0, p.1 + t * r.1))
    }

    /// Length.
    pub fn length(&self) -> f64 {
        (self.to.0 - self.from.0).hypot(self.to.1 - self.from.1)
    }
}

/// An axis-aligned rectangle `[x0, y0, x1, y1]` (top-left, bottom-right).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Rect(pub f64, pub f64, pub f64, pub f64);

impl Rect {
    /// From top-left and bottom-right.
    pub fn from_tlbr(top_left: Point, bottom_right: Point) -> Rect {
        Rect(top_left.0, top_left.1, bottom_right.0, bottom_right.1)
    }
    /// From top-left, height and width (the order detectors often use).
    pub fn from_tlhw(top_left: Point, height: f64, width: f64) -> Rect {
        Rect(
            top_left.0,
            top_left.1,
            top_left.0 + width,
            top_left.1 + height,
        )
    }
    /// From center and size.
    pub fn from_center(center: Point, width: f64, height: f64) -> Rect {
        Rect(
            center.0 - width / 2.0,
            center.1 - height / 2.0,
            center.0 + width / 2.0,
            center.1 + height / 2.0,
        )
    }
    /// Top-left and bottom-right.
    pub fn tlbr(self) -> (Point, Point) {
        (Point(self.0, self.1), Point(self.2, self.3))
    }
    /// Top-left, height, width.
    pub fn tlhw(self) -> (Point, f64, f64) {
        (Point(self.0, self.1), self.height(), self.width())
    }
    /// Width.
    pub fn width(self) -> f64 {
        self.2 - self.0
    }
    /// Height.
    pub fn height(self) -> f64 {
        self.3 - self.1
    }
    /// Center.
    pub fn center(self) -> Point {
        Point((self.0 + self.2) / 2.0, (self.1 + self.3) / 2.0)
    }
    /// Area.
    pub fn area(self) -> f64 {
        self.width().max(0.0) * self.height().max(0.0)
    }
    /// Whether the point is inside or on the border.
    pub fn contains(self, p: Point) -> bool {
        (self.0..=self.2).contains(&p.0) && (self.1..=self.3).contains(&p.1)
    }
    /// Every coordinate finite.
    pub fn is_finite(self) -> bool {
        [self.0, self.1, self.2, self.3]
            .iter()
            .all(|v| v.is_finite())
    }
    /// x1 < x0 or y1 < y0.
    pub fn is_inverted(self) -> bool {
        self.2 < self.0 || self.3 < self.1
    }
}

/// A polyline or polygon through `points`.
#[derive(Debug, Clone, PartialEq)]
pub struct PolyLine {
    /// The vertices in order.
    pub points: Vec<Point>,
    /// Whether the last point joins the first.
    pub closed: bool,
}

impl PolyLine {
    /// The smallest rectangle holding every point (`None` without points).
    pub fn bounding_box(&self) -> Option<Rect> {
        let first = self.points.first()?;
        Some(
            self.points
                .iter()
                .fold(Rect(first.0, first.1, first.0, first.1), |r, p| {
                    Rect(r.0.min(p.0), r.1.min(p.1), r.2.max(p.0), r.3.max(p.1))
                }),
        )
    }

    fn segments(&self) -> Vec<Line> {
        let n = self.points.len();
        let mut segs: Vec<Line> = self
            .points
            .windows(2)
            .map(|w| Line {
                from: w[0],
                to: w[1],
            })
            .collect();
        if self.closed && n > 2 {
            segs.push(Line {
                from: self.points[n - 1],
                to: self.points[0],
            });
        }
        segs
    }

    /// Whether two non-adjacent segments cross.
    pub fn is_self_intersecting(&self) -> bool {
        let segs = self.segments();
        let n = segs.len();
        for i in 0..n {
            for j in i + 1..n {
                let adjacent = j == i + 1 || (self.closed && i == 0 && j == n - 1);
                if !adjacent && segs[i].intersection(&segs[j]).is_some() {
                    return true;
                }
            }
        }
        false
    }

    /// Whether the (closed) polygon is convex.
    pub fn is_convex(&self) -> bool {
        let n = self.points.len();
        if n < 3 {
            return false;
        }
        let mut sign = 0.0f64;
        for i in 0..n {
            let c = cross(
                self.points[i],
                self.points[(i + 1) % n],
                self.points[(i + 2) % n],
            );
            if c.abs() > 1e-12 {
                if sign != 0.0 && c.signum() != sign {
                    return false;
                }
                sign = c.signum();
            }
        }
        sign != 0.0 && !self.is_self_intersecting()
    }

    /// Whether the point is inside the polygon the points enclose (even-odd rule).
    pub fn contains(&self, p: Point) -> bool {
        let n = self.points.len();
        let mut inside = false;
        let mut j = n.wrapping_sub(1);
        for i in 0..n {
            let (a, b) = (self.points[i], self.points[j]);
            if (a.1 > p.1) != (b.1 > p.1) && p.0 < (b.0 - a.0) * (p.1 - a.1) / (b.1 - a.1) + a.0 {
                inside = !inside;
            }
            j = i;
        }
        inside
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn segments_cross_where_expected() {
        let a = Line {
            from: Point(0.0, 0.0),
            to: Point(1.0, 1.0),
        };
        let b = Line {
            from: Point(0.0, 1.0),
            to: Point(1.0, 0.0),
        };
        let p = a.intersection(&b).unwrap();
        assert!((p.0 - 0.5).abs() < 1e-12 && (p.1 - 0.5).abs() < 1e-12);
        let c = Line {
            from: Point(0.6, 0.0),
            to: Point(1.0, 0.0),
        };
        assert_eq!(b.intersection(&c), Some(Point(1.0, 0.0)), "touching counts");
        assert_eq!(
            a.intersection(&Line {
                from: Point(0.0, 0.1),
                to: Point(0.9, 1.0)
            }),
            None,
            "parallel"
        );
    }

    #[test]
    fn polygons_know_their_shape() {
        let square = PolyLine {
            points: vec![
                Point(0.1, 0.1),
                Point(0.9, 0.1),
                Point(0.9, 0.9),
                Point(0.1, 0.9),
            ],
            closed: true,
        };
        assert!(square.is_convex() && !square.is_self_intersecting());
        assert!(square.contains(Point(0.5, 0.5)) && !square.contains(Point(0.95, 0.5)));
        assert_eq!(square.bounding_box(), Some(Rect(0.1, 0.1, 0.9, 0.9)));
        let bow_tie = PolyLine {
            points: vec![
                Point(0.0, 0.0),
                Point(1.0, 1.0),
                Point(1.0, 0.0),
                Point(0.0, 1.0),
            ],
            closed: true,
        };
        assert!(bow_tie.is_self_intersecting() && !bow_tie.is_convex());
        let arrow = PolyLine {
            points: vec![
                Point(0.0, 0.0),
                Point(0.5, 0.2),
                Point(1.0, 0.0),
                Point(0.5, 1.0),
            ],
            closed: true,
        };
        assert!(!arrow.is_convex() && !arrow.is_self_intersecting());
    }

    proptest! {
        #![proptest_config(ProptestConfig {
            cases: 256,
            rng_seed: proptest::test_runner::RngSeed::Fixed(0x6e0),
            failure_persistence: None,
            ..ProptestConfig::default()
        })]

        #[test]
        fn tlbr_and_tlhw_round_trip(x in 0.0f64..1.0, y in 0.0f64..1.0, w in 0.0f64..1.0, h in 0.0f64..1.0) {
            let r = Rect::from_tlhw(Point(x, y), h, w);
            let (tl, br) = r.tlbr();
            prop_assert_eq!(Rect::from_tlbr(tl, br), r);
            let (tl2, h2, w2) = r.tlhw();
            prop_assert!((h2 - h).abs() < 1e-12 && (w2 - w).abs() < 1e-12 && tl2 == tl);
            let c = Rect::from_center(r.center(), r.width(), r.height());
            prop_assert!((c.0 - r.0).abs() < 1e-9 && (c.3 - r.3).abs() < 1e-9);
            prop_assert!((r.area() - w * h).abs() < 1e-9);
            prop_assert!(r.contains(r.center()));
        }

        #[test]
        fn point_in_convex_polygon_matches_the_half_plane_reference(
            angles in proptest::collection::btree_set(0u16..3600, 3..10),
            px in 0.0f64..1.0, py in 0.0f64..1.0,
        ) {
            // Points on a circle in angle order form a convex polygon.
            let points: Vec<Point> = angles
                .iter()
                .map(|a| { let t = f64::from(*a) / 3600.0 * std::f64::consts::TAU; Point(0.5 + 0.4 * t.cos(), 0.5 + 0.4 * t.sin()) })
                .collect();
            let poly = PolyLine { points: points.clone(), closed: true };
            let p = Point(px, py);
            let n = points.len();
            let sides: Vec<f64> = (0..n).map(|i| cross(points[i], points[(i + 1) % n], p)).collect();
            // Skip points too close to an edge for either method to be exact.
            prop_assume!(sides.iter().all(|s| s.abs() > 1e-9));
            let reference = sides.iter().all(|s| *s > 0.0) || sides.iter().all(|s| *s < 0.0);
            prop_assert_eq!(poly.contains(p), reference);
            prop_assert!(poly.is_convex(), "points on a circle in angle order are convex");
        }
    }
}
