//! BrokerLog divergence: where two surviving logs of one partition disagree below an offset both
//! have committed. Each broker's dump is compared with the final log below the final HW when
//! the broker is in the final ISR (an ISR member must hold every committed record), or below
//! the lower of its own HW checkpoint (the dump's summary line) and the final HW otherwise;
//! above what the final log covers, dumps are compared with each other below the lower of
//! their HWs. Above HW, replicas may hold different uncommitted data: that is not compared.

use crate::found::{anomaly, Found};
use crate::logs::{BrokerLog, Final, FinalPart, LogValues, PartIdx, Partitions, ReplicaLog};
use crate::results::AnomalyKind;
use crate::values::Values;
use std::collections::BTreeSet;

/// One side of a comparison: a log, what to call it, and the broker it belongs to.
struct Side<'a> {
    log: &'a LogValues,
    name: String,
    broker: Option<u32>,
}

/// Compares every replica of every partition; pushes one anomaly per diverging range.
pub fn check(
    parts: &Partitions,
    values: &Values,
    fin: &Final,
    broker_logs: &[BrokerLog],
    found: &mut Found,
) {
    let mut all: BTreeSet<PartIdx> = fin.parts.keys().copied().collect();
    for r in broker_logs {
        all.extend(r.parts.keys().copied());
    }
    for part in all {
        let fp = fin.complete_part(part);
        let cmp = Compare {
            parts,
            values,
            part,
            found: &mut *found,
        };
        cmp.partition(fp, broker_logs);
    }
}

struct Compare<'a> {
    parts: &'a Partitions,
    values: &'a Values,
    part: PartIdx,
    found: &'a mut Found,
}

impl Compare<'_> {
    fn partition(mut self, fp: Option<&FinalPart>, broker_logs: &[BrokerLog]) {
        let here: Vec<(&BrokerLog, &ReplicaLog)> = broker_logs
            .iter()
            .filter_map(|r| r.parts.get(&self.part).map(|rp| (r, rp)))
            .collect();
        let final_hw = fp.map(FinalPart::hw);
        if let Some(fp) = fp {
            let leader = fp.leader.map_or("?".to_string(), |l| l.to_string());
            let reference = Side {
                log: &fp.log,
                name: format!("the final log (leader {leader})"),
                broker: fp.leader,
            };
            for (r, rp) in &here {
                let in_isr = fp.isr.contains(&r.broker);
                let bound = if in_isr {
                    Some(fp.hw())
                } else {
                    rp.high_watermark.map(|h| h.min(fp.hw()))
                };
                if let Some(bound) = bound {
                    self.compare(&side(r, rp), &reference, 0, bound);
                }
            }
        }
        let hw_of = |r: &BrokerLog, rp: &ReplicaLog| {
            let in_isr = fp.is_some_and(|fp| fp.isr.contains(&r.broker));
            rp.high_watermark.or(if in_isr { final_hw } else { None })
        };
        for (i, (ra, pa)) in here.iter().enumerate() {
            for (rb, pb) in &here[i + 1..] {
                let (Some(ha), Some(hb)) = (hw_of(ra, pa), hw_of(rb, pb)) else {
                    continue;
                };
                let lo = final_hw.unwrap_or(0);
                self.compare(&side(ra, pa), &side(rb, pb), lo, ha.min(hb));
            }
        }
    }

    /// Pushes one divergence per range of consecutive offsets in `lo..hi` where `a` and `b`
    /// disagree (a record on one side only counts).
    fn compare(&mut self, a: &Side, b: &Side, lo: u64, hi: u64) {
        let mut range: Option<(u64, u64)> = None;
        for offset in mismatches(a.log, b.log, lo, hi) {
            match range {
                Some((first, last)) if last + 1 == offset => range = Some((first, offset)),
                Some((first, last)) => {
                    self.push(a, b, first, last, hi);
                    range = Some((offset, offset));
                }
                None => range = Some((offset, offset)),
            }
        }
        if let Some((first, last)) = range {
            self.push(a, b, first, last, hi);
        }
    }

    fn push(&mut self, a: &Side, b: &Side, first: u64, last: u64, hw: u64) {
        let (topic, partition) = self.parts.key(self.part);
        let show = |log: &LogValues| match log.get(first) {
            Some(v) => format!("{:?}", self.values.interner.get(v)),
            None => "nothing".to_string(),
        };
        let offsets = if first == last {
            format!("offset {first}")
        } else {
            format!("offsets {first}–{last}")
        };
        let detail = format!(
            "{} and {} of {topic}/{partition} differ at {offsets}, below HW {hw}: offset {first} \
             holds {} on one and {} on the other",
            a.name,
            b.name,
            show(a.log),
            show(b.log)
        );
        let mut an = anomaly(AnomalyKind::Divergence, topic, partition, detail);
        an.offsets = vec![first, last];
        an.values = [a.log.get(first), b.log.get(first)]
            .into_iter()
            .flatten()
            .map(|v| self.values.name(v))
            .collect();
        an.brokers = [a.broker, b.broker].into_iter().flatten().collect();
        self.found.push(an);
    }
}

fn side<'a>(r: &BrokerLog, rp: &'a ReplicaLog) -> Side<'a> {
    Side {
        log: &rp.log,
        name: format!("broker {}'s log", r.broker),
        broker: Some(r.broker),
    }
}

/// Offsets in `lo..hi`, ascending, where the two logs disagree: a merge of the offsets each
/// holds, so the work is bounded by the records, not by the width of the range.
fn mismatches<'a>(
    a: &'a LogValues,
    b: &'a LogValues,
    lo: u64,
    hi: u64,
) -> impl Iterator<Item = u64> + 'a {
    let mut ia = a
        .iter()
        .skip_while(move |(o, _)| *o < lo)
        .take_while(move |(o, _)| *o < hi)
        .peekable();
    let mut ib = b
        .iter()
        .skip_while(move |(o, _)| *o < lo)
        .take_while(move |(o, _)| *o < hi)
        .peekable();
    std::iter::from_fn(move || loop {
        match (ia.peek().copied(), ib.peek().copied()) {
            (None, None) => return None,
            (Some((oa, _)), None) => {
                ia.next();
                return Some(oa);
            }
            (None, Some((ob, _))) => {
                ib.next();
                return Some(ob);
            }
            (Some((oa, va)), Some((ob, vb))) => {
                if oa < ob {
                    ia.next();
                    return Some(oa);
                }
                if ob < oa {
                    ib.next();
                    return Some(ob);
                }
                ia.next();
                ib.next();
                if va != vb {
                    return Some(oa);
                }
            }
        }
    })
}
