//! Message faults on a Kafka-aware link: what the proxy does to the responses of one API key
//! — drop one and close the client's connection (a reset after the broker appended), hold it
//! for a while, or replace its error codes — for the next `count` of them or until removed. A
//! link keeps at most one [`ResponseFault`] per API key in its [`ResponseFaults`], which every
//! connection's response framer asks once per response; a counted fault is spent by the
//! responses it changed, on whichever of the link's connections they passed — and, when one
//! fault was put on several links at once, on whichever of those links ([`Budget`]).
//!
//! It also owns the names the schedule language gives API keys (`produce`, `init-producer-id`:
//! the `kafka-protocol` crate's names in kebab case) and error codes (`NOT_LEADER_OR_FOLLOWER`:
//! the crate's names as Kafka's protocol guide spells them), and the replacement of error codes
//! in the responses that support it ([`ERROR_RESPONSE_APIS`]). It knows nothing of schedules,
//! of which links exist, or of when a fault is applied.

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{ApiKey, FetchResponse, InitProducerIdResponse, ProduceResponse};

use super::{rewrite_as, Request, Rewrite};

/// What a message fault does to a response it matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResponseAction {
    /// Discard the response and close the client's connection both ways, as a connection
    /// reset after the broker appended: the client sees its request fail.
    Drop,
    /// Hold the response this long before passing it on; later responses on the same
    /// connection queue behind it, so their order is kept.
    Delay { delay_ms: u64 },
    /// Pass the same response with this Kafka error code in place of every error code it
    /// carries (every partition's, in Produce and Fetch; the one in InitProducerId).
    Error { code: i16 },
}

/// One message fault: what happens to the responses of `api_key`, for the next `count` of them
/// (`None`: until removed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResponseFault {
    pub api_key: i16,
    pub action: ResponseAction,
    pub count: Option<u32>,
}

/// The responses whose error codes `error-response` can replace: Produce (each partition's
/// `error_code`), Fetch (each partition's) and InitProducerId (its `error_code`).
pub const ERROR_RESPONSE_APIS: [ApiKey; 3] =
    [ApiKey::Produce, ApiKey::Fetch, ApiKey::InitProducerId];

/// Whether `error-response` can replace the error codes of `api_key`'s responses.
pub fn replaces_errors(api_key: i16) -> bool {
    ERROR_RESPONSE_APIS.iter().any(|k| *k as i16 == api_key)
}

/// How many more responses a counted fault may change, shared by every link it was put on:
/// `count K` on all links means the next K matching responses, wherever they pass.
#[derive(Debug, Clone)]
pub struct Budget(Arc<AtomicU32>);

impl Budget {
    /// The budget of `fault`: its count, or none (until removed).
    pub fn of(fault: &ResponseFault) -> Option<Budget> {
        fault.count.map(|k| Budget(Arc::new(AtomicU32::new(k))))
    }

    /// Spends one; false if none was left.
    fn spend(&self) -> bool {
        self.0
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1))
            .is_ok()
    }

    fn left(&self) -> u32 {
        self.0.load(Ordering::Acquire)
    }
}

/// A fault in force and how many more responses it may change.
#[derive(Debug, Clone)]
struct Rule {
    fault: ResponseFault,
    left: Option<Budget>,
}

/// The message faults in force on one link, shared by every framer of its connections.
#[derive(Debug, Default)]
pub struct ResponseFaults {
    rules: Mutex<Vec<Rule>>,
    /// Set while any rule is in force, so a response on a link without faults takes no lock.
    any: AtomicBool,
}

impl ResponseFaults {
    /// Puts `fault` in force on this link alone, replacing the one for the same API key, if
    /// any.
    pub fn set(&self, fault: ResponseFault) {
        self.set_shared(fault, Budget::of(&fault));
    }

    /// Puts `fault` in force with a count shared with other links (`left`, from
    /// [`Budget::of`]), replacing the one for the same API key, if any.
    pub fn set_shared(&self, fault: ResponseFault, left: Option<Budget>) {
        let mut rules = self.lock();
        rules.retain(|r| r.fault.api_key != fault.api_key);
        rules.push(Rule { fault, left });
        self.any.store(true, Ordering::Release);
    }

    /// Removes the fault on `api_key`'s responses; true if there was one.
    pub fn remove(&self, api_key: i16) -> bool {
        let mut rules = self.lock();
        let before = rules.len();
        rules.retain(|r| r.fault.api_key != api_key);
        self.any.store(!rules.is_empty(), Ordering::Release);
        rules.len() < before
    }

    /// Removes every fault; returns how many there were.
    pub fn clear(&self) -> usize {
        let mut rules = self.lock();
        let removed = rules.len();
        rules.clear();
        self.any.store(false, Ordering::Release);
        removed
    }

    /// The faults in force with responses left to change, each with the count it has left.
    pub fn in_force(&self) -> Vec<ResponseFault> {
        self.lock()
            .iter()
            .map(|r| ResponseFault {
                count: r.left.as_ref().map(Budget::left),
                ..r.fault
            })
            .filter(|f| f.count != Some(0))
            .collect()
    }

    /// What to do to the next response of `api_key`, if a fault matches it; a counted fault
    /// is spent by one, and removed once none is left (here, or on another link sharing it).
    pub fn take(&self, api_key: i16) -> Option<ResponseAction> {
        if !self.any.load(Ordering::Acquire) {
            return None;
        }
        let mut rules = self.lock();
        let at = rules.iter().position(|r| r.fault.api_key == api_key)?;
        let rule = &rules[at];
        let action = rule.fault.action;
        let (spent, last) = match &rule.left {
            None => (true, false),
            Some(left) => {
                let spent = left.spend();
                (spent, left.left() == 0)
            }
        };
        if last {
            rules.remove(at);
            self.any.store(!rules.is_empty(), Ordering::Release);
        }
        spent.then_some(action)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Rule>> {
        self.rules.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// An API key as the schedule language writes it: the crate's name in kebab case
/// (`produce`, `init-producer-id`), or the number when the crate does not know it.
pub fn api_name(api_key: i16) -> String {
    match ApiKey::try_from(api_key) {
        Ok(key) => words(&format!("{key:?}"), '-').to_lowercase(),
        Err(()) => api_key.to_string(),
    }
}

/// An API key from its name (any case) or number.
pub fn parse_api_key(text: &str) -> Result<i16, String> {
    if let Ok(number) = text.parse::<i16>() {
        return match number >= 0 {
            true => Ok(number),
            false => Err(format!("an API key is not negative, got {number}")),
        };
    }
    ApiKey::iter()
        .find(|key| api_name(*key as i16).eq_ignore_ascii_case(text))
        .map(|key| key as i16)
        .ok_or_else(|| {
            format!(
                "unknown API key {text:?} (a name such as produce, fetch, metadata, \
                 init-producer-id, or a number)"
            )
        })
}

/// The largest error code the crate names, and the smallest (UNKNOWN_SERVER_ERROR).
const ERROR_CODES: std::ops::RangeInclusive<i16> = -1..=200;

/// A Kafka error code as the schedule language writes it: its name as Kafka's protocol guide
/// spells it (`NOT_LEADER_OR_FOLLOWER`), or the number when the crate does not know it.
pub fn error_name(code: i16) -> String {
    match ResponseError::try_from_code(code) {
        None => "NONE".to_string(),
        Some(ResponseError::Unknown(code)) => code.to_string(),
        Some(error) => words(&format!("{error:?}"), '_').to_uppercase(),
    }
}

/// An error code from its name (any case) or number; 0 (no error) is refused.
pub fn parse_error_code(text: &str) -> Result<i16, String> {
    let code = match text.parse::<i16>() {
        Ok(code) => code,
        Err(_) => ERROR_CODES
            .filter(|&c| c != 0)
            .find(|&c| error_name(c).eq_ignore_ascii_case(text))
            .ok_or_else(|| {
                format!(
                    "unknown Kafka error {text:?} (a name such as NOT_LEADER_OR_FOLLOWER, \
                     REQUEST_TIMED_OUT, NETWORK_EXCEPTION, or a number)"
                )
            })?,
    };
    match code {
        0 => Err("error code 0 is no error".to_string()),
        code => Ok(code),
    }
}

/// `InitProducerId` → `Init?Producer?Id` with `?` the separator.
fn words(camel: &str, separator: char) -> String {
    let mut out = String::with_capacity(camel.len() + 4);
    for (i, c) in camel.chars().enumerate() {
        if i > 0 && c.is_ascii_uppercase() {
            out.push(separator);
        }
        out.push(c);
    }
    out
}

/// Replaces every error code of a response message (header and body, without the size) to
/// `request` with `code`; everything else is kept, byte for byte (as `rewrite_as` checks).
pub fn replace_errors(request: Request, message: &Bytes, code: i16) -> Rewrite {
    let version = request.api_version;
    match ApiKey::try_from(request.api_key) {
        Ok(ApiKey::Produce) => rewrite_as(
            ApiKey::Produce,
            version,
            message,
            |p: &mut ProduceResponse| {
                let partitions = p
                    .responses
                    .iter_mut()
                    .flat_map(|t| &mut t.partition_responses);
                set_each(partitions.map(|p| &mut p.error_code), code)
            },
        ),
        Ok(ApiKey::Fetch) => {
            rewrite_as(ApiKey::Fetch, version, message, |f: &mut FetchResponse| {
                let partitions = f.responses.iter_mut().flat_map(|t| &mut t.partitions);
                set_each(partitions.map(|p| &mut p.error_code), code)
            })
        }
        Ok(ApiKey::InitProducerId) => rewrite_as(
            ApiKey::InitProducerId,
            version,
            message,
            |i: &mut InitProducerIdResponse| set_each([&mut i.error_code], code),
        ),
        _ => Rewrite::Undecodable(format!(
            "error-response cannot replace the error codes of {} responses",
            api_name(request.api_key)
        )),
    }
}

/// Sets every code to `code`; true if there was any (a response with no partition is left
/// as it is).
fn set_each<'a>(codes: impl IntoIterator<Item = &'a mut i16>, code: i16) -> bool {
    let mut any = false;
    for slot in codes {
        *slot = code;
        any = true;
    }
    any
}
