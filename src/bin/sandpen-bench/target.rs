//! A figure's target, written once: it renders itself for the page and judges a measurement.

/// `≤ limit unit` or `≥ limit unit`, e.g. "≤ 1.5x", "≥ 12x", "≤ 30 MiB", "≤ 0.5 s".
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Bound {
    AtMost(f64, &'static str),
    AtLeast(f64, &'static str),
}

impl Bound {
    pub fn render(&self) -> String {
        let (sign, limit, unit) = match *self {
            Self::AtMost(l, u) => ("≤", l, u),
            Self::AtLeast(l, u) => ("≥", l, u),
        };
        let space = if unit == "x" || unit == "%" { "" } else { " " };
        format!("{sign} {limit}{space}{unit}")
    }

    pub fn holds(&self, value: f64) -> bool {
        match *self {
            Self::AtMost(l, _) => value <= l,
            Self::AtLeast(l, _) => value >= l,
        }
    }
}

/// Every bound of a figure with the value measured for it.
#[derive(Debug, Clone, Default)]
pub struct Target {
    pub bounds: Vec<(Bound, f64)>,
}

impl Target {
    pub fn none() -> Self {
        Self::default()
    }

    pub fn of(bound: Bound, measured: f64) -> Self {
        Self {
            bounds: vec![(bound, measured)],
        }
    }

    pub fn and(mut self, bound: Bound, measured: f64) -> Self {
        self.bounds.push((bound, measured));
        self
    }

    pub fn render(&self) -> String {
        let parts: Vec<String> = self.bounds.iter().map(|(b, _)| b.render()).collect();
        parts.join(", ")
    }

    /// None when there is nothing to judge.
    pub fn met(&self) -> Option<bool> {
        (!self.bounds.is_empty()).then(|| self.bounds.iter().all(|(b, v)| !v.is_nan() && b.holds(*v)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_target_renders_and_judges_from_one_definition() {
        let t = Target::of(Bound::AtMost(1.5, "x"), 1.06);
        assert_eq!((t.render(), t.met()), ("≤ 1.5x".to_string(), Some(true)));
        let t = Target::of(Bound::AtMost(30.0, "MiB"), 13.1).and(Bound::AtMost(5.0, "%"), 6.0);
        assert_eq!((t.render(), t.met()), ("≤ 30 MiB, ≤ 5%".to_string(), Some(false)));
        assert_eq!(Target::of(Bound::AtLeast(12.0, "x"), f64::NAN).met(), Some(false));
        assert_eq!(Target::none().met(), None);
    }
}
