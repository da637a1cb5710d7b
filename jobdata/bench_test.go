package jobdata_test

import (
	"context"
	"crypto/rand"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"vhpc/imagestore/registrytest"
	"vhpc/jobdata"
)

// benchBytes is the input size of the data benchmarks: VHPC_BENCH_BYTES,
// default 1 GiB (issue 15's figure).
func benchBytes(b *testing.B) int64 {
	if s := os.Getenv("VHPC_BENCH_BYTES"); s != "" {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil || n <= 0 {
			b.Fatalf("VHPC_BENCH_BYTES=%q: want a positive byte count", s)
		}
		return n
	}
	return 1 << 30
}

// benchInput writes an incompressible file of n bytes into a new dir.
func benchInput(b *testing.B, n int64) string {
	dir := b.TempDir()
	f, err := os.Create(filepath.Join(dir, "input.bin"))
	if err != nil {
		b.Fatal(err)
	}
	if _, err := io.CopyN(f, rand.Reader, n); err != nil {
		b.Fatal(err)
	}
	if err := f.Close(); err != nil {
		b.Fatal(err)
	}
	return dir
}

// BenchmarkDataTransfer runs, on one file of benchBytes, side by side: a
// plain copy (the baseline, io.Copy between files as cp does), the
// upload of a new input (hash + send), the second submission of the same
// input (deduplicated: SentBytes reported per op), and the download a
// node does (fetch + verify). Compare the MB/s of each with copy's:
//
//	go test -run XXX -bench DataTransfer -benchtime 3x ./jobdata
func BenchmarkDataTransfer(b *testing.B) {
	n := benchBytes(b)
	src := benchInput(b, n)
	reg := registrytest.Start(b)
	stages := []jobdata.Stage{{From: "input.bin"}}

	b.Run("copy", func(b *testing.B) {
		b.SetBytes(n)
		for i := 0; b.Loop(); i++ {
			in, err := os.Open(filepath.Join(src, "input.bin"))
			if err != nil {
				b.Fatal(err)
			}
			out, err := os.Create(filepath.Join(b.TempDir(), "copy.bin"))
			if err != nil {
				b.Fatal(err)
			}
			if _, err := io.Copy(out, in); err != nil {
				b.Fatal(err)
			}
			in.Close()
			if err := out.Close(); err != nil {
				b.Fatal(err)
			}
		}
	})
	var digest string
	b.Run("upload", func(b *testing.B) {
		b.SetBytes(n)
		for i := 0; b.Loop(); i++ {
			// A fresh registry per op would measure startup: make each
			// op's content new instead by changing the department.
			c, err := jobdata.Collect(src, stages, jobdata.CollectOptions{})
			if err != nil {
				b.Fatal(err)
			}
			p, err := jobdata.Push(context.Background(), reg.URL, jobdata.RepositoryName("bench")+strconv.Itoa(i), c, reg.Options())
			c.Close()
			if err != nil {
				b.Fatal(err)
			}
			if p.SentBytes != n && i == 0 {
				b.Fatalf("first upload sent %d of %d bytes", p.SentBytes, n)
			}
			digest = p.Digest
		}
	})
	b.Run("resubmit", func(b *testing.B) {
		b.SetBytes(n)
		var sent int64
		for b.Loop() {
			c, err := jobdata.Collect(src, stages, jobdata.CollectOptions{})
			if err != nil {
				b.Fatal(err)
			}
			p, err := jobdata.Push(context.Background(), reg.URL, jobdata.RepositoryName("bench0"), c, reg.Options())
			c.Close()
			if err != nil {
				b.Fatal(err)
			}
			sent += p.SentBytes
		}
		b.ReportMetric(float64(sent)/float64(b.N), "sent-bytes/op")
	})
	b.Run("download", func(b *testing.B) {
		b.SetBytes(n)
		for b.Loop() {
			if _, err := jobdata.Pull(context.Background(), reg.URL, jobdata.RepositoryName("bench0"), digest, b.TempDir(), reg.Options()); err != nil {
				b.Fatal(err)
			}
		}
	})
}
