//! Choosing tokens: temperature and nucleus (top-p) sampling from a seeded
//! generator, greedy at temperature 0.

use crate::rng::SplitMix64;

/// Picks the next token from logits.
pub trait TokenChooser {
    /// The token, and its log-probability under the policy's distribution.
    fn choose(&mut self, logits: &[f32]) -> (u32, f32);
}

/// `log softmax(logits / t)`.
pub fn log_softmax(logits: &[f32], t: f64) -> Vec<f64> {
    let t = if t > 0.0 { t } else { 1.0 };
    let m = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
    let lse = logits
        .iter()
        .map(|&x| ((x as f64 - m) / t).exp())
        .sum::<f64>()
        .ln();
    logits.iter().map(|&x| (x as f64 - m) / t - lse).collect()
}

/// Temperature and nucleus sampling from a seeded generator; greedy when
/// the temperature is 0 (log-probabilities then at temperature 1).
pub struct Sampler {
    /// Temperature (0: greedy).
    pub temperature: f64,
    /// Nucleus mass.
    pub top_p: f64,
    /// The generator.
    pub rng: SplitMix64,
}

impl TokenChooser for Sampler {
    fn choose(&mut self, logits: &[f32]) -> (u32, f32) {
        let lp = log_softmax(logits, self.temperature);
        if self.temperature <= 0.0 {
            let (i, v) = lp
                .iter()
                .enumerate()
                .fold(
                    (0, f64::NEG_INFINITY),
                    |a, (i, &v)| if v > a.1 { (i, v) } else { a },
                );
            return (i as u32, v as f32);
        }
        let mut order: Vec<usize> = (0..lp.len()).collect();
        order.sort_by(|&a, &b| lp[b].total_cmp(&lp[a]));
        let mut keep = Vec::new();
        let mut mass = 0.0;
        for &i in &order {
            keep.push(i);
            mass += lp[i].exp();
            if mass >= self.top_p {
                break;
            }
        }
        let mut u = self.rng.f64() * mass;
        for &i in &keep {
            u -= lp[i].exp();
            if u <= 0.0 {
                return (i as u32, lp[i] as f32);
            }
        }
        let last = *keep.last().unwrap_or(&0);
        (last as u32, lp[last] as f32)
    }
}
