//! Axes of the charts: linear scales, round tick values, and the units on them.

/// Maps a domain (`d0..d1`) onto a range of pixels (`r0..r1`); a degenerate domain maps to
/// the range's start instead of dividing by zero.
#[derive(Debug, Clone, Copy)]
pub struct Scale {
    pub d0: f64,
    pub d1: f64,
    pub r0: f64,
    pub r1: f64,
}

impl Scale {
    pub fn new(domain: (f64, f64), range: (f64, f64)) -> Self {
        Self {
            d0: domain.0,
            d1: domain.1,
            r0: range.0,
            r1: range.1,
        }
    }

    pub fn at(&self, v: f64) -> f64 {
        let span = self.d1 - self.d0;
        if !span.is_finite() || span <= 0.0 || !v.is_finite() {
            return self.r0;
        }
        let clamped = v.clamp(self.d0, self.d1);
        self.r0 + (clamped - self.d0) / span * (self.r1 - self.r0)
    }
}

/// A round upper bound for `max` and the ticks from 0 to it (about `n` of them): steps of 1,
/// 2 or 5 times a power of ten. A max that is zero, negative or not a number gives 0..1.
pub fn ticks(max: f64, n: usize) -> (f64, Vec<f64>) {
    let max = if max.is_finite() && max > 0.0 { max } else { 1.0 };
    let raw = max / n.max(1) as f64;
    let pow = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|m| m * pow)
        .find(|s| *s >= raw)
        .unwrap_or(10.0 * pow);
    let top = (max / step).ceil() * step;
    let count = (top / step).round() as usize;
    (top, (0..=count).map(|i| i as f64 * step).collect())
}

/// `ticks` for bytes, in steps that are round in the binary unit the max is shown in.
pub fn byte_ticks(max: f64, n: usize) -> (f64, Vec<f64>) {
    let mut unit = 1.0;
    while max.is_finite() && max / unit >= 1024.0 && unit < 1024f64.powi(4) {
        unit *= 1024.0;
    }
    let (top, t) = ticks(max / unit, n);
    (top * unit, t.into_iter().map(|v| v * unit).collect())
}

/// Bytes in binary units, as `docker stats` shows them.
pub fn bytes(b: f64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = b.max(0.0);
    let mut i = 0;
    while v >= 1024.0 && i < UNITS.len() - 1 {
        v /= 1024.0;
        i += 1;
    }
    match i {
        0 => format!("{v:.0} {}", UNITS[i]),
        _ if v < 10.0 => format!("{v:.1} {}", UNITS[i]),
        _ => format!("{v:.0} {}", UNITS[i]),
    }
}

/// Seconds as `850 ms`, `12.3 s`, `4m 05s`, `1h 02m`.
pub fn secs(s: f64) -> String {
    if !s.is_finite() || s < 0.0 {
        return "–".into();
    }
    if s < 1.0 {
        return format!("{:.0} ms", s * 1000.0);
    }
    if s < 60.0 {
        return format!("{s:.1} s");
    }
    let whole = s.round() as u64;
    if whole < 3600 {
        return format!("{}m {:02}s", whole / 60, whole % 60);
    }
    format!("{}h {:02}m", whole / 3600, whole % 3600 / 60)
}

/// A tick label on a time axis: seconds without needless decimals.
pub fn tick_secs(s: f64) -> String {
    if s >= 60.0 && s.rem_euclid(60.0) == 0.0 {
        return format!("{}m", s / 60.0);
    }
    let t = format!("{s:.2}");
    format!("{}s", t.trim_end_matches('0').trim_end_matches('.'))
}

/// An RFC 3339 time as seconds since the epoch; None when absent or unreadable.
pub fn epoch(at: Option<&str>) -> Option<f64> {
    let t = humantime::parse_rfc3339_weak(at?.trim()).ok()?;
    Some(t.duration_since(std::time::UNIX_EPOCH).ok()?.as_secs_f64())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_are_round_and_cover_the_max() {
        assert_eq!(ticks(7.3, 4), (8.0, vec![0.0, 2.0, 4.0, 6.0, 8.0]));
        assert_eq!(ticks(100.0, 4), (100.0, vec![0.0, 50.0, 100.0]));
        let (top, t) = ticks(0.004, 5);
        assert!(top >= 0.004 && t.len() >= 2, "{top} {t:?}");
        assert_eq!(ticks(0.0, 4), (1.0, vec![0.0, 0.5, 1.0]));
        assert_eq!(ticks(f64::NAN, 4).0, 1.0);
        assert_eq!(ticks(-3.0, 4).0, 1.0);
        let (top, t) = ticks(3.0e9, 4);
        assert_eq!(top, 3.0e9);
        assert_eq!(t.len(), 4);
    }

    #[test]
    fn byte_ticks_are_round_in_their_unit() {
        let mib = 1024.0 * 1024.0;
        assert_eq!(
            byte_ticks(3.0 * mib, 4),
            (3.0 * mib, vec![0.0, mib, 2.0 * mib, 3.0 * mib])
        );
        assert_eq!(byte_ticks(0.0, 4).0, 1.0);
    }

    #[test]
    fn a_scale_maps_clamps_and_survives_an_empty_domain() {
        let s = Scale::new((0.0, 10.0), (100.0, 200.0));
        assert_eq!(s.at(5.0), 150.0);
        assert_eq!(s.at(-1.0), 100.0);
        assert_eq!(s.at(99.0), 200.0);
        // Inverted range, as a y axis is drawn.
        assert_eq!(Scale::new((0.0, 4.0), (80.0, 0.0)).at(1.0), 60.0);
        let flat = Scale::new((3.0, 3.0), (10.0, 20.0));
        assert_eq!(flat.at(3.0), 10.0);
        assert_eq!(s.at(f64::NAN), 100.0);
    }

    #[test]
    fn units() {
        assert_eq!(bytes(512.0), "512 B");
        assert_eq!(bytes(1536.0), "1.5 KiB");
        assert_eq!(bytes(300.0 * 1024.0 * 1024.0), "300 MiB");
        assert_eq!(secs(0.25), "250 ms");
        assert_eq!(secs(12.34), "12.3 s");
        assert_eq!(secs(245.0), "4m 05s");
        assert_eq!(secs(3720.0), "1h 02m");
        assert_eq!(secs(f64::NAN), "–");
        assert_eq!(tick_secs(2.5), "2.5s");
        assert_eq!(tick_secs(120.0), "2m");
        assert_eq!(tick_secs(0.0), "0s");
        assert_eq!(epoch(Some("1970-01-01T00:00:01.500Z")), Some(1.5));
        assert_eq!(epoch(Some("")), None);
        assert_eq!(epoch(None), None);
    }
}
