//! The reference path, kept as the oracle of the single-pass one (issue 15): tests switch a
//! thread into it and check that both paths give the same bytes. It inflates gzip with flate2
//! alone rather than with libdeflate first (`envelope::one_member`), reads subscription
//! messages with sonic-rs rather than by hand (`envelope::usual_message`), and audit events
//! with the strict check and serde_json rather than `single_pass`. Compiled only for tests and
//! under the `oracle` feature, never in a deployed build.

use std::cell::Cell;

thread_local! {
    static ON: Cell<bool> = const { Cell::new(false) };
}

/// Whether this thread runs the reference path.
pub(crate) fn on() -> bool {
    ON.with(Cell::get)
}

/// Runs `f` on this thread with the reference path instead of the single-pass one.
pub fn with_reference<T>(f: impl FnOnce() -> T) -> T {
    struct Reset(bool);
    impl Drop for Reset {
        fn drop(&mut self) {
            ON.with(|on| on.set(self.0));
        }
    }
    let _reset = Reset(ON.with(|on| on.replace(true)));
    f()
}
