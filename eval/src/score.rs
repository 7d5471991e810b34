//! Per-document metrics from continuation log-likelihoods, and their aggregation, computed
//! as lm-evaluation-harness computes them (`api/task.py`, `api/metrics.py`, TruthfulQA's `utils.py`).
//!
//! Ties go to the first option, like `numpy.argmax`. Standard errors are the harness's
//! `mean_stderr`: sample standard deviation (n − 1) over √n; the 95% interval is ±1.96 of it.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

/// A per-document metric whose task mean is reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Metric {
    /// 1 when the option with the highest summed log-likelihood is correct.
    Acc,
    /// As `acc`, with each log-likelihood divided by its option's length in characters —
    /// the harness's `acc_norm` (`len(choice)` on a Python `str`).
    AccNorm,
    /// As `acc`, divided by the option's length in UTF-8 bytes — the harness's `acc_bytes`.
    AccBytes,
    /// TruthfulQA MC1: `acc` on the answer set with one true option.
    Mc1,
    /// TruthfulQA MC2: probability mass of the true options among all options.
    Mc2,
}

impl Metric {
    pub const ALL: [Metric; 5] = [
        Metric::Acc,
        Metric::AccNorm,
        Metric::AccBytes,
        Metric::Mc1,
        Metric::Mc2,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Metric::Acc => "acc",
            Metric::AccNorm => "acc_norm",
            Metric::AccBytes => "acc_bytes",
            Metric::Mc1 => "mc1",
            Metric::Mc2 => "mc2",
        }
    }

    /// The answer set a metric reads unless the task file says otherwise.
    pub fn default_answer_set(self) -> &'static str {
        match self {
            Metric::Mc1 => "mc1",
            Metric::Mc2 => "mc2",
            _ => crate::dataset::MAIN,
        }
    }

    /// The metric's value for one document: `logprobs[i]` scores `options[i]`, and
    /// `correct[i]` says whether it is a right answer.
    pub fn score(self, logprobs: &[f64], options: &[&str], correct: &[bool]) -> f64 {
        let hit = |pred: Option<usize>| match pred {
            Some(p) if correct.get(p) == Some(&true) => 1.0,
            _ => 0.0,
        };
        match self {
            Metric::Acc | Metric::Mc1 => hit(argmax(logprobs)),
            Metric::AccNorm => hit(argmax(&normalized(logprobs, options, |o| {
                o.chars().count()
            }))),
            Metric::AccBytes => hit(argmax(&normalized(logprobs, options, str::len))),
            Metric::Mc2 => mc2(logprobs, correct),
        }
    }
}

impl fmt::Display for Metric {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Metric {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Metric::ALL
            .into_iter()
            .find(|m| m.name() == s)
            .ok_or_else(|| {
                format!("unknown metric {s:?} (known: acc, acc_norm, acc_bytes, mc1, mc2)")
            })
    }
}

/// Index of the first largest value; `None` for an empty slice.
pub fn argmax(values: &[f64]) -> Option<usize> {
    let mut best: Option<usize> = None;
    for (i, v) in values.iter().enumerate() {
        if best.is_none_or(|b| *v > values[b]) {
            best = Some(i);
        }
    }
    best
}

/// Log-likelihood per unit of length. An empty option divides by zero as numpy would:
/// −∞ for a negative log-likelihood, so it is never preferred.
fn normalized(logprobs: &[f64], options: &[&str], len: impl Fn(&str) -> usize) -> Vec<f64> {
    logprobs
        .iter()
        .zip(options)
        .map(|(lp, o)| lp / len(o) as f64)
        .collect()
}

/// `Σ p(true) / Σ p(all)` with `p = exp(loglik)`. The largest log-likelihood is subtracted
/// before exponentiating: the ratio is unchanged, but long options no longer underflow to 0/0.
pub fn mc2(logprobs: &[f64], correct: &[bool]) -> f64 {
    let max = logprobs.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let (mut p_true, mut p_all) = (0.0, 0.0);
    for (lp, c) in logprobs.iter().zip(correct) {
        let p = (lp - max).exp();
        p_all += p;
        if *c {
            p_true += p;
        }
    }
    p_true / p_all
}

/// A metric's mean over documents with its uncertainty.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Summary {
    pub mean: f64,
    /// `None` with fewer than two documents, where the harness reports `N/A`.
    pub stderr: Option<f64>,
    pub n: usize,
}

impl Summary {
    pub fn of(values: &[f64]) -> Option<Summary> {
        if values.is_empty() {
            return None;
        }
        let n = values.len();
        let mean = values.iter().sum::<f64>() / n as f64;
        let stderr = (n > 1).then(|| {
            let var = values.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1) as f64;
            var.sqrt() / (n as f64).sqrt()
        });
        Some(Summary { mean, stderr, n })
    }

    /// A ratio of sums, `Σ num / Σ den`, over items that each contribute a numerator and a
    /// denominator (claims per answer, citations per answer). Its standard error is the
    /// ratio estimator's (delta method, items as clusters): √(Σ (numᵢ − R·denᵢ)² / (n(n−1))) / mean(den).
    /// `None` without items; with a zero denominator sum the ratio is 0 (nothing counted,
    /// nothing wrong) without a standard error.
    pub fn ratio(num: &[f64], den: &[f64]) -> Option<Summary> {
        let n = num.len().min(den.len());
        if n == 0 {
            return None;
        }
        let (sum_num, sum_den): (f64, f64) = (num[..n].iter().sum(), den[..n].iter().sum());
        if sum_den == 0.0 {
            return Some(Summary {
                mean: 0.0,
                stderr: None,
                n,
            });
        }
        let r = sum_num / sum_den;
        let stderr = (n > 1).then(|| {
            let sq: f64 = num.iter().zip(den).map(|(a, b)| (a - r * b).powi(2)).sum();
            (sq / (n * (n - 1)) as f64).sqrt() / (sum_den / n as f64)
        });
        Some(Summary { mean: r, stderr, n })
    }

    /// The normal-approximation 95% interval, mean ± 1.96 · stderr, cut to [0, 1]: every
    /// figure the suite summarises is a share or a mean of values in [0, 1] (accuracy, mc2,
    /// rates), and an interval reaching below 0 or above 1 would claim impossible values.
    pub fn ci95(&self) -> Option<(f64, f64)> {
        self.stderr.map(|se| {
            (
                (self.mean - 1.96 * se).clamp(0.0, 1.0),
                (self.mean + 1.96 * se).clamp(0.0, 1.0),
            )
        })
    }

    /// Puts `name`, `name_stderr` and `name_ci95` into a task's entry of `results.json`
    /// (the last two `null` when there is no standard error), as the harness reports them.
    pub fn insert_into(&self, results: &mut BTreeMap<String, Value>, name: &str) {
        results.insert(name.to_string(), Value::from(self.mean));
        results.insert(
            format!("{name}_stderr"),
            self.stderr.map_or(Value::Null, Value::from),
        );
        results.insert(
            format!("{name}_ci95"),
            self.ci95()
                .map_or(Value::Null, |(lo, hi)| Value::from(vec![lo, hi])),
        );
    }
}

/// The value at quantile `q` (0..=1) of ascending `sorted` values, by the nearest rank
/// `round((n − 1) · q)`; `None` for no values.
pub fn percentile(sorted: &[f64], q: f64) -> Option<f64> {
    let last = sorted.len().checked_sub(1)?;
    let i = ((last as f64) * q.clamp(0.0, 1.0)).round() as usize;
    sorted.get(i.min(last)).copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-12
    }

    #[test]
    fn acc_takes_the_first_best() {
        let correct = [false, true, false];
        let opts = ["a", "b", "c"];
        assert_eq!(Metric::Acc.score(&[-3.0, -1.0, -2.0], &opts, &correct), 1.0);
        assert_eq!(Metric::Acc.score(&[-1.0, -1.0, -2.0], &opts, &correct), 0.0);
        assert_eq!(argmax(&[-1.0, -1.0]), Some(0));
        assert_eq!(argmax(&[]), None);
    }

    #[test]
    fn acc_norm_divides_by_characters_and_acc_bytes_by_bytes() {
        // "예" is 1 character but 3 bytes; "yes" is 3 of both.
        // chars: -2/1 = -2.0 vs -3/3 = -1.0 → "yes"; bytes: -2/3 ≈ -0.67 vs -1.0 → "예".
        let lls = [-2.0, -3.0];
        let opts = ["예", "yes"];
        let first = [true, false];
        assert_eq!(Metric::AccNorm.score(&lls, &opts, &first), 0.0);
        assert_eq!(Metric::AccBytes.score(&lls, &opts, &first), 1.0);
        assert_eq!(Metric::Acc.score(&lls, &opts, &first), 1.0);
    }

    #[test]
    fn empty_option_is_never_preferred_when_normalizing() {
        let lls = [-0.5, -30.0];
        assert_eq!(
            Metric::AccNorm.score(&lls, &["", "abc"], &[false, true]),
            1.0
        );
    }

    #[test]
    fn mc2_by_hand() {
        // p = e^-1, e^-2, e^-3; true = first two.
        let lls = [-1.0, -2.0, -3.0];
        let p: Vec<f64> = lls.iter().map(|x: &f64| x.exp()).collect();
        let want = (p[0] + p[1]) / (p[0] + p[1] + p[2]);
        assert!(close(mc2(&lls, &[true, true, false]), want));
        assert!(close(want, 0.909_969_426_829_619_6));
        // Label order does not matter, and very long options do not underflow.
        assert!(close(mc2(&[-3.0, -1.0, -2.0], &[false, true, true]), want));
        assert!(close(
            mc2(&[-1001.0, -1002.0, -1003.0], &[true, true, false]),
            want
        ));
    }

    #[test]
    fn stderr_is_sample_sd_over_sqrt_n() {
        // values 1,0,1,1: mean .75, sample var = (3·.0625 + .5625)/3 = .25, se = .5/2 = .25
        let s = Summary::of(&[1.0, 0.0, 1.0, 1.0]).unwrap();
        assert!(close(s.mean, 0.75));
        assert!(close(s.stderr.unwrap(), 0.25));
        let (lo, hi) = s.ci95().unwrap();
        assert!(close(lo, 0.75 - 0.49) && close(hi, 1.0), "cut at 1");
        assert_eq!(Summary::of(&[1.0]).unwrap().stderr, None);
        assert_eq!(Summary::of(&[]), None);
    }

    #[test]
    fn ratio_stderr_is_the_cluster_delta_method() {
        // Items (num, den): (1,2) (0,1) (1,1): R = 2/4 = 0.5; residuals 0, −0.5, 0.5;
        // Σ² = 0.5; var = 0.5 / (3·2) / (4/3)² = 0.046875; se ≈ 0.2165.
        let s = Summary::ratio(&[1.0, 0.0, 1.0], &[2.0, 1.0, 1.0]).unwrap();
        assert!(close(s.mean, 0.5));
        assert!(close(s.stderr.unwrap(), 0.046_875_f64.sqrt()));
        assert_eq!(s.n, 3);
        // Equal denominators: the plain mean's stderr.
        let r = Summary::ratio(&[1.0, 0.0, 1.0, 1.0], &[1.0; 4]).unwrap();
        let m = Summary::of(&[1.0, 0.0, 1.0, 1.0]).unwrap();
        assert!(close(r.mean, m.mean) && close(r.stderr.unwrap(), m.stderr.unwrap()));
        let zero = Summary::ratio(&[0.0, 0.0], &[0.0, 0.0]).unwrap();
        assert_eq!((zero.mean, zero.stderr), (0.0, None));
        assert_eq!(Summary::ratio(&[], &[]), None);
    }

    #[test]
    fn summaries_go_into_results_with_stderr_and_interval() {
        let mut map = BTreeMap::new();
        Summary::of(&[1.0, 0.0, 1.0, 1.0])
            .unwrap()
            .insert_into(&mut map, "acc");
        assert_eq!(map["acc"], Value::from(0.75));
        assert_eq!(map["acc_stderr"], Value::from(0.25));
        assert_eq!(map["acc_ci95"][0], Value::from(0.75 - 0.49));
        assert_eq!(map["acc_ci95"][1], Value::from(1.0));
        Summary::of(&[1.0]).unwrap().insert_into(&mut map, "one");
        assert_eq!(map["one_stderr"], Value::Null);
        assert_eq!(map["one_ci95"], Value::Null);
    }

    #[test]
    fn percentiles_take_the_nearest_rank() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&v, 0.5), Some(51.0));
        assert_eq!(percentile(&v, 0.95), Some(95.0));
        assert_eq!(percentile(&v, 1.0), Some(100.0));
        assert_eq!(percentile(&[7.0], 0.95), Some(7.0));
        assert_eq!(percentile(&[], 0.5), None);
    }

    #[test]
    fn metric_names_round_trip() {
        for m in Metric::ALL {
            assert_eq!(m.name().parse::<Metric>(), Ok(m));
        }
        assert!("f1".parse::<Metric>().is_err());
    }
}
