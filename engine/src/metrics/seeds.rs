//! Several seeds of one arm: mean and spread, for the experiments' tables
//! and the studio's Compare bands.
//!
//! A run of arm `A` with seed `s` is named `A-s<s>` (`virl experiment
//! --seeds`); [`arm_of`] splits the name back.

use super::IterationMetrics;

/// Mean and sample standard deviation (`n − 1` divisor; 0 for one value);
/// `None` for no values. Non-finite values are skipped.
pub fn mean_std(xs: &[f64]) -> Option<(f64, f64)> {
    let v: Vec<f64> = xs.iter().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return None;
    }
    let n = v.len() as f64;
    let mean = v.iter().sum::<f64>() / n;
    let std = if v.len() < 2 {
        0.0
    } else {
        (v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0)).sqrt()
    };
    Some((mean, std))
}

/// The arm and seed of a run named `<arm>-s<seed>`; a name without that
/// suffix is an arm of its own, with no seed.
pub fn arm_of(name: &str) -> (&str, Option<u64>) {
    if let Some((arm, seed)) = name.rsplit_once("-s")
        && !arm.is_empty()
        && let Ok(s) = seed.parse::<u64>()
    {
        return (arm, Some(s));
    }
    (name, None)
}

/// Per iteration present in every run: `[iteration, mean, std]` of
/// `f` across the runs (iterations where `f` is missing in a run are skipped).
pub fn band(
    runs: &[&[IterationMetrics]],
    f: impl Fn(&IterationMetrics) -> Option<f64>,
) -> Vec<[f64; 3]> {
    let Some(first) = runs.first() else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for m in first.iter() {
        let vals: Vec<f64> = runs
            .iter()
            .filter_map(|r| r.iter().find(|x| x.iteration == m.iteration).and_then(&f))
            .collect();
        if vals.len() == runs.len()
            && let Some((mean, std)) = mean_std(&vals)
        {
            out.push([m.iteration as f64, mean, std]);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mean_and_sample_std() {
        assert_eq!(mean_std(&[]), None);
        assert_eq!(mean_std(&[2.0]), Some((2.0, 0.0)));
        let (m, s) = mean_std(&[1.0, 2.0, 3.0]).expect("some");
        assert_eq!((m, s), (2.0, 1.0));
        assert_eq!(mean_std(&[1.0, f64::NAN, 3.0]), Some((2.0, 2f64.sqrt())));
    }

    #[test]
    fn arms_and_seeds_from_names() {
        assert_eq!(arm_of("virl-s2"), ("virl", Some(2)));
        assert_eq!(arm_of("h0-0.3-s10"), ("h0-0.3", Some(10)));
        assert_eq!(arm_of("outcome"), ("outcome", None));
        assert_eq!(arm_of("my-session"), ("my-session", None));
        assert_eq!(arm_of("-s1"), ("-s1", None));
    }

    #[test]
    fn band_over_common_iterations() {
        let m = |it: u64, a: f64| IterationMetrics {
            iteration: it,
            acc_ans: a,
            ..Default::default()
        };
        let a = vec![m(0, 0.1), m(1, 0.2), m(2, 0.3)];
        let b = vec![m(0, 0.3), m(1, 0.4)];
        let got = band(&[&a, &b], |x| Some(x.acc_ans));
        assert_eq!(got.len(), 2);
        assert_eq!(got[0][0], 0.0);
        assert!((got[0][1] - 0.2).abs() < 1e-12);
        assert!((got[1][2] - (0.02f64).sqrt()).abs() < 1e-12);
    }
}
