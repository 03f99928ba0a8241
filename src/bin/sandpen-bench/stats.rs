//! Figures from repeated runs: median and spread.

#[derive(Debug, Clone)]
pub struct Sample {
    pub values: Vec<f64>,
}

impl Sample {
    pub fn new(mut values: Vec<f64>) -> Self {
        values.sort_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
        Self { values }
    }

    pub fn median(&self) -> f64 {
        let v = &self.values;
        if v.is_empty() {
            return f64::NAN;
        }
        let m = v.len() / 2;
        if v.len().is_multiple_of(2) {
            (v[m - 1] + v[m]) / 2.0
        } else {
            v[m]
        }
    }

    pub fn min(&self) -> f64 {
        self.values.first().copied().unwrap_or(f64::NAN)
    }

    pub fn max(&self) -> f64 {
        self.values.last().copied().unwrap_or(f64::NAN)
    }

    /// "0.245 (0.231–0.262, n=20)" with the given number of decimals.
    pub fn show(&self, decimals: usize) -> String {
        format!(
            "{:.d$} ({:.d$}–{:.d$}, n={})",
            self.median(),
            self.min(),
            self.max(),
            self.values.len(),
            d = decimals
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_and_spread() {
        let s = Sample::new(vec![3.0, 1.0, 2.0, 10.0]);
        assert_eq!(s.median(), 2.5);
        assert_eq!((s.min(), s.max()), (1.0, 10.0));
        assert_eq!(Sample::new(vec![5.0, 1.0, 3.0]).median(), 3.0);
    }
}
