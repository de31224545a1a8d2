//! Opaque C handles backed by generation-checked tables instead of raw
//! pointers, so that a handle used after it was released (a double release,
//! a stream used after removal) is detected and answered with
//! `WRD_ERR_INVALID_STATE` rather than corrupting memory.
//!
//! A handle is `(generation << 32) | (index + 1)` cast to a pointer: never
//! NULL, and never valid again once its slot is freed.

use parking_lot::Mutex;

struct Slot<T> {
    generation: u32,
    value: Option<T>,
}

/// A table of `T` addressed by opaque handles.
pub struct HandleTable<T> {
    slots: Mutex<(Vec<Slot<T>>, Vec<usize>)>,
}

impl<T: Clone> HandleTable<T> {
    pub const fn new() -> Self {
        HandleTable {
            slots: Mutex::new((Vec::new(), Vec::new())),
        }
    }

    fn encode(index: usize, generation: u32) -> usize {
        ((generation as usize) << 32) | (index + 1)
    }

    fn decode(handle: usize) -> Option<(usize, u32)> {
        let index = handle & 0xffff_ffff;
        (index != 0).then(|| (index - 1, (handle >> 32) as u32))
    }

    /// Store a value; returns its handle.
    pub fn insert(&self, value: T) -> usize {
        let mut g = self.slots.lock();
        let (slots, free) = &mut *g;
        if let Some(i) = free.pop() {
            let s = &mut slots[i];
            s.generation = s.generation.wrapping_add(1);
            s.value = Some(value);
            Self::encode(i, s.generation)
        } else {
            slots.push(Slot {
                generation: 1,
                value: Some(value),
            });
            Self::encode(slots.len() - 1, 1)
        }
    }

    /// A clone of the value behind a live handle.
    pub fn get(&self, handle: usize) -> Option<T> {
        let (i, gen) = Self::decode(handle)?;
        let g = self.slots.lock();
        let s = g.0.get(i)?;
        (s.generation == gen).then(|| s.value.clone()).flatten()
    }

    /// Take the value out and free the handle.
    pub fn remove(&self, handle: usize) -> Option<T> {
        let (i, gen) = Self::decode(handle)?;
        let mut g = self.slots.lock();
        let (slots, free) = &mut *g;
        let s = slots.get_mut(i)?;
        if s.generation != gen {
            return None;
        }
        let v = s.value.take();
        if v.is_some() {
            free.push(i);
        }
        v
    }

    /// Number of live handles.
    pub fn len(&self) -> usize {
        let g = self.slots.lock();
        g.0.len() - g.1.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl<T: Clone> Default for HandleTable<T> {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stale_handles_are_rejected() {
        let t = HandleTable::<u32>::new();
        let a = t.insert(7);
        assert_eq!(t.get(a), Some(7));
        assert_eq!(t.remove(a), Some(7));
        assert_eq!(t.remove(a), None, "double release");
        let b = t.insert(8);
        assert_ne!(a, b, "a recycled slot gets a new generation");
        assert_eq!(t.get(a), None);
        assert_eq!(t.get(b), Some(8));
        assert_eq!(t.get(0), None);
        assert_eq!(t.get(usize::MAX), None);
        assert_eq!(t.len(), 1);
    }
}
