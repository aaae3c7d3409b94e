//! The test layer: one run of `faultline test`. `options` is the run's description (asked for
//! as a `TestRequest`, validated into `TestOptions`, printed back as arguments), `error` the
//! exit-code taxonomy, `store` the run's directory, `run` its phases, and `observer` what the
//! run tells whoever watches it. It uses the nemesis and cluster layers and knows nothing of
//! jobs or the UI.

pub mod error;
pub mod observer;
pub mod options;
pub mod run;
pub mod store;
