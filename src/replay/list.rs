//! A byte-bounded LRU list over `u64` keys, in a slab (no allocation per access): the building
//! block of the LRU and W-TinyLFU simulations.

use std::collections::HashMap;

const NIL: usize = usize::MAX;

struct Node {
    /// Its key, to drop from the map when the node goes.
    key: u64,
    /// Its size in bytes, taken off `bytes` when it goes.
    size: u64,
    /// The slot of the next more recently used node (`NIL` at the head).
    prev: usize,
    /// The slot of the next less recently used node (`NIL` at the tail).
    next: usize,
}

/// Most recently used at the head, least at the tail.
#[derive(Default)]
pub(crate) struct LruList {
    /// The slab: every node, live or free, by slot.
    nodes: Vec<Node>,
    /// Slots of removed nodes, reused before the slab grows.
    free: Vec<usize>,
    /// Each key's slot, for `touch` and `remove`.
    map: HashMap<u64, usize>,
    /// The most recently used slot (`NIL` when empty).
    head: usize,
    /// The least recently used slot (`NIL` when empty): what `pop_back` takes.
    tail: usize,
    /// Total size of what the list holds, which callers keep within their capacity.
    pub(crate) bytes: u64,
}

impl LruList {
    pub(crate) fn new() -> Self {
        Self {
            head: NIL,
            tail: NIL,
            ..Default::default()
        }
    }

    fn unlink(&mut self, i: usize) {
        let (p, n) = (self.nodes[i].prev, self.nodes[i].next);
        if p == NIL {
            self.head = n
        } else {
            self.nodes[p].next = n
        }
        if n == NIL {
            self.tail = p
        } else {
            self.nodes[n].prev = p
        }
    }

    fn link_front(&mut self, i: usize) {
        self.nodes[i].prev = NIL;
        self.nodes[i].next = self.head;
        if self.head != NIL {
            self.nodes[self.head].prev = i;
        }
        self.head = i;
        if self.tail == NIL {
            self.tail = i;
        }
    }

    /// Moves `key` to the head; false if absent.
    pub(crate) fn touch(&mut self, key: u64) -> bool {
        let Some(&i) = self.map.get(&key) else {
            return false;
        };
        self.unlink(i);
        self.link_front(i);
        true
    }

    pub(crate) fn push_front(&mut self, key: u64, size: u64) {
        let node = Node {
            key,
            size,
            prev: NIL,
            next: NIL,
        };
        let i = match self.free.pop() {
            Some(i) => {
                self.nodes[i] = node;
                i
            }
            None => {
                self.nodes.push(node);
                self.nodes.len() - 1
            }
        };
        self.map.insert(key, i);
        self.link_front(i);
        self.bytes += size;
    }

    /// Removes and returns the least recently used entry.
    pub(crate) fn pop_back(&mut self) -> Option<(u64, u64)> {
        let i = self.tail;
        if i == NIL {
            return None;
        }
        Some(self.remove_at(i))
    }

    pub(crate) fn remove(&mut self, key: u64) -> Option<(u64, u64)> {
        let i = *self.map.get(&key)?;
        Some(self.remove_at(i))
    }

    fn remove_at(&mut self, i: usize) -> (u64, u64) {
        self.unlink(i);
        let (key, size) = (self.nodes[i].key, self.nodes[i].size);
        self.map.remove(&key);
        self.free.push(i);
        self.bytes -= size;
        (key, size)
    }

    /// The least recently used key, without removing it.
    pub(crate) fn back(&self) -> Option<u64> {
        (self.tail != NIL).then(|| self.nodes[self.tail].key)
    }
}
