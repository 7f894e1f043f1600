//! The one protocol of asynchronous replies. `update` starts a request with a ticket (its
//! kind and a generation), puts the generation in the `Cmd`, and the effect's reply carries
//! it back. A reply whose generation is not the kind's current one is stale and dropped.
//! One request of a kind runs at a time: a newer one supersedes it (the effect cancels the
//! older one's `CancellationToken`), and when the view that waits for a reply closes,
//! `update` emits `Cmd::Cancel` so its reader stops.

use std::collections::HashMap;

/// The kinds of asynchronous replies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Req {
    /// The CSV preview's rows.
    Preview,
    /// The diff of two exports.
    Diff,
    /// A whole-file log search.
    Search,
    /// The lines around an opened search match.
    Context,
    /// A release's details.
    Release,
    /// The run history.
    History,
}

/// The requests in flight: for each kind, its current generation and what it is for (a
/// release id).
#[derive(Debug, Clone, Default)]
pub struct Requests {
    next: u64,
    in_flight: HashMap<Req, (u64, Option<i64>)>,
    /// Kinds to ask again once the reply in flight is in (its input changed meanwhile).
    again: std::collections::HashSet<Req>,
}

impl Requests {
    /// Starts a request of `kind`, superseding the one in flight; its generation.
    pub fn start(&mut self, kind: Req) -> u64 {
        self.start_for(kind, None)
    }

    /// Starts a request of `kind` for `key` (a release id).
    pub fn start_for(&mut self, kind: Req, key: Option<i64>) -> u64 {
        self.next += 1;
        self.in_flight.insert(kind, (self.next, key));
        // A new request reads the inputs as they are now.
        self.again.remove(&kind);
        self.next
    }

    /// The generation in flight for `kind`.
    pub fn current(&self, kind: Req) -> Option<u64> {
        self.in_flight.get(&kind).map(|&(g, _)| g)
    }

    /// True while a request of `kind` for `key` is in flight.
    pub fn in_flight_for(&self, kind: Req, key: i64) -> bool {
        self.in_flight
            .get(&kind)
            .is_some_and(|&(_, k)| k == Some(key))
    }

    /// A reply arrived: true when it is the current one (then it is applied). With
    /// `last`, the request is over.
    pub fn reply(&mut self, kind: Req, generation: u64, last: bool) -> bool {
        let current = self.current(kind) == Some(generation);
        if current && last {
            self.in_flight.remove(&kind);
        }
        current
    }

    /// Asks for `kind` again once the reply in flight arrives.
    pub fn again(&mut self, kind: Req) {
        self.again.insert(kind);
    }

    /// Whether `kind` was to be asked again (and no longer is).
    pub fn take_again(&mut self, kind: Req) -> bool {
        self.again.remove(&kind)
    }

    /// Forgets the request of `kind` (its view closed); true when one was in flight.
    pub fn forget(&mut self, kind: Req) -> bool {
        self.in_flight.remove(&kind).is_some()
    }
}
