package hpcbench

import (
	"fmt"
	"io"
	"text/tabwriter"
)

// WriteTable prints rep as the human table `hpcbench` shows by default.
func WriteTable(w io.Writer, rep *Report) error {
	d := rep.Device
	if _, err := fmt.Fprintf(w, "%s %d: %s (%s%d units, %.0f MHz)\n", d.Kind, d.Index, d.Name, ccPrefix(d), d.Units, d.ClockMHz); err != nil {
		return fmt.Errorf("write table: %w", err)
	}
	fmt.Fprintf(w, "peaks: fp32 %.0f GFLOP/s, fp64 %.0f GFLOP/s, tensor %.0f GFLOP/s, memory %s\n",
		d.PeakFP32GFLOPS, d.PeakFP64GFLOPS, d.PeakTensorGFLOPS, orUnknown(d.PeakMemGBs, "GB/s"))
	tw := tabwriter.NewWriter(w, 2, 8, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "workload\tsize\tvalue\tunit\tpeak\t% peak\tvendor\tvendor value\tratio\tvalidated\tmax error\t")
	for _, r := range rep.Workloads {
		if r.Error != "" {
			fmt.Fprintf(tw, "%s\t\t\t\t\t\t\t\t\tERROR\t%s\t\n", r.Name, r.Error)
			continue
		}
		ok := "no"
		if r.Validated {
			ok = "yes"
		}
		fmt.Fprintf(tw, "%s\t%s\t%.1f\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%.1e\t\n",
			r.Name, r.Size, r.Value, r.Unit, dash(r.Peak, "%.0f"), dash(r.PercentOfPeak, "%.1f"),
			orDash(r.Vendor), dash(r.VendorValue, "%.1f"), dash(r.RatioToVendor, "%.2f"), ok, r.MaxError)
	}
	if err := tw.Flush(); err != nil {
		return fmt.Errorf("write table: %w", err)
	}
	return writeTelemetry(w, rep.Workloads)
}

// writeTelemetry prints the NVML readings of each workload (min/mean/max),
// or one line saying why nothing was sampled; nothing for a CPU run.
func writeTelemetry(w io.Writer, rs []Result) error {
	var with []Result
	notSampled := ""
	for _, r := range rs {
		switch {
		case r.Telemetry == nil:
		case r.Telemetry.Samples == 0:
			notSampled = r.Telemetry.NotSampled
		default:
			with = append(with, r)
		}
	}
	if len(with) == 0 {
		if notSampled != "" {
			if _, err := fmt.Fprintf(w, "NVML telemetry: %s\n", notSampled); err != nil {
				return fmt.Errorf("write table: %w", err)
			}
		}
		return nil
	}
	fmt.Fprintln(w, "NVML during each workload (min/mean/max):")
	tw := tabwriter.NewWriter(w, 2, 8, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "workload\tsamples\tSM clock MHz\tmemory clock MHz\tpower W\ttemperature C\t")
	for _, r := range with {
		t := r.Telemetry
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\t%s\t\n", r.Name, t.Samples, t.SMClockMHz, t.MemClockMHz, t.PowerW, t.TempC)
	}
	if err := tw.Flush(); err != nil {
		return fmt.Errorf("write table: %w", err)
	}
	return nil
}

// String is "min/mean/max" with no decimals.
func (s Stat) String() string { return fmt.Sprintf("%.0f/%.0f/%.0f", s.Min, s.Mean, s.Max) }

func ccPrefix(d Device) string {
	if d.ComputeCapability == "" {
		return ""
	}
	return "sm_" + d.ComputeCapability + ", "
}

func dash(v float64, format string) string {
	if v == 0 {
		return "-"
	}
	return fmt.Sprintf(format, v)
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func orUnknown(v float64, unit string) string {
	if v == 0 {
		return "unknown"
	}
	return fmt.Sprintf("%.0f %s", v, unit)
}
