//! Ordered parallel map with bounded memory: workers compute items out of order, the caller
//! consumes results in order, and at most `window` results are in flight.

use std::collections::BTreeMap;
use std::sync::{Condvar, Mutex};

struct State<R> {
    next: usize,
    consumed: usize,
    done: BTreeMap<usize, R>,
    stop: bool,
}

/// Runs `f(i)` for `i in 0..n` on `threads` threads and calls `sink(i, result)` in order of
/// `i`. Stops early, returning the error, when `sink` fails.
pub fn ordered_map<R: Send, E>(
    n: usize,
    threads: usize,
    window: usize,
    f: impl Fn(usize) -> R + Sync,
    mut sink: impl FnMut(usize, R) -> Result<(), E>,
) -> Result<(), E> {
    let window = window.max(1);
    let state = Mutex::new(State {
        next: 0,
        consumed: 0,
        done: BTreeMap::new(),
        stop: false,
    });
    let cv = Condvar::new();
    let lock = || state.lock().unwrap_or_else(|e| e.into_inner());
    std::thread::scope(|s| {
        for _ in 0..threads.max(1).min(n.max(1)) {
            s.spawn(|| loop {
                let i = {
                    let mut st = lock();
                    while !st.stop && st.next < n && st.next >= st.consumed + window {
                        st = cv.wait(st).unwrap_or_else(|e| e.into_inner());
                    }
                    if st.stop || st.next >= n {
                        return;
                    }
                    st.next += 1;
                    st.next - 1
                };
                let r = f(i);
                lock().done.insert(i, r);
                cv.notify_all();
            });
        }
        let mut result = Ok(());
        for i in 0..n {
            let r = {
                let mut st = lock();
                loop {
                    if let Some(r) = st.done.remove(&i) {
                        st.consumed = i + 1;
                        break r;
                    }
                    st = cv.wait(st).unwrap_or_else(|e| e.into_inner());
                }
            };
            cv.notify_all();
            if let Err(e) = sink(i, r) {
                result = Err(e);
                break;
            }
        }
        lock().stop = true;
        cv.notify_all();
        result
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn in_order_and_stops_on_error() {
        let mut got = Vec::new();
        super::ordered_map(
            1000,
            4,
            8,
            |i| i * 2,
            |i, r| {
                got.push((i, r));
                Ok::<_, ()>(())
            },
        )
        .unwrap();
        assert_eq!(got, (0..1000).map(|i| (i, i * 2)).collect::<Vec<_>>());
        let r = super::ordered_map(
            1000,
            4,
            8,
            |i| i,
            |i, _| if i == 10 { Err(i) } else { Ok(()) },
        );
        assert_eq!(r, Err(10));
    }
}
