//! Mean and 95 % confidence interval of a metric over a cell's seeds (Student's t, since a
//! sweep has few seeds per cell).

/// Two-sided 97.5 % quantiles of Student's t for 1 to 30 degrees of freedom.
const T_975: [f64; 30] = [
    12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160,
    2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056,
    2.052, 2.048, 2.045, 2.042,
];

/// The 97.5 % quantile of Student's t with `df` degrees of freedom (`df >= 1`); beyond 30,
/// interpolated between the tabled 40, 60 and 120, then the normal's 1.960.
pub fn t_975(df: usize) -> f64 {
    match df {
        0 => f64::NAN,
        1..=30 => T_975[df - 1],
        _ => {
            let points = [(30.0, 2.042), (40.0, 2.021), (60.0, 2.000), (120.0, 1.980)];
            let df = df as f64;
            for pair in points.windows(2) {
                let ((x0, y0), (x1, y1)) = (pair[0], pair[1]);
                if df <= x1 {
                    return y0 + (y1 - y0) * (df - x0) / (x1 - x0);
                }
            }
            1.960
        }
    }
}

/// Mean of a sample and its 95 % confidence interval.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Estimate {
    pub n: usize,
    pub mean: f64,
    /// `None` with fewer than two values.
    pub ci95: Option<(f64, f64)>,
}

/// The values a summary metric can take (`docs/scenario-format.md` §4.3), which bound its
/// confidence interval: shares (and scores) from 0 to 1, the creds balance any number,
/// every other (counts, bytes, times) 0 or more.
pub fn domain(metric: &str) -> (f64, f64) {
    if metric.ends_with("_ratio")
        || metric.starts_with("availability_")
        || metric.starts_with("reputation_")
    {
        (0.0, 1.0)
    } else if metric == "creds_balance_per_peer" {
        (f64::NEG_INFINITY, f64::INFINITY)
    } else {
        (0.0, f64::INFINITY)
    }
}

/// `estimate`'s interval, cut to `(low, high)`: a share's interval never leaves 0 to 1.
pub fn clipped(e: Estimate, (low, high): (f64, f64)) -> Estimate {
    Estimate {
        ci95: e.ci95.map(|(l, h)| (l.max(low), h.min(high))),
        ..e
    }
}

/// The estimate of `values`' mean; `None` if there are none.
pub fn estimate(values: &[f64]) -> Option<Estimate> {
    let n = values.len();
    if n == 0 {
        return None;
    }
    let mean = values.iter().sum::<f64>() / n as f64;
    let ci95 = (n >= 2).then(|| {
        let variance = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1) as f64;
        let half = t_975(n - 1) * (variance / n as f64).sqrt();
        (mean - half, mean + half)
    });
    Some(Estimate { n, mean, ci95 })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn interval_of_a_known_sample() {
        // 2, 4, 6: mean 4, s = 2, half-width t(2) * 2 / sqrt(3) = 4.303 * 1.1547 = 4.9687.
        let e = estimate(&[2.0, 4.0, 6.0]).unwrap();
        assert_eq!(e.n, 3);
        assert!((e.mean - 4.0).abs() < 1e-12);
        let (low, high) = e.ci95.unwrap();
        assert!((high - 4.0 - 4.9687).abs() < 1e-3, "{high}");
        assert!((4.0 - low - 4.9687).abs() < 1e-3, "{low}");
        assert_eq!(estimate(&[5.0]).unwrap().ci95, None);
        assert_eq!(estimate(&[]), None);
        // Identical values: no spread.
        assert_eq!(estimate(&[1.0, 1.0]).unwrap().ci95, Some((1.0, 1.0)));
    }

    #[test]
    fn intervals_stay_within_what_the_metric_can_be() {
        // 0.9 and 1.0: mean 0.95, half-width 12.706 * 0.0707 / 1.414 = 0.635.
        let e = estimate(&[0.9, 1.0]).unwrap();
        let (low, high) = clipped(e, domain("fetch_success_ratio")).ci95.unwrap();
        assert!((low - (0.95 - 0.6353)).abs() < 1e-3, "{low}");
        assert_eq!(high, 1.0);
        assert_eq!(domain("availability_min"), (0.0, 1.0));
        assert_eq!(domain("reputation_mean_final"), (0.0, 1.0));
        assert_eq!(domain("bytes_sent"), (0.0, f64::INFINITY));
        let e = estimate(&[-5.0, 5.0]).unwrap();
        assert_eq!(clipped(e, domain("creds_balance_per_peer")), e);
        assert_eq!(clipped(e, domain("publishes")).ci95.unwrap().0, 0.0);
    }

    #[test]
    fn t_quantiles_fall_towards_the_normal() {
        assert_eq!(t_975(1), 12.706);
        assert_eq!(t_975(30), 2.042);
        assert!((t_975(50) - 2.0105).abs() < 1e-9);
        assert_eq!(t_975(1000), 1.960);
    }
}
