//! The report's plots, drawn with plotters' SVG backend into strings that the page inlines:
//! each client operation's latency over time coloured by outcome, throughput over time, and
//! per partition the offsets (acknowledged by clients, HW seen by consumers, LEO and HW from the
//! node events) and the ISR size over time. Fault windows are shaded behind every time plot.
//!
//! Plots stay bounded whatever the run's size: past [`MAX_LATENCY_POINTS`] operations the
//! latency plot draws a uniform sample of half that many, plus for each of [`TIME_BINS`] time
//! slices and each outcome the fastest and the slowest operation (spikes stay visible); offsets
//! are cut into the same slices. It owns
//! no data loading and no page layout.

use std::collections::BTreeMap;

use plotters::coord::Shift;
use plotters::prelude::*;

use super::data::{ClientOp, Outcome, RunData, Sample};
use super::timeline::FaultWindow;

/// Latency points drawn one for one up to this many operations.
pub const MAX_LATENCY_POINTS: usize = 6_000;
/// Time slices used to down-sample every series past its bound.
pub const TIME_BINS: usize = 600;
const WIDTH: u32 = 1200;
/// Room for the y axis's labels; with the 10 px margin the plot area starts at x = 150 and ends
/// at 1190, exactly where the timeline's lanes do, so times line up down the page.
const Y_LABEL_AREA: u32 = 140;

type Area<'a> = DrawingArea<SVGBackend<'a>, Shift>;

fn err(e: impl std::fmt::Display) -> anyhow::Error {
    anyhow::anyhow!("drawing a plot: {e}")
}

fn outcome_colour(outcome: Outcome) -> RGBColor {
    match outcome {
        Outcome::Ok => RGBColor(26, 127, 55),
        Outcome::Fail => RGBColor(209, 36, 47),
        Outcome::Info => RGBColor(130, 80, 223),
    }
}

fn shade_colour(kind: &str) -> RGBAColor {
    match kind {
        "kill" => RGBColor(207, 34, 46).mix(0.12),
        "pause" => RGBColor(191, 135, 0).mix(0.15),
        "power-loss" => RGBColor(36, 41, 47).mix(0.15),
        "delay" => RGBColor(130, 80, 223).mix(0.10),
        "drop-response" | "delay-response" | "error-response" => RGBColor(27, 124, 131).mix(0.12),
        _ => RGBColor(9, 105, 218).mix(0.12),
    }
}

const BROKER_COLOURS: [RGBColor; 6] = [
    RGBColor(9, 105, 218),
    RGBColor(207, 34, 46),
    RGBColor(26, 127, 55),
    RGBColor(191, 135, 0),
    RGBColor(130, 80, 223),
    RGBColor(87, 96, 106),
];

fn svg_of(height: u32, draw: impl FnOnce(&Area) -> anyhow::Result<()>) -> anyhow::Result<String> {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (WIDTH, height)).into_drawing_area();
        root.fill(&WHITE).map_err(err)?;
        draw(&root)?;
        root.present().map_err(err)?;
    }
    Ok(svg)
}

/// Draws the chart's legend, the same way on every plot.
fn legend<'a, DB: DrawingBackend + 'a, CT: CoordTranslate>(
    chart: &mut ChartContext<'a, DB, CT>,
    position: SeriesLabelPosition,
) -> anyhow::Result<()> {
    chart
        .configure_series_labels()
        .position(position)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .label_font(("sans-serif", 14))
        .draw()
        .map_err(err)
}

/// Shades each fault window over the whole height of a chart.
fn shade<DB: DrawingBackend, Y: Ranged<ValueType = f64>>(
    chart: &mut ChartContext<'_, DB, Cartesian2d<plotters::coord::types::RangedCoordf64, Y>>,
    windows: &[FaultWindow],
    end: f64,
    y: (f64, f64),
) -> anyhow::Result<()> {
    chart
        .draw_series(windows.iter().map(|w| {
            Rectangle::new(
                [(w.start_s, y.0), (w.end_s.unwrap_or(end), y.1)],
                shade_colour(w.kind).filled(),
            )
        }))
        .map_err(err)?;
    Ok(())
}

/// Which operations the latency plot draws: all of them; or a uniform sample of at most half
/// [`MAX_LATENCY_POINTS`] (to show where operations are dense) plus, per time slice and outcome,
/// the fastest and the slowest (so spikes and rare outcomes are never sampled away).
fn latency_points(ops: &[ClientOp], end: f64) -> (Vec<(f64, f64, Outcome)>, bool) {
    let point = |op: &ClientOp| {
        (
            op.time_s as f64,
            (op.latency_ms as f64).max(0.1),
            op.outcome,
        )
    };
    if ops.len() <= MAX_LATENCY_POINTS {
        return (ops.iter().map(point).collect(), false);
    }
    let mut extremes: BTreeMap<(usize, u8), (usize, usize)> = BTreeMap::new();
    for (i, op) in ops.iter().enumerate() {
        let bin = ((op.time_s as f64 / end) * TIME_BINS as f64) as usize;
        let entry = extremes.entry((bin, op.outcome as u8)).or_insert((i, i));
        if op.latency_ms < ops[entry.0].latency_ms {
            entry.0 = i;
        }
        if op.latency_ms > ops[entry.1].latency_ms {
            entry.1 = i;
        }
    }
    let stride = ops.len().div_ceil(MAX_LATENCY_POINTS / 2);
    let mut points: Vec<_> = ops.iter().step_by(stride).map(point).collect();
    for (min, max) in extremes.into_values() {
        points.push(point(&ops[min]));
        if max != min {
            points.push(point(&ops[max]));
        }
    }
    (points, true)
}

/// Each operation's latency over time, coloured by outcome, on a log scale.
pub fn latency(data: &RunData, windows: &[FaultWindow]) -> anyhow::Result<(String, usize, bool)> {
    let end = data.end_s();
    let (points, sampled) = latency_points(&data.history.ops, end);
    let max = points.iter().map(|p| p.1).fold(1.0, f64::max) * 1.5;
    let drawn = points.len();
    let svg = svg_of(360, |root| {
        let mut chart = ChartBuilder::on(root)
            .margin(10)
            .x_label_area_size(40)
            .y_label_area_size(Y_LABEL_AREA)
            .build_cartesian_2d(0f64..end, (0.1f64..max).log_scale())
            .map_err(err)?;
        chart
            .configure_mesh()
            .x_desc("seconds since run start")
            .label_style(("sans-serif", 14))
            .axis_desc_style(("sans-serif", 15))
            .y_desc("latency (ms, log scale)")
            .draw()
            .map_err(err)?;
        shade(&mut chart, windows, end, (0.1, max))?;
        for outcome in Outcome::ALL {
            let colour = outcome_colour(outcome);
            let series = points.iter().filter(|p| p.2 == outcome);
            chart
                .draw_series(series.map(|p| Circle::new((p.0, p.1), 2, colour.mix(0.7).filled())))
                .map_err(err)?
                .label(outcome.as_str())
                .legend(move |(x, y)| Circle::new((x, y), 4, colour.filled()));
        }
        legend(&mut chart, SeriesLabelPosition::UpperRight)?;
        Ok(())
    })?;
    Ok((svg, drawn, sampled))
}

/// Completions per second over time, by outcome.
pub fn throughput(data: &RunData, windows: &[FaultWindow]) -> anyhow::Result<String> {
    let end = data.end_s();
    // About a hundred buckets: fine enough to see a fault's dip, coarse enough to be smooth.
    let bucket_s = super::timeline::nice_step(end / 100.0);
    let buckets = (end / bucket_s).ceil() as usize + 1;
    let mut counts = vec![[0u64; 3]; buckets];
    for op in &data.history.ops {
        let b = ((op.time_s as f64 / bucket_s) as usize).min(buckets - 1);
        counts[b][op.outcome as usize] += 1;
    }
    let rate = |b: usize, o: Outcome| counts[b][o as usize] as f64 / bucket_s;
    let max = (0..buckets)
        .flat_map(|b| Outcome::ALL.map(|o| rate(b, o)))
        .fold(1.0, f64::max)
        * 1.1;
    svg_of(300, |root| {
        let mut chart = ChartBuilder::on(root)
            .margin(10)
            .x_label_area_size(40)
            .y_label_area_size(Y_LABEL_AREA)
            .build_cartesian_2d(0f64..end, 0f64..max)
            .map_err(err)?;
        chart
            .configure_mesh()
            .x_desc("seconds since run start")
            .label_style(("sans-serif", 14))
            .axis_desc_style(("sans-serif", 15))
            .y_desc(format!("operations/s (per {bucket_s} s)"))
            .draw()
            .map_err(err)?;
        shade(&mut chart, windows, end, (0.0, max))?;
        for outcome in Outcome::ALL {
            let colour = outcome_colour(outcome);
            let line = (0..buckets).map(|b| (b as f64 * bucket_s, rate(b, outcome)));
            chart
                .draw_series(LineSeries::new(line, colour.stroke_width(2)))
                .map_err(err)?
                .label(outcome.as_str())
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 16, y)], colour.stroke_width(2))
                });
        }
        legend(&mut chart, SeriesLabelPosition::UpperRight)?;
        Ok(())
    })
}

/// Per time slice, the highest value of a series: bounded whatever its length, and a drop
/// (offsets reused after a truncation) stays visible.
fn binned_max(samples: &[Sample], end: f64) -> Vec<(f64, f64)> {
    let mut bins: BTreeMap<usize, (f64, u64)> = BTreeMap::new();
    for s in samples {
        let bin = ((s.time_s as f64 / end) * TIME_BINS as f64) as usize;
        let entry = bins.entry(bin).or_insert((s.time_s as f64, s.value));
        if s.value > entry.1 {
            *entry = (s.time_s as f64, s.value);
        }
    }
    bins.into_values().map(|(t, v)| (t, v as f64)).collect()
}

/// LEO and HW points a broker reported in its events for one partition.
struct BrokerMarks {
    leo: Vec<(f64, f64)>,
    hw: Vec<(f64, f64)>,
}

/// A broker's colour in the offsets plot, for the page's legend.
pub fn broker_colour(broker: u32) -> String {
    let RGBColor(r, g, b) = BROKER_COLOURS[(broker as usize) % BROKER_COLOURS.len()];
    format!("#{r:02x}{g:02x}{b:02x}")
}

/// The brokers with LEO or HW marks in one partition's offsets plot.
pub fn brokers_with_marks(data: &RunData, topic: &str, partition: u32) -> Vec<u32> {
    broker_marks(data, topic, partition).into_keys().collect()
}

fn broker_marks(data: &RunData, topic: &str, partition: u32) -> BTreeMap<u32, BrokerMarks> {
    let mut marks: BTreeMap<u32, BrokerMarks> = BTreeMap::new();
    for e in data.partition_events(topic, partition) {
        let Some(broker) = e.event.broker() else {
            continue;
        };
        let entry = marks.entry(broker).or_insert(BrokerMarks {
            leo: vec![],
            hw: vec![],
        });
        let leo = if e.event.kind == "truncation" {
            e.event.to
        } else {
            e.event.log_end_offset
        };
        if let Some(leo) = leo {
            entry.leo.push((e.time_s, leo as f64));
        }
        if let Some(hw) = e.event.high_watermark {
            entry.hw.push((e.time_s, hw as f64));
        }
    }
    marks
}

/// One partition's offsets over time: what clients had acknowledged, the HW consumers were
/// told, and the LEO and HW each broker reported in its events.
pub fn offsets(
    data: &RunData,
    windows: &[FaultWindow],
    topic: &str,
    partition: u32,
) -> anyhow::Result<String> {
    let end = data.end_s();
    let key = (topic.to_string(), partition);
    let acked = binned_max(data.history.acked.get(&key).map_or(&[], Vec::as_slice), end);
    let polled = binned_max(
        data.history.polled_hw.get(&key).map_or(&[], Vec::as_slice),
        end,
    );
    let marks = broker_marks(data, topic, partition);
    let all_y = acked.iter().chain(&polled).map(|p| p.1).chain(
        marks
            .values()
            .flat_map(|m| m.leo.iter().chain(&m.hw).map(|p| p.1)),
    );
    let max = all_y.fold(1.0, f64::max) * 1.05;
    svg_of(320, |root| {
        let mut chart = ChartBuilder::on(root)
            .margin(10)
            .x_label_area_size(40)
            .y_label_area_size(Y_LABEL_AREA)
            .build_cartesian_2d(0f64..end, 0f64..max)
            .map_err(err)?;
        chart
            .configure_mesh()
            .x_desc("seconds since run start")
            .label_style(("sans-serif", 14))
            .axis_desc_style(("sans-serif", 15))
            .y_desc("offset")
            .draw()
            .map_err(err)?;
        shade(&mut chart, windows, end, (0.0, max))?;
        let grey = RGBColor(87, 96, 106);
        // Dots, not lines: a line would invent offsets across a time without acknowledgements.
        chart
            .draw_series(acked.iter().map(|p| Circle::new(*p, 2, grey.filled())))
            .map_err(err)?;
        if !polled.is_empty() {
            let black = RGBColor(0, 0, 0);
            chart
                .draw_series(
                    polled
                        .iter()
                        .map(|p| Cross::new(*p, 2, black.stroke_width(1))),
                )
                .map_err(err)?;
        }
        for (broker, m) in &marks {
            let c = BROKER_COLOURS[(*broker as usize) % BROKER_COLOURS.len()];
            chart
                .draw_series(m.leo.iter().map(|p| Circle::new(*p, 4, c.filled())))
                .map_err(err)?;
            chart
                .draw_series(
                    m.hw.iter()
                        .map(|p| TriangleMarker::new(*p, 5, c.stroke_width(2))),
                )
                .map_err(err)?;
        }
        Ok(())
    })
}

/// The ISR size of one partition over time, from the controller's elections and ISR changes;
/// `None` when no event says.
pub fn isr_size(
    data: &RunData,
    windows: &[FaultWindow],
    topic: &str,
    partition: u32,
) -> anyhow::Result<Option<String>> {
    let end = data.end_s();
    let mut steps: Vec<(f64, f64)> = Vec::new();
    for e in data.partition_events(topic, partition) {
        let by_controller = e.event.is_controller();
        if by_controller && matches!(e.event.kind.as_str(), "election" | "isr_change") {
            if let Some(isr) = &e.event.isr {
                if let Some(last) = steps.last() {
                    steps.push((e.time_s, last.1));
                }
                steps.push((e.time_s, isr.len() as f64));
            }
        }
    }
    if steps.is_empty() {
        return Ok(None);
    }
    if let Some(last) = steps.last().copied() {
        steps.push((end, last.1));
    }
    let max = data.config.replication_factor as f64 + 0.5;
    let min_isr = data.config.min_insync_replicas as f64;
    svg_of(200, |root| {
        let mut chart = ChartBuilder::on(root)
            .margin(10)
            .x_label_area_size(40)
            .y_label_area_size(Y_LABEL_AREA)
            .build_cartesian_2d(0f64..end, 0f64..max)
            .map_err(err)?;
        chart
            .configure_mesh()
            .x_desc("seconds since run start")
            .label_style(("sans-serif", 14))
            .axis_desc_style(("sans-serif", 15))
            .y_desc("ISR size")
            .y_labels(data.config.replication_factor as usize + 1)
            .draw()
            .map_err(err)?;
        shade(&mut chart, windows, end, (0.0, max))?;
        let red = RGBColor(209, 36, 47);
        chart
            .draw_series(LineSeries::new(
                vec![(0.0, min_isr), (end, min_isr)],
                red.stroke_width(1),
            ))
            .map_err(err)?
            .label(format!(
                "min.insync.replicas = {}",
                data.config.min_insync_replicas
            ))
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], red.stroke_width(1)));
        let blue = RGBColor(9, 105, 218);
        chart
            .draw_series(LineSeries::new(steps, blue.stroke_width(2)))
            .map_err(err)?
            .label("ISR size (controller)")
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 16, y)], blue.stroke_width(2))
            });
        legend(&mut chart, SeriesLabelPosition::LowerRight)?;
        Ok(())
    })
    .map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn op(i: usize) -> ClientOp {
        ClientOp {
            time_s: i as f32 / 1000.0,
            latency_ms: (i % 97) as f32,
            outcome: Outcome::ALL[i % 3],
            is_send: true,
            partition: 0,
        }
    }

    #[test]
    fn latency_points_stay_bounded_and_keep_the_slowest() {
        let few: Vec<ClientOp> = (0..100).map(op).collect();
        let (points, sampled) = latency_points(&few, 1.0);
        assert_eq!((points.len(), sampled), (100, false));

        let many: Vec<ClientOp> = (0..1_000_000).map(op).collect();
        let end = 1_000.0;
        let (points, sampled) = latency_points(&many, end);
        assert!(sampled);
        let bound = MAX_LATENCY_POINTS / 2 + TIME_BINS * 3 * 2;
        assert!(points.len() <= bound, "{} points", points.len());
        let slowest = points.iter().map(|p| p.1).fold(0.0, f64::max);
        assert_eq!(slowest, 96.0, "the slowest operation is drawn");
    }
}
