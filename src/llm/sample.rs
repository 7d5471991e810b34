//! Choosing the next token from logits: repetition penalty, temperature, top-k, top-p, with a
//! seeded generator so that a request with a seed is reproducible.

use serde::{Deserialize, Serialize};

/// How to pick tokens; the defaults decode greedily (what grounded answers use).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SamplingParams {
    /// 0 picks the most likely token.
    pub temperature: f32,
    /// Keep only the `k` most likely tokens (0: all).
    pub top_k: usize,
    /// Keep the most likely tokens whose probabilities sum to `p` (1: all).
    pub top_p: f32,
    /// Divides positive (multiplies negative) logits of recently seen tokens (1: off).
    pub repeat_penalty: f32,
    /// How many recent tokens the penalty looks at.
    pub repeat_last_n: usize,
    pub seed: u64,
}

impl Default for SamplingParams {
    fn default() -> Self {
        SamplingParams {
            temperature: 0.0,
            top_k: 40,
            top_p: 0.95,
            repeat_penalty: 1.0,
            repeat_last_n: 64,
            seed: 0x616e_6a65_6f6e,
        }
    }
}

/// A token picker with its own random state.
pub struct Sampler {
    params: SamplingParams,
    state: u64,
}

impl Sampler {
    pub fn new(params: SamplingParams) -> Self {
        let state = params.seed;
        Sampler { params, state }
    }

    /// splitmix64: small, fast and the same on every platform.
    fn next_f32(&mut self) -> f32 {
        self.state = self.state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^= z >> 31;
        (z >> 40) as f32 / (1u64 << 24) as f32
    }

    /// The next token given `logits` (modified in place) and the tokens seen so far.
    pub fn sample(&mut self, logits: &mut [f32], history: &[u32]) -> u32 {
        let p = &self.params;
        if p.repeat_penalty != 1.0 {
            let recent = &history[history.len().saturating_sub(p.repeat_last_n)..];
            let mut seen = std::collections::HashSet::new();
            for &id in recent {
                if let Some(l) = logits.get_mut(id as usize) {
                    if seen.insert(id) {
                        *l = if *l > 0.0 {
                            *l / p.repeat_penalty
                        } else {
                            *l * p.repeat_penalty
                        };
                    }
                }
            }
        }
        if p.temperature <= 0.0 {
            return argmax(logits);
        }
        let mut candidates: Vec<(u32, f32)> = if p.top_k > 0 && p.top_k < logits.len() {
            top_k(logits, p.top_k)
        } else {
            logits
                .iter()
                .enumerate()
                .map(|(i, &l)| (i as u32, l))
                .collect()
        };
        candidates.sort_by(|a, b| b.1.total_cmp(&a.1));
        let max = candidates[0].1;
        let mut total = 0.0;
        for c in candidates.iter_mut() {
            c.1 = ((c.1 - max) / p.temperature).exp();
            total += c.1;
        }
        let mut kept = 0;
        let mut mass = 0.0;
        for c in &candidates {
            kept += 1;
            mass += c.1 / total;
            if mass >= p.top_p {
                break;
            }
        }
        candidates.truncate(kept);
        let kept_total: f32 = candidates.iter().map(|c| c.1).sum();
        let mut r = self.next_f32() * kept_total;
        for &(id, w) in &candidates {
            if r < w {
                return id;
            }
            r -= w;
        }
        candidates[kept - 1].0
    }
}

pub fn argmax(logits: &[f32]) -> u32 {
    let mut best = 0;
    for (i, &l) in logits.iter().enumerate() {
        if l > logits[best] {
            best = i;
        }
    }
    best as u32
}

/// The `k` largest logits, unordered, by one pass with a small min-heap.
fn top_k(logits: &[f32], k: usize) -> Vec<(u32, f32)> {
    use std::cmp::Reverse;
    use std::collections::BinaryHeap;
    #[derive(PartialEq)]
    struct Entry(f32, u32);
    impl Eq for Entry {}
    impl PartialOrd for Entry {
        fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
            Some(self.cmp(o))
        }
    }
    impl Ord for Entry {
        fn cmp(&self, o: &Self) -> std::cmp::Ordering {
            self.0.total_cmp(&o.0)
        }
    }
    let mut heap: BinaryHeap<Reverse<Entry>> = BinaryHeap::with_capacity(k + 1);
    for (i, &l) in logits.iter().enumerate() {
        if heap.len() < k {
            heap.push(Reverse(Entry(l, i as u32)));
        } else if heap.peek().is_some_and(|m| l > m.0 .0) {
            heap.pop();
            heap.push(Reverse(Entry(l, i as u32)));
        }
    }
    heap.into_iter()
        .map(|Reverse(Entry(l, i))| (i, l))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn greedy_and_seeded_sampling() {
        let mut logits = vec![0.1, 2.0, -1.0, 1.9];
        let mut s = Sampler::new(SamplingParams::default());
        assert_eq!(s.sample(&mut logits.clone(), &[]), 1);
        // the penalty turns the choice to the runner-up
        let mut p = SamplingParams {
            repeat_penalty: 1.5,
            ..SamplingParams::default()
        };
        assert_eq!(Sampler::new(p.clone()).sample(&mut logits.clone(), &[1]), 3);
        p.temperature = 1.0;
        p.repeat_penalty = 1.0;
        p.top_k = 2;
        let draws: Vec<u32> = {
            let mut s = Sampler::new(p.clone());
            (0..200)
                .map(|_| s.sample(&mut logits.clone(), &[]))
                .collect()
        };
        let again: Vec<u32> = {
            let mut s = Sampler::new(p.clone());
            (0..200)
                .map(|_| s.sample(&mut logits.clone(), &[]))
                .collect()
        };
        assert_eq!(draws, again, "same seed, same draws");
        assert!(
            draws.iter().all(|&d| d == 1 || d == 3),
            "top-k 2 keeps two tokens"
        );
        let ones = draws.iter().filter(|&&d| d == 1).count();
        // p(1) = e^2 / (e^2 + e^1.9) ≈ 0.525
        assert!((80..130).contains(&ones), "{ones} of 200");
        p.top_p = 0.5;
        let mut s = Sampler::new(p);
        assert!(
            (0..50).all(|_| s.sample(&mut logits, &[]) == 1),
            "top-p 0.5 keeps the best"
        );
    }
}
