// Package sim replays workload traces through scheduler/core in virtual
// time. hpcsim is its command-line front end; the core's fair-share tests
// use it too. Event-driven: the scheduler runs at submit and completion
// times only.
package sim

import (
	"bufio"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// TraceJob is one job of a Standard Workload Format trace, in seconds.
type TraceJob struct {
	ID      int64
	Submit  int64
	Run     int64 // actual run time
	Procs   int64 // allocated (or requested when allocated is missing)
	ReqTime int64 // requested time, -1 when the trace has none
	User    int64
	Group   int64
	// App is the executable (application) number, from 1; 0 or -1 when
	// the trace has none. A job's kind for runtime predictions
	// (model.JobKind) includes it as the job's name.
	App int64
}

// ReadSWF parses an SWF trace: 18 whitespace-separated fields per line,
// ';' comment lines. Jobs with no processors or a negative run time are
// dropped (the count is returned).
func ReadSWF(r io.Reader) (jobs []TraceJob, dropped int, err error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<16), 1<<20)
	line := 0
	for sc.Scan() {
		line++
		text := strings.TrimSpace(sc.Text())
		if text == "" || text[0] == ';' {
			continue
		}
		f := strings.Fields(text)
		if len(f) < 11 {
			return nil, 0, fmt.Errorf("swf line %d: %d fields, want 18", line, len(f))
		}
		v := make([]int64, len(f))
		for i, s := range f {
			x, err := strconv.ParseFloat(s, 64)
			if err != nil {
				return nil, 0, fmt.Errorf("swf line %d field %d: %q is not a number", line, i+1, s)
			}
			v[i] = int64(x)
		}
		field := func(i int) int64 {
			if i-1 < len(v) {
				return v[i-1]
			}
			return -1
		}
		j := TraceJob{ID: field(1), Submit: field(2), Run: field(4), Procs: field(5), ReqTime: field(9), User: field(12), Group: field(13), App: field(14)}
		if j.Procs <= 0 {
			j.Procs = field(8)
		}
		if j.Procs <= 0 || j.Run < 0 {
			dropped++
			continue
		}
		jobs = append(jobs, j)
	}
	if err := sc.Err(); err != nil {
		return nil, 0, fmt.Errorf("reading swf: %w", err)
	}
	return jobs, dropped, nil
}

// WriteSWF writes trace in the Standard Workload Format that ReadSWF
// reads: a header naming the machine size, then one 18-field line per job
// (submit, run, processors, requested time, user, group and executable
// number; -1 for the fields not modelled).
func WriteSWF(w io.Writer, trace []TraceJob, maxNodes int, comment string) error {
	bw := bufio.NewWriter(w)
	fmt.Fprintf(bw, "; Version: 2\n; %s\n; MaxJobs: %d\n; MaxRecords: %d\n; MaxNodes: %d\n", comment, len(trace), len(trace), maxNodes)
	for _, j := range trace {
		fmt.Fprintf(bw, "%d %d -1 %d %d -1 -1 %d %d -1 1 %d %d %d 0 -1 -1 -1\n",
			j.ID, j.Submit, j.Run, j.Procs, j.Procs, j.ReqTime, j.User, j.Group, max(j.App, -1))
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("writing swf: %w", err)
	}
	return nil
}
