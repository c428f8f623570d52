//go:build chaos

package integration

// The chaos run's faults: what the seed decides (plan, draw) and how each
// fault is injected and undone (inject), with the node events the checker
// needs to know who could have taken the VIP.

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"

	"floatip/internal/fiptest"
)

// checkExits restarts any daemon that exited without being told to, and
// records it as a violation.
func (c *chaos) checkExits() {
	for i := 1; i <= c.hosts; i++ {
		d := c.daemons[i]
		if c.killed[i] || !d.Exited() {
			continue
		}
		code, _ := d.Wait(0)
		now := time.Now()
		c.mu.Lock()
		c.extra = append(c.extra, violation{At: now, Kind: "exit",
			Detail: fmt.Sprintf("%s (pid %d) exited unexpectedly with %d; last lines:\n%s", d.Name, d.PID(), code, fiptest.LastLines(d.Logs(), 15))})
		c.mu.Unlock()
		c.Broadcast(now, i, condRunning, false)
		c.StartDaemon(i)
		c.Broadcast(time.Now(), i, condRunning, true)
	}
}

// sleep waits d, watching for daemons that exit meanwhile.
func (c *chaos) sleep(d time.Duration) {
	end := time.Now().Add(d)
	for {
		c.checkExits()
		c.recordMemory(false)
		left := time.Until(end)
		if left <= 0 {
			return
		}
		time.Sleep(min(left, 100*time.Millisecond))
	}
}

// between draws a duration uniformly in [lo, hi).
func (c *chaos) between(lo, hi time.Duration) time.Duration {
	return lo + time.Duration(c.rng.Int64N(int64(hi-lo)))
}

// plan is one fault as the seed decides it. Every field is drawn for every
// fault, so the random stream does not depend on what happened in the lab.
type plan struct {
	kind        string
	holderOf    int // -1: target host; else the holder of this VIP
	host, host2 int // targets (host2 for a two-host partition; 0: none)
	hold        time.Duration
	settle      time.Duration
	pct         int
	vip         int
}

func (c *chaos) draw() plan {
	p := plan{kind: chaosFaultKinds[c.rng.IntN(len(chaosFaultKinds))], holderOf: -1}
	byHolder := c.rng.IntN(2) == 0
	vip := c.rng.IntN(len(c.vips))
	if byHolder {
		p.holderOf = vip
	}
	p.host = 1 + c.rng.IntN(c.hosts)
	p.host2 = 1 + c.rng.IntN(c.hosts)
	two := c.rng.IntN(2) == 0
	if !two || p.host2 == p.host {
		p.host2 = 0
	}
	p.hold = c.between(time.Second, 6*time.Second)
	p.settle = c.between(time.Second, 3*time.Second)
	p.pct = 5 + c.rng.IntN(16)
	p.vip = c.rng.IntN(len(c.vips))
	return p
}

// target resolves the plan's first target: the holder of its VIP when it
// has exactly one, else the drawn host.
func (c *chaos) target(p plan) int {
	if p.holderOf >= 0 {
		if set := c.holdersNow(p.holderOf); set != 0 && set&(set-1) == 0 {
			for i := 1; i <= c.hosts; i++ {
				if set == 1<<(i-1) {
					return i
				}
			}
		}
	}
	return p.host
}

// inject runs one fault to its end (inject, hold, restore) and records it.
func (c *chaos) inject(n int, p plan) {
	t := c.t
	h := c.target(p)
	// The last host is never killed or restarted, so that one daemon lives
	// through the whole run for the memory check.
	if (p.kind == faultKill9 || p.kind == faultTerm) && h == c.hosts {
		h = c.hosts - 1
	}
	f := chaosFault{N: n, Kind: p.kind, Targets: []string{c.host(h)}}
	start := time.Now()
	f.Start = start
	switch p.kind {
	case faultKill9, faultTerm:
		d := c.daemons[h]
		c.killed[h] = true
		c.Broadcast(start, h, condRunning, false)
		if p.kind == faultKill9 {
			d.Signal(syscall.SIGKILL)
			if _, err := d.Wait(5 * time.Second); err != nil {
				t.Fatalf("fault #%d: %v", n, err)
			}
		} else {
			d.Signal(syscall.SIGTERM)
			code, err := d.Wait(5 * time.Second)
			if err != nil || code != 0 {
				c.mu.Lock()
				c.extra = append(c.extra, violation{At: start, Kind: "exit",
					Detail: fmt.Sprintf("%s did not stop cleanly on SIGTERM: code %d, %v; last lines:\n%s", d.Name, code, err, fiptest.LastLines(d.Logs(), 15))})
				c.mu.Unlock()
				if err != nil {
					d.Signal(syscall.SIGKILL)
					_, _ = d.Wait(5 * time.Second)
				}
			}
		}
		c.sleep(p.hold)
		f.Restored = time.Now()
		c.StartDaemon(h)
		c.Broadcast(f.Restored, h, condRunning, true)
	case faultStop:
		c.daemons[h].Signal(syscall.SIGSTOP)
		c.Broadcast(start, h, condAwake, false)
		time.Sleep(p.hold) // not c.sleep: a stopped daemon is not an exit
		f.Restored = time.Now()
		c.daemons[h].Signal(syscall.SIGCONT)
		c.Broadcast(f.Restored, h, condAwake, true)
	case faultCut:
		c.l.Script("cut", c.host(h))
		c.Broadcast(start, h, condConnected, false)
		c.sleep(p.hold)
		c.l.Script("heal", c.host(h))
		f.Restored = time.Now()
		c.Broadcast(f.Restored, h, condConnected, true)
	case faultPartition:
		hs := []int{h}
		if p.host2 != 0 && p.host2 != h {
			hs = append(hs, p.host2)
			f.Targets = append(f.Targets, c.host(p.host2))
		}
		for _, x := range hs {
			c.l.Script("isolate", c.host(x))
			c.Broadcast(time.Now(), x, condConnected, false)
		}
		c.sleep(p.hold)
		for _, x := range hs {
			c.l.Script("unisolate", c.host(x))
		}
		f.Restored = time.Now()
		for _, x := range hs {
			c.Broadcast(f.Restored, x, condConnected, true)
		}
	case faultLoss:
		f.Detail = fmt.Sprintf("%d%%", p.pct)
		c.l.Script("loss", c.host(h), strconv.Itoa(p.pct))
		c.sleep(p.hold)
		c.l.Script("loss", c.host(h), "0")
		f.Restored = time.Now()
	case faultVIPDel:
		vip := c.vips[p.vip]
		set := c.holdersNow(p.vip)
		f.Detail = vip
		f.Targets = nil
		for i := 1; i <= c.hosts; i++ {
			if set&(1<<(i-1)) != 0 {
				f.Targets = append(f.Targets, c.host(i))
				if out, err := c.l.Run(c.host(i), "ip", "addr", "del", vip+"/32", "dev", "eth0"); err != nil {
					t.Logf("fault #%d: ip addr del %s on %s: %v %s", n, vip, c.host(i), err, out) // raced with a move
				}
			}
		}
		f.Restored = time.Now()
	case faultHealth:
		if err := os.WriteFile(c.failFile(h), nil, 0o644); err != nil {
			t.Fatal(err)
		}
		c.Broadcast(start, h, condHealthy, false)
		c.sleep(p.hold)
		f.Restored = time.Now()
		if err := os.Remove(c.failFile(h)); err != nil {
			t.Fatal(err)
		}
		c.Broadcast(f.Restored, h, condHealthy, true)
	}
	c.mu.Lock()
	c.faults = append(c.faults, f)
	c.mu.Unlock()
	t.Logf("fault #%d at +%v: %s %s %s (held %v)", n, start.Sub(c.begin).Round(time.Millisecond), p.kind, strings.Join(f.Targets, ","), f.Detail, f.Restored.Sub(start).Round(time.Millisecond))
	c.sleep(p.settle)
}
