package upstream

import (
	"slices"
)

// SetMembers records the brokers of the latest metadata kproxy fetched
// itself (node id → address), which Seeds offers after the configured
// seeds, and returns the node ids that were members before and are not
// any more. The first call removes nothing.
func (b *Brokers) SetMembers(members map[int32]string) (removed []int32) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for id := range b.members {
		if _, ok := members[id]; !ok {
			removed = append(removed, id)
		}
	}
	b.members = make(map[int32]string, len(members))
	for id, addr := range members {
		b.members[id] = addr
		b.addrs[id] = addr
	}
	slices.Sort(removed)
	return removed
}

// otherAddrs returns the addresses of brokers that are not seeds: first
// the members of the latest metadata kproxy fetched, then brokers learned
// from clients' answers since, each group by node id. Called with b.mu
// held.
func (b *Brokers) otherAddrs() []string {
	var out []string
	for _, table := range []map[int32]string{b.members, b.addrs} {
		ids := make([]int32, 0, len(table))
		for id := range table {
			ids = append(ids, id)
		}
		slices.Sort(ids)
		for _, id := range ids {
			if addr := table[id]; !slices.Contains(b.seeds, addr) && !slices.Contains(out, addr) {
				out = append(out, addr)
			}
		}
	}
	return out
}

// Current reports whether addr is a broker of the cluster as far as kproxy
// knows: a member of the latest metadata, or a seed that is not the
// address of a broker that has left.
func (b *Brokers) Current(addr string) bool {
	b.mu.RLock()
	defer b.mu.RUnlock()
	for _, a := range b.members {
		if a == addr {
			return true
		}
	}
	return slices.Contains(b.seeds, addr) && !b.departed(addr)
}

// departed reports whether addr is the address of a broker that is not in
// the latest metadata (and no member's). Called with b.mu held.
func (b *Brokers) departed(addr string) bool {
	if b.members == nil {
		return false // no metadata of kproxy's own yet
	}
	for _, a := range b.members {
		if a == addr {
			return false
		}
	}
	for id, a := range b.addrs {
		if _, member := b.members[id]; a == addr && !member {
			return true
		}
	}
	return false
}

// ForgetAuthFailures drops the TLS or SASL failures of brokers for which
// keep is false (brokers that left the cluster), so that readiness is not
// held by a broker that is gone.
func (d *Dialer) ForgetAuthFailures(keep func(addr string) bool) {
	d.status.mu.Lock()
	defer d.status.mu.Unlock()
	for addr := range d.status.failing {
		if !keep(addr) {
			delete(d.status.failing, addr)
		}
	}
	d.status.last = nil
	for _, err := range d.status.failing {
		d.status.last = err
		break
	}
}
