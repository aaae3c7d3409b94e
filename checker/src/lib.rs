//! faultline-checker: the history model written by the harness and read back here, and the
//! pure analysis that decides whether a stored run kept its guarantee. It reads the files it is
//! given; it starts no process and opens no socket.

pub mod history;
