//! `ethnode monitor report`: the lag chart (PNG or SVG) and a summary table from the JSONL series.

use crate::round::{RoundResult, Verdict};
use plotters::prelude::*;
use plotters::style::{FontStyle, register_font};
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::Path;

/// Per node: share of rounds at each lag band, and the worst streak behind.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Summary {
    /// Node URL.
    pub node: String,
    /// Rounds with a lag figure.
    pub rounds: usize,
    /// Share at 0 blocks (or ahead).
    pub at_0: f64,
    /// Share at 1 block.
    pub at_1: f64,
    /// Share at 2-4 blocks.
    pub at_2_4: f64,
    /// Share at 5 or more.
    pub at_5_plus: f64,
    /// Rounds with no lag figure (node or references down).
    pub unknown: usize,
    /// Rounds in which the node and the references disagreed on a hash.
    pub forked: usize,
    /// Longest run of consecutive rounds behind (lag >= 1).
    pub worst_streak_rounds: usize,
    /// That run's length in seconds (first to last round of it).
    pub worst_streak_secs: u64,
    /// Largest lag seen.
    pub max_lag: i64,
}

/// Summaries per node from rounds at or after `since` (unix seconds).
pub fn summarize(rounds: &[RoundResult], since: u64) -> Vec<Summary> {
    let mut per: BTreeMap<String, Vec<(u64, Option<i64>, Verdict)>> = BTreeMap::new();
    for r in rounds.iter().filter(|r| r.ts >= since) {
        for n in &r.nodes {
            per.entry(n.url.clone())
                .or_default()
                .push((r.ts, n.lag, n.verdict));
        }
    }
    per.into_iter()
        .map(|(node, pts)| {
            let lags: Vec<i64> = pts.iter().filter_map(|p| p.1).collect();
            let share = |f: &dyn Fn(i64) -> bool| {
                if lags.is_empty() {
                    0.0
                } else {
                    lags.iter().filter(|l| f(**l)).count() as f64 / lags.len() as f64
                }
            };
            let (mut best, mut best_secs, mut cur, mut cur_start) = (0usize, 0u64, 0usize, 0u64);
            for (ts, lag, _) in &pts {
                if lag.is_some_and(|l| l >= 1) {
                    if cur == 0 {
                        cur_start = *ts;
                    }
                    cur += 1;
                    if cur > best {
                        best = cur;
                        best_secs = ts - cur_start;
                    }
                } else {
                    cur = 0;
                }
            }
            Summary {
                rounds: lags.len(),
                at_0: share(&|l| l <= 0),
                at_1: share(&|l| l == 1),
                at_2_4: share(&|l| (2..=4).contains(&l)),
                at_5_plus: share(&|l| l >= 5),
                unknown: pts.len() - lags.len(),
                forked: pts.iter().filter(|p| p.2 == Verdict::Forked).count(),
                worst_streak_rounds: best,
                worst_streak_secs: best_secs,
                max_lag: lags.iter().copied().max().unwrap_or(0),
                node,
            }
        })
        .collect()
}

const FONT: &[u8] = include_bytes!("../assets/DejaVuSansMono.ttf");

fn ensure_font() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // An embedded font: PNG text must not depend on the machine's fonts.
        let _ = register_font("sans-serif", FontStyle::Normal, FONT);
    });
}

/// Draws blocks behind per node over time, with the rounds where hashes disagreed marked, to `out`
/// (`.png` or `.svg`).
pub fn render_chart(rounds: &[RoundResult], since: u64, out: &Path) -> Result<(), String> {
    ensure_font();
    let png = match out.extension().and_then(|e| e.to_str()) {
        Some("png") => true,
        Some("svg") => false,
        _ => {
            return Err(format!(
                "{}: the chart is written as .png or .svg",
                out.display()
            ));
        }
    };
    let size = (1200, 600);
    if png {
        let root = BitMapBackend::new(out, size).into_drawing_area();
        draw(root, rounds, since)?;
    } else {
        let root = SVGBackend::new(out, size).into_drawing_area();
        draw(root, rounds, since)?;
    }
    Ok(())
}

fn draw<DB: DrawingBackend>(
    root: DrawingArea<DB, plotters::coord::Shift>,
    rounds: &[RoundResult],
    since: u64,
) -> Result<(), String>
where
    DB::ErrorType: 'static,
{
    let err = |e: DrawingAreaErrorKind<DB::ErrorType>| e.to_string();
    root.fill(&WHITE).map_err(err)?;
    let rounds: Vec<&RoundResult> = rounds.iter().filter(|r| r.ts >= since).collect();
    let (t0, t1) = match (rounds.first(), rounds.last()) {
        (Some(a), Some(b)) => (a.ts, b.ts.max(a.ts + 1)),
        _ => return Err("no rounds in the chosen period: nothing to chart".into()),
    };
    let mut series: BTreeMap<String, Vec<(f64, f64)>> = BTreeMap::new();
    let mut forks: Vec<(f64, f64)> = Vec::new();
    for r in &rounds {
        let x = (r.ts - t0) as f64 / 3600.0;
        for n in &r.nodes {
            if let Some(lag) = n.lag {
                series
                    .entry(n.url.clone())
                    .or_default()
                    .push((x, lag.max(0) as f64));
                if n.verdict == Verdict::Forked {
                    forks.push((x, lag.max(0) as f64));
                }
            }
        }
    }
    let ymax = series
        .values()
        .flat_map(|s| s.iter().map(|p| p.1))
        .fold(1.0f64, f64::max)
        + 1.0;
    let xmax = (t1 - t0) as f64 / 3600.0;
    let mut chart = ChartBuilder::on(&root)
        .caption("Blocks behind the references' median", ("sans-serif", 24))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(50)
        .build_cartesian_2d(0.0..xmax, 0.0..ymax)
        .map_err(err)?;
    chart
        .configure_mesh()
        .x_desc("hours since first round")
        .y_desc("blocks behind")
        .draw()
        .map_err(err)?;
    for (i, (node, pts)) in series.iter().enumerate() {
        let color = Palette99::pick(i).to_rgba();
        chart
            .draw_series(LineSeries::new(pts.iter().copied(), color.stroke_width(2)))
            .map_err(err)?
            .label(node.clone())
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
            });
    }
    if !forks.is_empty() {
        chart
            .draw_series(forks.iter().map(|p| Cross::new(*p, 6, RED.stroke_width(2))))
            .map_err(err)?
            .label("hash disagreement")
            .legend(|(x, y)| Cross::new((x + 10, y), 5, RED.stroke_width(2)));
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
        .map_err(err)?;
    root.present().map_err(err)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::round::NodeResult;

    fn round(ts: u64, lag: Option<i64>, verdict: Verdict) -> RoundResult {
        RoundResult {
            ts,
            reference_head: Some(100),
            references: vec![],
            nodes: vec![NodeResult {
                url: "http://n".into(),
                head: lag.map(|l| (100 - l) as u64),
                lag,
                head_age_secs: Some(3),
                hash_agrees: Some(verdict != Verdict::Forked),
                verdict,
                alarm: false,
                latency_ms: 1.0,
                error: None,
            }],
            duration_ms: 2.0,
        }
    }

    #[test]
    fn summary_bands_and_worst_streak() {
        let b = Verdict::Behind;
        let rounds = vec![
            round(0, Some(0), Verdict::AtHead),
            round(12, Some(1), b),
            round(24, Some(3), b),
            round(36, Some(6), b),
            round(48, Some(0), Verdict::AtHead),
            round(60, None, Verdict::Unreachable),
            round(72, Some(2), Verdict::Forked),
            round(84, Some(-1), Verdict::AtHead),
        ];
        let s = &summarize(&rounds, 0)[0];
        assert_eq!(s.rounds, 7);
        assert!((s.at_0 - 3.0 / 7.0).abs() < 1e-12);
        assert!((s.at_1 - 1.0 / 7.0).abs() < 1e-12);
        assert!((s.at_2_4 - 2.0 / 7.0).abs() < 1e-12);
        assert!((s.at_5_plus - 1.0 / 7.0).abs() < 1e-12);
        assert_eq!(s.unknown, 1);
        assert_eq!(s.forked, 1);
        assert_eq!(s.worst_streak_rounds, 3);
        assert_eq!(s.worst_streak_secs, 24);
        assert_eq!(s.max_lag, 6);
        assert_eq!(summarize(&rounds, 50)[0].rounds, 2);
    }
}
