//! Bytes loaded once and kept within a byte budget, oldest out first: the store behind pack
//! windows (`packcache.rs`) and tree packs (`treepacks.rs`). Threads wanting the same key wait
//! for the one loading it; a failed load is remembered as `None` until the key is evicted or
//! forgotten.

use std::collections::{HashMap, VecDeque};
use std::hash::Hash;
use std::sync::{Arc, Mutex, OnceLock};

use bytes::Bytes;

type Slot = Arc<OnceLock<Option<Bytes>>>;

pub(crate) struct BudgetStore<K> {
    budget: usize,
    state: Mutex<State<K>>,
}

struct State<K> {
    slots: HashMap<K, Slot>,
    order: VecDeque<(K, usize)>,
    bytes: usize,
}

impl<K: Hash + Eq + Clone> BudgetStore<K> {
    pub fn new(budget: usize) -> Self {
        BudgetStore {
            budget,
            state: Mutex::new(State {
                slots: HashMap::new(),
                order: VecDeque::new(),
                bytes: 0,
            }),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State<K>> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The bytes of `key`, loaded with `load` by the first thread to ask.
    pub fn get(&self, key: &K, load: impl FnOnce() -> Option<Bytes>) -> Option<Bytes> {
        let slot = self.state().slots.entry(key.clone()).or_default().clone();
        let mut loaded = 0;
        let bytes = slot.get_or_init(|| {
            let b = load()?;
            loaded = b.len();
            Some(b)
        });
        if loaded > 0 {
            self.account(key.clone(), loaded);
        }
        bytes.clone()
    }

    /// Counts loaded bytes and lets the oldest go past the budget.
    fn account(&self, key: K, len: usize) {
        let mut st = self.state();
        st.bytes += len;
        st.order.push_back((key, len));
        while st.bytes > self.budget {
            let Some((old, n)) = st.order.pop_front() else {
                break;
            };
            st.slots.remove(&old);
            st.bytes -= n;
        }
    }

    /// Drops `key` (its bytes proved bad); the next `get` loads it again.
    pub fn forget(&self, key: &K) {
        self.state().slots.remove(key);
    }

    /// Keys held.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.state().slots.len()
    }
}
