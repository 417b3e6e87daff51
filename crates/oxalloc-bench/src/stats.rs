//! Pure statistics: median of runs, ratio to the best peer on a row, geometric mean.
//!
//! "Best peer": the best value among the allocators that are not the one under study
//! ([`SUBJECT`], oxalloc), so oxalloc's ratio can fall below 1.00 when it is ahead. When no
//! peer has a value on the row, the best of all allocators is used instead.

/// The allocator under study; every other allocator is a peer.
pub const SUBJECT: &str = "oxalloc";

/// Median of `xs` (mean of the middle two for an even count); `None` when empty.
pub fn median(xs: &[f64]) -> Option<f64> {
    let mut v: Vec<f64> = xs.iter().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    Some(if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    })
}

/// Geometric mean of positive values; `None` when there are none.
pub fn geomean(xs: &[f64]) -> Option<f64> {
    let v: Vec<f64> = xs
        .iter()
        .copied()
        .filter(|x| x.is_finite() && *x > 0.0)
        .collect();
    if v.is_empty() {
        return None;
    }
    Some((v.iter().map(|x| x.ln()).sum::<f64>() / v.len() as f64).exp())
}

/// Which direction is better for a metric.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Better {
    /// Time, memory: smaller is better.
    Lower,
    /// Throughput: larger is better.
    Higher,
}

/// The best peer value on a row of `(allocator, value)` pairs (see the module docs).
pub fn best_peer(row: &[(&str, Option<f64>)], better: Better) -> Option<f64> {
    let pick = |peers_only: bool| {
        row.iter()
            .filter(|(a, _)| !peers_only || *a != SUBJECT)
            .filter_map(|(_, v)| *v)
            .filter(|v| v.is_finite() && *v > 0.0)
            .reduce(|x, y| match better {
                Better::Lower => x.min(y),
                Better::Higher => x.max(y),
            })
    };
    pick(true).or_else(|| pick(false))
}

/// `value / best`: 1.00 is the best peer; above 1 is slower or larger for [`Better::Lower`]
/// metrics, above 1 is faster for [`Better::Higher`] ones.
pub fn ratio(value: Option<f64>, best: Option<f64>) -> Option<f64> {
    match (value, best) {
        (Some(v), Some(b)) if b > 0.0 && v.is_finite() => Some(v / b),
        _ => None,
    }
}

/// Ratios of every entry of a row to its best peer, in the row's order.
pub fn row_ratios(row: &[(&str, Option<f64>)], better: Better) -> Vec<Option<f64>> {
    let best = best_peer(row, better);
    row.iter().map(|(_, v)| ratio(*v, best)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_odd_even_empty() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), Some(2.5));
        assert_eq!(median(&[]), None);
        assert_eq!(median(&[f64::NAN, 5.0]), Some(5.0));
    }

    #[test]
    fn geomean_of_ratios() {
        let g = geomean(&[1.0, 4.0]).unwrap();
        assert!((g - 2.0).abs() < 1e-12);
        assert!((geomean(&[2.0, 2.0, 2.0]).unwrap() - 2.0).abs() < 1e-12);
        assert_eq!(geomean(&[]), None);
        assert_eq!(geomean(&[0.0, -1.0]), None);
    }

    #[test]
    fn ratios_are_to_the_best_peer_not_the_subject() {
        let row = [
            ("oxalloc", Some(0.5)),
            ("glibc", Some(2.0)),
            ("mimalloc", Some(1.0)),
            ("jemalloc", None),
        ];
        let r = row_ratios(&row, Better::Lower);
        assert_eq!(r, vec![Some(0.5), Some(2.0), Some(1.0), None]);
        let r = row_ratios(&row, Better::Higher);
        assert_eq!(r, vec![Some(0.25), Some(1.0), Some(0.5), None]);
    }

    #[test]
    fn subject_alone_is_its_own_baseline() {
        let row = [("oxalloc", Some(3.0)), ("glibc", None)];
        assert_eq!(row_ratios(&row, Better::Lower), vec![Some(1.0), None]);
    }
}
