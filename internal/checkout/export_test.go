package checkout

// PlacementWaiters is how many checkouts the requests of this process wait
// for the placement of: none once every request has had its answer.
func (c *Checkout) PlacementWaiters() int {
	c.placements.mu.Lock()
	defer c.placements.mu.Unlock()
	return len(c.placements.waiting)
}
