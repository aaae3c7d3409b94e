//! What a producer keeps across the attempts of one send and across its sends: how a send's
//! attempts go ([`Attempts`], Kafka's `retries` and `delivery.timeout.ms`), and, with
//! idempotence ([`Session`], KIP-98), the producer id and epoch the broker gave it and its next
//! sequence number per partition. Both are pure state machines, driven by the workload's
//! `send_one`, which talks to the brokers and records the history; nothing here does I/O.
//!
//! A send's life, as a state machine:
//!
//! ```text
//!            attempt ──ok──────────────────────────────▶ done ok (sequence advances)
//!              │ ▲
//!    retriable │ │ backoff, leader looked up again
//!    and room  ▼ │
//!            retry
//!              │
//!  no room, or a fatal error ──▶ done: info if any attempt may have been appended, else fail
//!  OUT_OF_ORDER_SEQUENCE_NUMBER,
//!  INVALID_PRODUCER_EPOCH      ──▶ done (as above), and the session ends
//! ```
//!
//! With idempotence every attempt of one send carries the same producer id, epoch and base
//! sequence, so a retry of a batch the broker already appended is answered with the first
//! batch's offsets instead of being appended again. The sequence advances only when a send is
//! done and its record is in the log (`ok`); a send that definitely failed leaves its sequence
//! to the next send (as Kafka's producer reuses a failed batch's sequence); and a send whose
//! outcome is unknown ends the session — its sequence is unresolved, so the next send asks for
//! a new producer id and starts at sequence 0 (KIP-360's epoch bump, done the simple way). A
//! refused sequence or epoch ends the session too.

use std::collections::HashMap;
use std::time::Duration;

use faultline_checker::history::OpType;

use crate::client::{AttemptClass, ProducerBatch, ProducerIdentity};

/// Kafka's `retry.backoff.ms` default: the pause before a send's next attempt.
pub const RETRY_BACKOFF: Duration = Duration::from_millis(100);

/// The shortest attempt worth starting: with less of the delivery timeout left, a send ends
/// with what its attempts so far say.
pub const MIN_ATTEMPT_TIME: Duration = Duration::from_millis(50);

/// How producers send (`--retries`, `--idempotence`). The default is the producer of runs
/// from before retries: one attempt, no idempotence.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ProducerSettings {
    /// Re-sends after the first attempt, at most.
    pub retries: u32,
    /// Kafka's `enable.idempotence`: producer ids and sequence numbers on every send with
    /// acks=all (Kafka allows idempotence only with acks=all; a schedule's `produce N acks 1`
    /// sends without).
    pub idempotence: bool,
}

impl ProducerSettings {
    /// Kafka's `delivery.timeout.ms`: the time one send may take over all its attempts and
    /// backoffs, here one request timeout per attempt it may make.
    pub fn delivery_timeout(&self, request_timeout: Duration) -> Duration {
        request_timeout.saturating_mul(self.retries.saturating_add(1))
    }
}

/// How one send ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Done {
    /// The completion recorded: `ok`, `fail` (no attempt was appended) or `info`.
    pub kind: OpType,
    /// The producer's idempotence session must end: the broker refused its sequence or
    /// epoch, or the send's outcome is unknown (its sequence is unresolved).
    pub end_session: bool,
}

/// What to do after an attempt failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// Back off, look the leader up again, and send the same value again.
    Retry,
    Done(Done),
}

/// The attempts of one send so far.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attempts {
    /// The most attempts this send may make (retries + 1).
    max: u32,
    made: u32,
    /// Some attempt may have been appended: the send can no longer be a definite failure.
    possibly_appended: bool,
    /// The error of each attempt that was retried.
    retry_errors: Vec<String>,
    /// The error of the last attempt, while it is not known whether it will be retried.
    last_error: Option<String>,
}

impl Attempts {
    pub fn new(retries: u32) -> Self {
        Attempts {
            max: retries.saturating_add(1),
            made: 0,
            possibly_appended: false,
            retry_errors: Vec::new(),
            last_error: None,
        }
    }

    /// Notes that an attempt is being made.
    pub fn start(&mut self) {
        if let Some(error) = self.last_error.take() {
            self.retry_errors.push(error);
        }
        self.made += 1;
    }

    pub fn made(&self) -> u32 {
        self.made
    }

    /// The errors of the attempts that were retried, in order.
    pub fn retry_errors(&self) -> &[String] {
        &self.retry_errors
    }

    /// The error of the last attempt, when it failed.
    pub fn last_error(&self) -> Option<&str> {
        self.last_error.as_deref()
    }

    /// The last attempt was acknowledged.
    pub fn succeeded(&mut self) -> Done {
        Done {
            kind: OpType::Ok,
            end_session: false,
        }
    }

    /// The last attempt failed with `error`, of `class`; `room` says whether another attempt
    /// may start (delivery time left, and the run not stopping).
    pub fn failed(&mut self, class: AttemptClass, error: String, room: bool) -> Next {
        self.last_error = Some(error);
        self.possibly_appended |= class.possibly_appended();
        if class.retriable() && room && self.made < self.max {
            return Next::Retry;
        }
        Next::Done(self.give_up(class == AttemptClass::ProducerReset))
    }

    /// The send ends without another attempt (no room left, no leader to retry with):
    /// unknown if any attempt may have been appended, else a definite failure.
    pub fn give_up(&self, refused_producer: bool) -> Done {
        let kind = if self.possibly_appended {
            OpType::Info
        } else {
            OpType::Fail
        };
        Done {
            kind,
            end_session: refused_producer || kind == OpType::Info,
        }
    }
}

/// An idempotent producer's session: the identity the broker gave it and the next sequence
/// number of each partition it sends to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    identity: ProducerIdentity,
    next_sequence: HashMap<(String, u32), i32>,
}

impl Session {
    /// A session for a new producer id: every partition starts at sequence 0.
    pub fn new(identity: ProducerIdentity) -> Self {
        Session {
            identity,
            next_sequence: HashMap::new(),
        }
    }

    pub fn identity(&self) -> ProducerIdentity {
        self.identity
    }

    /// What every attempt of the next send to the partition carries.
    pub fn batch(&self, topic: &str, partition: u32) -> ProducerBatch {
        let key = (topic.to_string(), partition);
        ProducerBatch {
            producer_id: self.identity.producer_id,
            producer_epoch: self.identity.producer_epoch,
            base_sequence: self.next_sequence.get(&key).copied().unwrap_or(0),
        }
    }

    /// A send of one record to the partition is done: an acknowledged record takes its
    /// sequence (Kafka's sequences wrap at i32::MAX to 0); a definite failure leaves it for
    /// the next send. Returns the session, or `None` when it ends (`done.end_session`).
    pub fn after(mut self, topic: &str, partition: u32, done: Done) -> Option<Session> {
        if done.end_session {
            return None;
        }
        if done.kind == OpType::Ok {
            let next = self
                .next_sequence
                .entry((topic.to_string(), partition))
                .or_insert(0);
            *next = if *next == i32::MAX { 0 } else { *next + 1 };
        }
        Some(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use AttemptClass::*;

    fn identity(producer_id: i64) -> ProducerIdentity {
        ProducerIdentity {
            producer_id,
            producer_epoch: 0,
        }
    }

    /// Runs one send's attempts, each ending as `classes` says (`None`: acknowledged), with
    /// room for every retry; returns how it ended and how many attempts it made.
    fn send(retries: u32, classes: &[Option<AttemptClass>]) -> (Done, u32, Vec<String>) {
        let mut attempts = Attempts::new(retries);
        for (i, class) in classes.iter().enumerate() {
            attempts.start();
            let next = match class {
                None => Next::Done(attempts.succeeded()),
                Some(class) => attempts.failed(*class, format!("E{i}"), true),
            };
            if let Next::Done(done) = next {
                assert_eq!(i + 1, classes.len(), "done before the last attempt");
                return (done, attempts.made(), attempts.retry_errors().to_vec());
            }
        }
        panic!("the send never ended");
    }

    fn done(kind: OpType, end_session: bool) -> Done {
        Done { kind, end_session }
    }

    #[test]
    fn a_retried_send_that_succeeds_is_ok_and_counts_its_attempts() {
        let (d, made, errors) = send(3, &[Some(RetryIndefinite), Some(RetryDefinite), None]);
        assert_eq!(d, done(OpType::Ok, false));
        assert_eq!(made, 3);
        assert_eq!(errors, ["E0", "E1"]);
    }

    #[test]
    fn retries_are_bounded_and_the_outcome_is_unknown_once_an_attempt_may_have_landed() {
        let classes = [Some(RetryIndefinite); 4];
        let (d, made, errors) = send(3, &classes);
        assert_eq!(
            d,
            done(OpType::Info, true),
            "an unresolved sequence ends the session"
        );
        assert_eq!(made, 4);
        assert_eq!(
            errors.len(),
            3,
            "the last attempt's error is the operation's"
        );
        // One definite refusal after a timeout: still unknown.
        let (d, _, _) = send(1, &[Some(RetryIndefinite), Some(RetryDefinite)]);
        assert_eq!(d.kind, OpType::Info);
    }

    #[test]
    fn a_send_is_a_definite_failure_only_when_every_attempt_definitely_failed() {
        let (d, made, _) = send(2, &[Some(RetryDefinite); 3]);
        assert_eq!((d, made), (done(OpType::Fail, false), 3));
        let (d, made, _) = send(5, &[Some(RetryDefinite), Some(FatalDefinite)]);
        assert_eq!((d, made), (done(OpType::Fail, false), 2));
        let (d, _, _) = send(5, &[Some(RetryDefinite), Some(FatalIndefinite)]);
        assert_eq!(d.kind, OpType::Info);
    }

    #[test]
    fn without_retries_a_send_is_one_attempt_as_before() {
        let (d, made, errors) = send(0, &[Some(RetryDefinite)]);
        assert_eq!((d.kind, made), (OpType::Fail, 1));
        assert!(errors.is_empty());
        let (d, _, _) = send(0, &[Some(RetryIndefinite)]);
        assert_eq!(d.kind, OpType::Info);
    }

    #[test]
    fn a_refused_sequence_ends_the_send_and_the_session() {
        let (d, made, _) = send(3, &[Some(ProducerReset)]);
        assert_eq!(
            (d, made),
            (done(OpType::Fail, true), 1),
            "nothing was appended"
        );
        let (d, made, _) = send(3, &[Some(RetryIndefinite), Some(ProducerReset)]);
        assert_eq!(
            (d, made),
            (done(OpType::Info, true), 2),
            "the first attempt may have been appended"
        );
    }

    #[test]
    fn no_room_ends_a_send_at_once() {
        let mut attempts = Attempts::new(3);
        attempts.start();
        let next = attempts.failed(RetryDefinite, "NOT_LEADER_OR_FOLLOWER".into(), false);
        assert_eq!(next, Next::Done(done(OpType::Fail, false)));
        assert_eq!(attempts.last_error(), Some("NOT_LEADER_OR_FOLLOWER"));
        assert!(attempts.retry_errors().is_empty());
    }

    #[test]
    fn every_attempt_of_a_send_carries_the_same_sequence_which_advances_only_when_acknowledged() {
        let session = Session::new(identity(7));
        let first = session.batch("t", 0);
        assert_eq!(
            (first.producer_id, first.producer_epoch, first.base_sequence),
            (7, 0, 0)
        );
        // Two attempts, then acknowledged: the sequence the attempts carried is used.
        let (d, _, _) = send(3, &[Some(RetryIndefinite), None]);
        let session = session.after("t", 0, d).unwrap();
        assert_eq!(session.batch("t", 0).base_sequence, 1);
        assert_eq!(session.batch("t", 1).base_sequence, 0, "per partition");
        // A definite failure leaves the sequence for the next send.
        let (d, _, _) = send(0, &[Some(RetryDefinite)]);
        let session = session.after("t", 0, d).unwrap();
        assert_eq!(session.batch("t", 0).base_sequence, 1);
        // An unknown outcome ends the session: the next send asks for a new producer id.
        let (d, _, _) = send(0, &[Some(RetryIndefinite)]);
        assert_eq!(session.clone().after("t", 0, d), None);
        // So does a refused sequence.
        let (d, _, _) = send(0, &[Some(ProducerReset)]);
        assert_eq!(session.after("t", 0, d), None);
    }

    #[test]
    fn sequences_wrap_as_kafkas_do() {
        let mut session = Session::new(identity(1));
        session.next_sequence.insert(("t".into(), 0), i32::MAX);
        let session = session.after("t", 0, done(OpType::Ok, false)).unwrap();
        assert_eq!(session.batch("t", 0).base_sequence, 0);
    }

    #[test]
    fn the_delivery_timeout_is_one_request_timeout_per_attempt() {
        let settings = ProducerSettings {
            retries: 3,
            idempotence: false,
        };
        let d = settings.delivery_timeout(Duration::from_secs(2));
        assert_eq!(d, Duration::from_secs(8));
        assert_eq!(
            ProducerSettings::default().delivery_timeout(Duration::from_secs(2)),
            Duration::from_secs(2)
        );
    }
}
