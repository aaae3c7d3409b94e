//! The schedule language's parser: one line's words into an [`Action`], with errors that name
//! what was expected. Printing is [`Action`]'s `Display` (action.rs); every action prints and
//! parses back unchanged.

use std::time::Duration;

use crate::cluster::node::Node;
use crate::cluster::proxy::kafka::faults::{
    api_name, parse_api_key, parse_error_code, replaces_errors, ResponseAction, ResponseFault,
    ERROR_RESPONSE_APIS,
};
use crate::cluster::proxy::Delay;
use crate::cluster::supervisor::KillSignal;
use crate::duration::parse_duration;

use super::action::{
    Action, KafkaLinkSpec, LinkSpec, Member, NetworkPartitionSpec, PowerLossTargets, Target,
    TopicPartition, DEFAULT_WAIT_TIMEOUT,
};

/// Tokens of one step, consumed front to back.
struct Tokens<'a> {
    words: Vec<&'a str>,
    at: usize,
}

impl<'a> Tokens<'a> {
    fn next(&mut self, what: &str) -> Result<&'a str, String> {
        let word = self
            .words
            .get(self.at)
            .ok_or_else(|| format!("expected {what}"))?;
        self.at += 1;
        Ok(word)
    }

    fn peek(&self) -> Option<&'a str> {
        self.words.get(self.at).copied()
    }

    fn take_if(&mut self, word: &str) -> bool {
        if self.peek() == Some(word) {
            self.at += 1;
            true
        } else {
            false
        }
    }

    fn rest(&mut self) -> String {
        let rest = self.words[self.at..].join(" ");
        self.at = self.words.len();
        rest
    }

    fn finish(&self) -> Result<(), String> {
        match self.peek() {
            None => Ok(()),
            Some(extra) => Err(format!("unexpected {extra:?}")),
        }
    }
}

fn parse_target(tokens: &mut Tokens) -> Result<Target, String> {
    let word =
        tokens.next("a target (broker id, controller, service:NAME, leader, follower, random)")?;
    let tp = |tokens: &mut Tokens| -> Result<Option<TopicPartition>, String> {
        match tokens.peek() {
            Some(w) if w.contains('/') => {
                tokens.at += 1;
                w.parse().map(Some)
            }
            _ => Ok(None),
        }
    };
    match word {
        "leader" => Ok(Target::Leader(tp(tokens)?)),
        "follower" => Ok(Target::Follower(tp(tokens)?)),
        "random" => Ok(Target::Random),
        other => other.parse().map(Target::Node),
    }
}

fn parse_all_or_node(tokens: &mut Tokens) -> Result<Option<Node>, String> {
    match tokens.next("a node or `all`")? {
        "all" => Ok(None),
        other => other.parse().map(Some),
    }
}

fn parse_ms(word: &str) -> Result<u64, String> {
    let d = parse_duration(word)?;
    Ok(d.as_millis() as u64)
}

fn parse_delay(tokens: &mut Tokens) -> Result<Action, String> {
    let links = match tokens.next("all, node N or link A->B")? {
        "all" => LinkSpec::All,
        "node" => {
            let word = tokens.next("an endpoint or a role")?;
            // A role may name its partition in the next word: `node leader t/1`.
            let text = match tokens.peek() {
                Some(tp) if tp.contains('/') && ROLE_WORDS.contains(&word) => {
                    tokens.at += 1;
                    format!("{word} {tp}")
                }
                _ => word.to_string(),
            };
            LinkSpec::Touching(parse_member(&text)?)
        }
        "link" => {
            let text = tokens.next("a link A->B")?;
            let (a, b) = text
                .split_once("->")
                .ok_or_else(|| format!("expected a link A->B, got {text:?}"))?;
            LinkSpec::Link(parse_member(a)?, parse_member(b)?)
        }
        other => return Err(format!("expected all, node N or link A->B, got {other:?}")),
    };
    let delay_ms = parse_ms(tokens.next("a delay such as 100ms")?)?;
    let jitter_ms = if tokens.take_if("jitter") {
        parse_ms(tokens.next("a jitter such as 20ms")?)?
    } else {
        0
    };
    let one_way = tokens.take_if("one-way");
    Ok(Action::Delay {
        links,
        delay: Delay {
            delay_ms,
            jitter_ms,
        },
        one_way,
    })
}

/// The words that name a role rather than an endpoint.
const ROLE_WORDS: [&str; 4] = ["leader", "follower", "followers", "others"];

/// One member: `2`, `controller`, `client`, `leader`, `leader t/1`, `follower`, `followers`,
/// `others`.
fn parse_member(text: &str) -> Result<Member, String> {
    let mut words = text.split_whitespace();
    let word = words
        .next()
        .ok_or_else(|| "expected a broker id, controller, client or a role".to_string())?;
    let tp: Option<TopicPartition> = words.next().map(str::parse).transpose()?;
    if let Some(extra) = words.next() {
        return Err(format!("unexpected {extra:?} in {text:?}"));
    }
    let member = match word {
        "leader" => Member::Leader(tp),
        "follower" => Member::Follower(tp),
        "followers" => Member::Followers(tp),
        "others" if tp.is_none() => Member::Others,
        _ if tp.is_some() => return Err(format!("only a role takes a topic/partition: {text:?}")),
        other => Member::Endpoint(other.parse().map_err(|e: String| {
            format!("{e} (or a role: leader, follower, followers, others)")
        })?),
    };
    Ok(member)
}

fn parse_side(text: &str) -> Result<Vec<Member>, String> {
    let side: Vec<Member> = text
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(parse_member)
        .collect::<Result<_, _>>()?;
    if side.is_empty() {
        return Err("a partition side is empty".to_string());
    }
    Ok(side)
}

fn parse_partition(tokens: &mut Tokens) -> Result<Action, String> {
    let spec = match tokens.next("isolate, halves, bridge, one-way or groups")? {
        "isolate" => NetworkPartitionSpec::Isolate(parse_target(tokens)?),
        "halves" => NetworkPartitionSpec::Halves,
        "bridge" => NetworkPartitionSpec::Bridge,
        "one-way" if tokens.peek() == Some("random") => {
            tokens.at += 1;
            NetworkPartitionSpec::OneWayRandom
        }
        "one-way" => {
            let rest = tokens.rest();
            let (from, to) = rest
                .split_once("->")
                .ok_or_else(|| format!("expected one-way A,B -> C,D, got {rest:?}"))?;
            NetworkPartitionSpec::OneWay {
                from: parse_side(from)?,
                to: parse_side(to)?,
            }
        }
        "groups" => {
            let rest = tokens.rest();
            let groups: Vec<Vec<Member>> =
                rest.split('|').map(parse_side).collect::<Result<_, _>>()?;
            if groups.len() < 2 {
                return Err("a partition needs at least two groups (A | B)".to_string());
            }
            NetworkPartitionSpec::Groups(groups)
        }
        other => return Err(format!("unknown partition {other:?}")),
    };
    Ok(Action::NetworkPartition(spec))
}

/// `power-loss all`, `power-loss leader`, `power-loss follower t/1`, `power-loss 1,3`.
fn parse_power_loss(tokens: &mut Tokens) -> Result<Action, String> {
    let rest = tokens.rest();
    if rest.is_empty() {
        return Err("expected `all` or targets (broker ids, leader, follower, random)".into());
    }
    if rest == "all" {
        return Ok(Action::PowerLoss(PowerLossTargets::All));
    }
    let mut targets = Vec::new();
    for part in rest.split(',').map(str::trim) {
        let mut words = Tokens {
            words: part.split_whitespace().collect(),
            at: 0,
        };
        let target = parse_target(&mut words)?;
        words.finish()?;
        if let Target::Node(node @ (Node::Controller | Node::Service(_))) = target {
            return Err(format!(
                "power-loss aims at brokers ({node} is not on a lazy mount)"
            ));
        }
        targets.push(target);
    }
    Ok(Action::PowerLoss(PowerLossTargets::Some(targets)))
}

/// `drop-response API on LINKS [count K]`, `delay-response API D on LINKS [count K]`,
/// `error-response API CODE on LINKS [count K]`; `word` is the action's first word.
fn parse_response(word: &str, tokens: &mut Tokens) -> Result<Action, String> {
    let api_key = parse_api_key(tokens.next("an API key (produce, fetch, ... or a number)")?)?;
    let action = match word {
        "drop-response" => ResponseAction::Drop,
        "delay-response" => {
            let delay_ms = parse_ms(tokens.next("a delay such as 500ms")?)?;
            if delay_ms == 0 {
                return Err(
                    "a delay-response of 0ms holds nothing (pass-response removes one)".into(),
                );
            }
            ResponseAction::Delay { delay_ms }
        }
        _ => {
            let code = parse_error_code(tokens.next("a Kafka error name or code")?)?;
            if !replaces_errors(api_key) {
                let supported: Vec<String> = ERROR_RESPONSE_APIS
                    .iter()
                    .map(|k| api_name(*k as i16))
                    .collect();
                return Err(format!(
                    "error-response cannot replace the error codes of {} responses \
                     (supported: {})",
                    api_name(api_key),
                    supported.join(", ")
                ));
            }
            ResponseAction::Error { code }
        }
    };
    let on = parse_kafka_links(tokens)?;
    let count = match tokens.take_if("count") {
        true => {
            let count = tokens.next("a count of responses")?;
            match count.parse::<u32>() {
                Ok(0) | Err(_) => {
                    return Err(format!("expected a count of at least 1, got {count:?}"))
                }
                Ok(n) => Some(n),
            }
        }
        false => None,
    };
    Ok(Action::Response {
        fault: ResponseFault {
            api_key,
            action,
            count,
        },
        on,
    })
}

/// `pass-response API on LINKS`.
fn parse_pass_response(tokens: &mut Tokens) -> Result<Action, String> {
    let api_key = parse_api_key(tokens.next("an API key (produce, fetch, ... or a number)")?)?;
    let on = parse_kafka_links(tokens)?;
    Ok(Action::PassResponse { api_key, on })
}

/// `on all`, or `on TARGET` (a broker id, `leader [t/p]`, `follower [t/p]`, `random`): the
/// Kafka links to it.
fn parse_kafka_links(tokens: &mut Tokens) -> Result<KafkaLinkSpec, String> {
    let what = "`on all` or `on TARGET` (the Kafka links a message fault acts on)";
    if !tokens.take_if("on") {
        return Err(match tokens.peek() {
            Some(other) => format!("expected {what}, got {other:?}"),
            None => format!("expected {what}"),
        });
    }
    if tokens.take_if("all") {
        return Ok(KafkaLinkSpec::All);
    }
    match parse_target(tokens)? {
        Target::Node(node @ (Node::Controller | Node::Service(_))) => Err(format!(
            "message faults act on the clients' Kafka links to brokers; {node} has none"
        )),
        target => Ok(KafkaLinkSpec::To(target)),
    }
}

fn parse_on(tokens: &mut Tokens) -> Result<Option<TopicPartition>, String> {
    if tokens.take_if("on") {
        return tokens.next("topic/partition")?.parse().map(Some);
    }
    Ok(None)
}

fn parse_timeout(tokens: &mut Tokens) -> Result<Duration, String> {
    if tokens.take_if("timeout") {
        return parse_duration(tokens.next("a timeout")?);
    }
    Ok(DEFAULT_WAIT_TIMEOUT)
}

fn parse_wait(tokens: &mut Tokens) -> Result<Action, String> {
    let word = tokens.next("a duration, `leader N` or `isr K`")?;
    match word {
        "leader" => {
            let node = match tokens.next("a broker id or `new`")? {
                "new" => None,
                node => Some(
                    node.parse()
                        .map_err(|_| format!("expected a broker id or `new`, got {node:?}"))?,
                ),
            };
            let on = parse_on(tokens)?;
            let timeout = parse_timeout(tokens)?;
            Ok(Action::WaitLeader { node, on, timeout })
        }
        "isr" => {
            let size = tokens.next("an ISR size")?;
            let size = size
                .parse()
                .map_err(|_| format!("expected an ISR size, got {size:?}"))?;
            let on = parse_on(tokens)?;
            let timeout = parse_timeout(tokens)?;
            Ok(Action::WaitIsr { size, on, timeout })
        }
        duration => Ok(Action::Wait(parse_duration(duration)?)),
    }
}

fn parse_produce(tokens: &mut Tokens) -> Result<Action, String> {
    let count = tokens.next("a record count")?;
    let count = count
        .parse()
        .map_err(|_| format!("expected a record count, got {count:?}"))?;
    let mut acks = None;
    let mut to = None;
    while let Some(word) = tokens.peek() {
        tokens.at += 1;
        match word {
            "acks" => acks = Some(tokens.next("0, 1 or all")?.parse()?),
            "to" => to = Some(tokens.next("topic/partition")?.parse()?),
            other => return Err(format!("unexpected {other:?}")),
        }
    }
    Ok(Action::Produce { count, acks, to })
}

impl std::str::FromStr for Action {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, String> {
        let mut tokens = Tokens {
            words: text.split_whitespace().collect(),
            at: 0,
        };
        let action = match tokens.next("an action")? {
            "kill" => {
                let target = parse_target(&mut tokens)?;
                let signal = match tokens.peek() {
                    Some(word) => {
                        tokens.at += 1;
                        word.parse()?
                    }
                    None => KillSignal::Kill,
                };
                Action::Kill { target, signal }
            }
            "start" => Action::Start {
                node: parse_all_or_node(&mut tokens)?,
            },
            "pause" => Action::Pause {
                target: parse_target(&mut tokens)?,
            },
            "resume" => Action::Resume {
                node: parse_all_or_node(&mut tokens)?,
            },
            "delay" => parse_delay(&mut tokens)?,
            "partition" => parse_partition(&mut tokens)?,
            "heal" => Action::Heal,
            "power-loss" => parse_power_loss(&mut tokens)?,
            word @ ("drop-response" | "delay-response" | "error-response") => {
                parse_response(word, &mut tokens)?
            }
            "pass-response" => parse_pass_response(&mut tokens)?,
            "produce" => parse_produce(&mut tokens)?,
            "wait" => parse_wait(&mut tokens)?,
            other => return Err(format!("unknown action {other:?}")),
        };
        tokens.finish()?;
        Ok(action)
    }
}
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_faults_read_api_keys_and_error_codes_by_name_or_number() {
        let parsed: Action = "error-response 0 not_leader_or_follower on LEADER count 2"
            .to_lowercase()
            .parse()
            .unwrap();
        assert_eq!(
            parsed,
            Action::Response {
                fault: ResponseFault {
                    api_key: 0,
                    action: ResponseAction::Error { code: 6 },
                    count: Some(2),
                },
                on: KafkaLinkSpec::To(Target::Leader(None)),
            }
        );
        assert_eq!(
            parsed.to_string(),
            "error-response produce NOT_LEADER_OR_FOLLOWER on leader count 2"
        );
        for (name, code) in [
            ("REQUEST_TIMED_OUT", 7),
            ("NETWORK_EXCEPTION", 13),
            ("NOT_ENOUGH_REPLICAS_AFTER_APPEND", 20),
            ("UNKNOWN_SERVER_ERROR", -1),
            ("-1", -1),
        ] {
            assert_eq!(parse_error_code(name), Ok(code), "{name}");
        }
        assert_eq!(parse_api_key("InIt-PrOdUcEr-Id"), Ok(22));
        assert_eq!(parse_api_key("metadata"), Ok(3));
    }

    #[test]
    fn actions_print_and_parse_back() {
        let lines = [
            "kill 2",
            "kill leader t/0 term",
            "kill controller",
            "start all",
            "start 3",
            "pause follower",
            "resume all",
            "delay all 100ms jitter 20ms",
            "delay node 2 50ms",
            "delay link 1->2 0ms",
            "partition isolate leader",
            "partition halves",
            "partition bridge",
            "partition one-way random",
            "partition groups 1 | 2,3,controller",
            "partition one-way 1 -> 2,3,client",
            "partition groups leader | followers",
            "partition groups leader t/1 | followers t/1,controller",
            "partition one-way leader -> others",
            "partition groups 1,controller | others",
            "delay node leader t/0 100ms",
            "delay link leader->follower 50ms jitter 10ms",
            "delay link follower->leader 3000ms one-way",
            "heal",
            "power-loss all",
            "power-loss leader",
            "power-loss follower t/1",
            "power-loss 1,3",
            "power-loss leader t/0,random",
            "produce 10 acks 1 to t/0",
            "wait 1500ms",
            "wait leader 2 on t/0 timeout 10s",
            "wait leader new timeout 10s",
            "wait isr 3 timeout 30s",
            "drop-response produce on leader count 1",
            "drop-response produce on leader t/1",
            "delay-response produce 500ms on 2",
            "delay-response metadata 2000ms on all count 2",
            "error-response produce NOT_LEADER_OR_FOLLOWER on all count 3",
            "error-response fetch REQUEST_TIMED_OUT on follower t/0",
            "error-response init-producer-id NETWORK_EXCEPTION on random",
            "error-response produce 999 on 3",
            "drop-response 200 on 1",
            "pass-response produce on 2",
            "pass-response init-producer-id on all",
        ];
        for line in lines {
            let action: Action = line.parse().unwrap_or_else(|e| panic!("{line}: {e}"));
            assert_eq!(action.to_string(), line);
        }
    }

    #[test]
    fn bad_steps_name_the_problem() {
        for (line, needle) in [
            ("explode 2", "unknown action"),
            ("kill", "expected a target"),
            ("kill two", "broker id"),
            ("delay all fast", "bad duration"),
            ("partition groups 1", "two groups"),
            ("partition groups leader | 9x", "or a role"),
            ("partition groups 2 t/0 | 3", "only a role takes"),
            ("produce 3 acks 2", "acks must be"),
            ("heal now", "unexpected"),
            ("power-loss", "expected `all` or targets"),
            ("power-loss controller", "aims at brokers"),
            ("power-loss 1,x", "broker id"),
            ("drop-response", "expected an API key"),
            ("drop-response produce", "expected `on all` or `on TARGET`"),
            ("drop-response produce leader", "got \"leader\""),
            ("drop-response produce on", "expected a target"),
            ("drop-response produce on controller", "controller has none"),
            ("drop-response produce on service:db", "service:db has none"),
            ("power-loss service:db", "service:db is not on a lazy mount"),
            ("kill service:", "service name"),
            ("drop-response produce on two", "broker id"),
            ("drop-response produce on all count 0", "at least 1"),
            ("drop-response produce on all count many", "at least 1"),
            ("drop-response produce on all count", "a count of responses"),
            ("drop-response produce on all now", "unexpected"),
            (
                "drop-response publish on all",
                "unknown API key \"publish\"",
            ),
            ("drop-response -1 on all", "not negative"),
            ("delay-response produce on 1", "bad duration"),
            ("delay-response produce 0ms on 1", "holds nothing"),
            (
                "error-response produce on all",
                "unknown Kafka error \"on\"",
            ),
            (
                "error-response produce NOT_A_CODE on all",
                "unknown Kafka error",
            ),
            ("error-response produce 0 on all", "0 is no error"),
            (
                "error-response metadata 6 on all",
                "cannot replace the error codes of metadata",
            ),
            (
                "error-response list-offsets 6 on all",
                "supported: produce, fetch, init-producer-id",
            ),
            ("pass-response on 2", "unknown API key \"on\""),
            ("pass-response produce on 2 count 1", "unexpected"),
        ] {
            let error = line.parse::<Action>().unwrap_err();
            assert!(error.contains(needle), "{line}: {error}");
        }
    }
}
