package checkout

// PlacementWaiters is how many requests of this process wait for the
// placement of a checkout: none once every request has had its answer or
// given up.
func (c *Checkout) PlacementWaiters() int {
	c.placements.mu.Lock()
	defer c.placements.mu.Unlock()
	n := 0
	for _, waiters := range c.placements.waiting {
		n += len(waiters)
	}
	return n
}
