package store

import "sync"

// identityCacheSize bounds the identity keys order-ingest remembers: the
// two keys of each of the 130,000 or more customers seen last, in about
// 50 MB at most (the bound was a million keys, 150 MB). A key not
// remembered costs its batch a share of one more query, not a wrong
// answer.
const identityCacheSize = 1 << 19

// identityCache remembers key → customer links. Links never change once
// made, so a cached link is always right; the cache only saves reads.
//
// Keys are held as the 33 bytes they encode (their kind and HMAC digest)
// rather than as 66-character strings: about 100 bytes a link instead of
// 150, which for a shop of 100,000 customers is 20 MB instead of 30. Two
// generations bound it: new links go into the current one, which becomes
// the old one when it holds half the bound, the old one being dropped; a
// link found in the old generation moves to the current one, so the links
// in use stay.
type identityCache struct {
	mu       sync.Mutex
	max      int
	cur, old map[packedKey]string
}

// packedKey is an identity key ("p:" or "e:" and 64 lower-case hex
// digits) as its kind letter and the 32 bytes the digits spell.
type packedKey [33]byte

func newIdentityCache(max int) *identityCache {
	return &identityCache{max: max, cur: map[packedKey]string{}}
}

func (c *identityCache) get(k string) (string, bool) {
	pk, ok := packKey(k)
	if !ok {
		return "", false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if v, ok := c.cur[pk]; ok {
		return v, true
	}
	v, ok := c.old[pk]
	if ok {
		c.put(pk, v)
	}
	return v, ok
}

func (c *identityCache) addAll(links map[string]string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for k, v := range links {
		if pk, ok := packKey(k); ok {
			c.put(pk, v)
		}
	}
}

// put adds a link to the current generation, first starting a new one
// when the current holds half the bound.
func (c *identityCache) put(pk packedKey, v string) {
	if len(c.cur) >= c.max/2 {
		c.old, c.cur = c.cur, map[packedKey]string{}
	}
	c.cur[pk] = v
}

// size is the number of links remembered.
func (c *identityCache) size() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.cur) + len(c.old)
}

// packKey packs an identity key; a key of any other form is not cached.
// Upper-case digits are refused so that two keys never pack alike.
func packKey(k string) (packedKey, bool) {
	var pk packedKey
	if len(k) != 2+2*32 || k[1] != ':' {
		return pk, false
	}
	pk[0] = k[0]
	for i := range 32 {
		hi, ok1 := hexDigit(k[2+2*i])
		lo, ok2 := hexDigit(k[3+2*i])
		if !ok1 || !ok2 {
			return pk, false
		}
		pk[1+i] = hi<<4 | lo
	}
	return pk, true
}

func hexDigit(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	}
	return 0, false
}
