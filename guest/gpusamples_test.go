package guest

import (
	"testing"
	"time"
)

func TestParseNvidiaSMI(t *testing.T) {
	at := time.Unix(1700000000, 0)
	cases := []struct {
		name    string
		in      string
		want    int
		wantErr bool
	}{
		{"two GPUs", "GPU-aaa, 00000000:3B:00.0, NVIDIA H100 80GB HBM3, 87, 40960, 81559, 61, 512.34\nGPU-bbb, 00000000:86:00.0, NVIDIA H100 80GB HBM3, 0, 1, 81559, 35, [N/A]\n", 2, false},
		{"empty", "", 0, false},
		{"wrong field count", "GPU-aaa, 00000000:3B:00.0, H100\n", 0, true},
		{"values passed on", "GPU-aaa, nonsense, H100, 1, 1, 1, 1, 1\n", 1, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := ParseNvidiaSMI([]byte(c.in), at)
			if (err != nil) != c.wantErr || len(got) != c.want {
				t.Fatalf("got %d samples, err %v", len(got), err)
			}
			if c.want == 2 {
				s := got[0]
				if s.UUID != "GPU-aaa" || s.PCIBusID != "00000000:3B:00.0" || s.Model != "NVIDIA H100 80GB HBM3" || s.UtilizationPct != 87 || s.PowerW != 512.34 || s.MemoryUsedBytes != 40960<<20 {
					t.Errorf("sample = %+v", s)
				}
				if got[1].PowerW != 0 {
					t.Errorf("[N/A] power parsed as %v", got[1].PowerW)
				}
			}
		})
	}
}
