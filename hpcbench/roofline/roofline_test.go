package roofline

import (
	"bytes"
	"context"
	"encoding/xml"
	"io"
	"strings"
	"testing"
	"time"

	"vhpc/hpcbench"
	"vhpc/hpcbench/cpubench"
)

// TestWriteSVG plots a small CPU run and checks the SVG parses as XML and
// names every workload.
func TestWriteSVG(t *testing.T) {
	sizes, _ := hpcbench.ParseSizes("small", false)
	b := cpubench.New(cpubench.CPUInfo{Model: "test cpu", ClockMHz: 2000, AVX2: true, FMA: true},
		cpubench.Options{Workers: 2, Sizes: sizes, Timing: hpcbench.Timing{MinTime: time.Millisecond, MinReps: 1, MaxReps: 1}})
	rep := hpcbench.Run(context.Background(), b, hpcbench.Catalog())
	var buf bytes.Buffer
	if err := Write(&buf, rep); err != nil {
		t.Fatal(err)
	}
	dec := xml.NewDecoder(bytes.NewReader(buf.Bytes()))
	for {
		_, err := dec.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("not valid XML: %v", err)
		}
	}
	svg := buf.String()
	if !strings.Contains(svg, "<svg") {
		t.Fatal("no <svg> element")
	}
	for _, w := range hpcbench.Names() {
		if !strings.Contains(svg, w) {
			t.Errorf("SVG does not mention %s", w)
		}
	}
}
