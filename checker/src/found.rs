//! The collector of anomalies: counts every one (in all and per partition), keeps the first
//! [`MAX_ANOMALIES_PER_KIND`] of each kind in detail, and marks each with the setting that
//! excuses it. It does not look for anomalies; the analysis modules push them here.

use crate::guarantee::{Rules, SendStanding};
use crate::results::{Anomaly, AnomalyKind, MAX_ANOMALIES_PER_KIND};
use std::collections::BTreeMap;

pub struct Found {
    rules: Rules,
    lists: BTreeMap<AnomalyKind, Vec<Anomaly>>,
    pub counts: BTreeMap<AnomalyKind, u64>,
    /// Anomalies that break the guarantee, counted even when not kept in detail.
    pub breaking: u64,
    pub uncertain: u64,
    pub per_partition: BTreeMap<(String, u32), BTreeMap<AnomalyKind, u64>>,
}

impl Found {
    pub fn new(rules: Rules) -> Self {
        Found {
            rules,
            lists: BTreeMap::new(),
            counts: AnomalyKind::ALL.iter().map(|k| (*k, 0)).collect(),
            breaking: 0,
            uncertain: 0,
            per_partition: BTreeMap::new(),
        }
    }

    pub fn rules(&self) -> &Rules {
        &self.rules
    }

    /// Records one anomaly; `excused_by` is kept when the anomaly's own operation excuses it (a
    /// send with acks=1 in an acks=all run: the narrower reason), else filled in from the run's
    /// rules.
    pub fn push(&mut self, mut anomaly: Anomaly) {
        anomaly.excused_by = anomaly
            .excused_by
            .take()
            .or_else(|| self.rules.excuse(anomaly.kind));
        if anomaly.breaks_guarantee() {
            self.breaking += 1;
        } else if anomaly.excused_by.is_none() {
            self.uncertain += 1;
        }
        *self.counts.entry(anomaly.kind).or_default() += 1;
        let key = (anomaly.topic.clone(), anomaly.partition);
        *self
            .per_partition
            .entry(key)
            .or_default()
            .entry(anomaly.kind)
            .or_default() += 1;
        let list = self.lists.entry(anomaly.kind).or_default();
        if list.len() < MAX_ANOMALIES_PER_KIND {
            list.push(anomaly);
        }
    }

    /// Records a `duplicate`, excused or uncertain by how its value's send went (`attempts`
    /// from its completion; `None` when it has none), as the rules say.
    pub fn push_duplicate(&mut self, mut anomaly: Anomaly, attempts: Option<u32>) {
        if let Some(n) = attempts.filter(|n| *n > 1) {
            anomaly.detail += &format!(" (its send took {n} attempts)");
        }
        match self.rules.duplicate_standing(attempts) {
            SendStanding::Breaks => {}
            SendStanding::Excused(why) => anomaly.excused_by = Some(why),
            SendStanding::Uncertain(why) => anomaly.uncertain = Some(why),
        }
        self.push(anomaly);
    }

    /// Every anomaly kept in detail, by kind, then partition, then offset; and whether some
    /// were left out.
    pub fn into_list(self) -> (Vec<Anomaly>, bool) {
        let truncated = self
            .counts
            .iter()
            .any(|(k, n)| *n as usize > self.lists.get(k).map_or(0, Vec::len));
        let mut all = Vec::new();
        for (_, mut list) in self.lists {
            list.sort_by(|a, b| {
                (&a.topic, a.partition, a.offsets.first()).cmp(&(
                    &b.topic,
                    b.partition,
                    b.offsets.first(),
                ))
            });
            all.extend(list);
        }
        (all, truncated)
    }
}

/// A new anomaly with nothing excused or uncertain yet.
pub fn anomaly(kind: AnomalyKind, topic: &str, partition: u32, detail: String) -> Anomaly {
    Anomaly {
        kind,
        topic: topic.to_string(),
        partition,
        offsets: Vec::new(),
        values: Vec::new(),
        indices: Vec::new(),
        brokers: Vec::new(),
        detail,
        excused_by: None,
        uncertain: None,
    }
}
