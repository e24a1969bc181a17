package testbed

import (
	"bytes"
	"sync"
)

// OutputBuffer collects a child process's output while the test or bench reads it.
type OutputBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (o *OutputBuffer) Write(p []byte) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.b.Write(p)
}

func (o *OutputBuffer) String() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.b.String()
}
