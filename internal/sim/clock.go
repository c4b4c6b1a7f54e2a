package sim

import "time"

// Clock tells simulated time.
type Clock interface{ Now() time.Time }

// SimClock runs simulated time from Start at Speed times the wall clock, but
// never ahead of the wall clock: carehub rejects timestamps more than
// 5 minutes in the future (contract §1), so a sped-up run starts in the past
// and, once it has caught up, goes on in real time.
type SimClock struct {
	start time.Time
	speed float64
	wall0 time.Time
	wall  func() time.Time
}

// NewSimClock starts a clock at start, running speed times as fast as wall.
func NewSimClock(start time.Time, speed float64, wall func() time.Time) *SimClock {
	return &SimClock{start: start, speed: speed, wall0: wall(), wall: wall}
}

// Now returns the simulated time.
func (c *SimClock) Now() time.Time {
	w := c.wall()
	t := c.start.Add(time.Duration(float64(w.Sub(c.wall0)) * c.speed))
	if t.After(w) {
		return w
	}
	return t
}
