package engine

import (
	"container/heap"
	"time"
)

// scheduled is something the interface's loop wakes up when it is due.
type scheduled interface {
	nextWake() time.Time
	onTick(now time.Time)
	queueSlot() *int // its index in the wakeQueue, kept by the queue
}

// pacer is a token bucket for bursts of frames.
type pacer struct {
	rate   float64 // tokens per second
	burst  float64
	tokens float64
	at     time.Time
}

func (p *pacer) refill(now time.Time) {
	if p.at.IsZero() {
		p.tokens, p.at = p.burst, now
		return
	}
	if now.After(p.at) {
		p.tokens = min(p.burst, p.tokens+now.Sub(p.at).Seconds()*p.rate)
		p.at = now
	}
}

// take spends one token if there is one.
func (p *pacer) take(now time.Time) bool {
	p.refill(now)
	if p.tokens >= 1 {
		p.tokens--
		return true
	}
	return false
}

// nextToken is when take will next succeed.
func (p *pacer) nextToken(now time.Time) time.Time {
	p.refill(now)
	if p.tokens >= 1 {
		return now
	}
	return now.Add(time.Duration((1 - p.tokens) / p.rate * float64(time.Second)))
}

// wakeQueue orders scheduled items by their wake-up time (a min-heap), so
// the loop needs one timer for everything.
type wakeQueue struct {
	items  []scheduled
	wakeAt []time.Time
	dueBuf []scheduled // reused by due: no garbage per tick
}

func (q *wakeQueue) Len() int { return len(q.items) }

func (q *wakeQueue) Less(i, j int) bool { return q.wakeAt[i].Before(q.wakeAt[j]) }

func (q *wakeQueue) Swap(i, j int) {
	q.items[i], q.items[j] = q.items[j], q.items[i]
	q.wakeAt[i], q.wakeAt[j] = q.wakeAt[j], q.wakeAt[i]
	*q.items[i].queueSlot(), *q.items[j].queueSlot() = i, j
}

func (q *wakeQueue) Push(x any) {
	s := x.(scheduled)
	*s.queueSlot() = len(q.items)
	q.items = append(q.items, s)
	q.wakeAt = append(q.wakeAt, s.nextWake())
}

func (q *wakeQueue) Pop() any {
	n := len(q.items) - 1
	s := q.items[n]
	q.items, q.wakeAt = q.items[:n], q.wakeAt[:n]
	*s.queueSlot() = -1
	return s
}

func (q *wakeQueue) push(s scheduled) { heap.Push(q, s) }

func (q *wakeQueue) remove(s scheduled) {
	if i := *s.queueSlot(); i >= 0 {
		heap.Remove(q, i)
	}
}

// fix re-reads one item's wake-up time.
func (q *wakeQueue) fix(s scheduled) {
	i := *s.queueSlot()
	q.wakeAt[i] = s.nextWake()
	heap.Fix(q, i)
}

// Refresh re-reads every item's wake-up time.
func (q *wakeQueue) refresh() {
	for i, s := range q.items {
		q.wakeAt[i] = s.nextWake()
	}
	heap.Init(q)
}

// Next is the earliest wake-up (an hour away when nothing is queued).
func (q *wakeQueue) next() time.Time {
	if len(q.items) == 0 {
		return time.Now().Add(time.Hour)
	}
	return q.wakeAt[0]
}

// due returns the items whose time has come, earliest first; each is parked
// an hour ahead until the caller has run it and fixed it.
func (q *wakeQueue) due(now time.Time) []scheduled {
	due := q.dueBuf[:0]
	for len(q.items) > 0 && !q.wakeAt[0].After(now) {
		due = append(due, q.items[0])
		q.wakeAt[0] = now.Add(time.Hour)
		heap.Fix(q, 0)
	}
	q.dueBuf = due
	return due
}
