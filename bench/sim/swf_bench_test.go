package sim

import (
	"bytes"
	"fmt"
	"testing"
)

// BenchmarkReadSWF reads a 200,000-job SWF trace (the size of the larger
// Parallel Workloads Archive logs) from memory.
func BenchmarkReadSWF(b *testing.B) {
	var buf bytes.Buffer
	buf.WriteString("; synthetic trace\n")
	const n = 200_000
	for i := range n {
		fmt.Fprintf(&buf, "%d %d 12 %d %d -1 -1 %d %d -1 1 %d %d 1 1 -1 -1 -1\n", i+1, i*37, 60+i%7200, 1+i%128, 1+i%128, 3600, i%97, i%13)
	}
	data := buf.Bytes()
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		jobs, dropped, err := ReadSWF(bytes.NewReader(data))
		if err != nil || dropped != 0 || len(jobs) != n {
			b.Fatalf("%d jobs, %d dropped, %v", len(jobs), dropped, err)
		}
	}
}
