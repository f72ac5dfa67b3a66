package serve

import (
	"container/list"
	"sync"
)

// lru is a map bounded by the bytes its values claim, evicting the least
// recently used. onEvict, when set, is called (with the lock held, so it
// must be quick and must not call back) for every entry pushed out or
// removed.
type lru struct {
	mu      sync.Mutex
	max     int64
	bytes   int64
	ll      *list.List // front: most recent
	items   map[string]*list.Element
	onEvict func(key string, value any)
}

type lruEntry struct {
	key   string
	value any
	size  int64
}

func newLRU(max int64) *lru {
	return &lru{max: max, ll: list.New(), items: map[string]*list.Element{}}
}

// get returns the value under key and marks it recently used.
func (c *lru) get(key string) (any, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	el, ok := c.items[key]
	if !ok {
		return nil, false
	}
	c.ll.MoveToFront(el)
	return el.Value.(*lruEntry).value, true
}

// add stores value under key with its size, evicting the least recently
// used entries while the total is over the bound. A value larger than the
// whole bound is not stored (false).
func (c *lru) add(key string, value any, size int64) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if size > c.max {
		return false
	}
	if el, ok := c.items[key]; ok {
		e := el.Value.(*lruEntry)
		c.bytes += size - e.size
		e.value, e.size = value, size
		c.ll.MoveToFront(el)
	} else {
		c.items[key] = c.ll.PushFront(&lruEntry{key, value, size})
		c.bytes += size
	}
	for c.bytes > c.max {
		c.removeElement(c.ll.Back())
	}
	return true
}

// remove drops key.
func (c *lru) remove(key string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.items[key]; ok {
		c.removeElement(el)
	}
}

func (c *lru) removeElement(el *list.Element) {
	e := el.Value.(*lruEntry)
	c.ll.Remove(el)
	delete(c.items, e.key)
	c.bytes -= e.size
	if c.onEvict != nil {
		c.onEvict(e.key, e.value)
	}
}

// stats returns the entry count and bytes held.
func (c *lru) stats() (n int, bytes int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.ll.Len(), c.bytes
}
