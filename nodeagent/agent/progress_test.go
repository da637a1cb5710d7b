package agent

import (
	"sync"
	"testing"
	"time"
)

// TestProgressReporterCoalesces: reports made while one is being sent do
// not pile up: the one in flight finishes, then only the newest waiting
// one is sent.
func TestProgressReporterCoalesces(t *testing.T) {
	var p progressReporter
	release := make(chan struct{})
	var mu sync.Mutex
	var sent []int
	done := make(chan struct{}, 100)
	record := func(i int) func() {
		return func() {
			if i == 0 {
				<-release // the first send is slow (the master is away)
			}
			mu.Lock()
			sent = append(sent, i)
			mu.Unlock()
			done <- struct{}{}
		}
	}
	p.send(record(0))
	for i := 1; i <= 50; i++ {
		p.send(record(i))
	}
	close(release)
	<-done
	<-done
	idle := false
	for deadline := time.Now().Add(5 * time.Second); !idle && time.Now().Before(deadline); time.Sleep(time.Millisecond) {
		p.mu.Lock()
		idle = !p.sending
		p.mu.Unlock()
	}
	mu.Lock()
	defer mu.Unlock()
	if len(sent) != 2 || sent[0] != 0 || sent[1] != 50 {
		t.Fatalf("sent %v; want [0 50]", sent)
	}
	if !idle {
		t.Error("reporter still marked as sending")
	}
}
