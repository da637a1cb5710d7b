package vmimages

import (
	"slices"
	"strings"
	"testing"
)

const fakeDep = `kernel/fs/ext4/ext4.ko: kernel/lib/crc16.ko kernel/fs/mbcache.ko kernel/fs/jbd2/jbd2.ko
kernel/fs/jbd2/jbd2.ko:
kernel/fs/mbcache.ko:
kernel/lib/crc16.ko:
kernel/fs/9p/9p.ko: kernel/net/9p/9pnet.ko kernel/fs/fscache/fscache.ko kernel/fs/netfs/netfs.ko
kernel/fs/fscache/fscache.ko: kernel/fs/netfs/netfs.ko
kernel/fs/netfs/netfs.ko:
kernel/net/9p/9pnet.ko:
kernel/net/9p/9pnet_virtio.ko: kernel/net/9p/9pnet.ko kernel/drivers/virtio/virtio_ring.ko kernel/drivers/virtio/virtio.ko
kernel/drivers/virtio/virtio_ring.ko:
kernel/drivers/virtio/virtio.ko:
kernel/arch/x86/crypto/crc32c-intel.ko:
`

func TestResolveModules(t *testing.T) {
	md, err := parseModulesDep(strings.NewReader(fakeDep))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name        string
		in          []string
		wantOrder   []string
		wantBuiltin []string
	}{
		{
			name:      "ext4 after its deps",
			in:        []string{"ext4"},
			wantOrder: []string{"kernel/lib/crc16.ko", "kernel/fs/mbcache.ko", "kernel/fs/jbd2/jbd2.ko", "kernel/fs/ext4/ext4.ko"},
		},
		{
			name: "shared deps once, netfs before fscache",
			in:   []string{"9pnet_virtio", "9p"},
			wantOrder: []string{"kernel/net/9p/9pnet.ko", "kernel/drivers/virtio/virtio_ring.ko", "kernel/drivers/virtio/virtio.ko",
				"kernel/net/9p/9pnet_virtio.ko", "kernel/fs/netfs/netfs.ko", "kernel/fs/fscache/fscache.ko", "kernel/fs/9p/9p.ko"},
		},
		{
			name:      "dash and underscore are the same",
			in:        []string{"crc32c_intel"},
			wantOrder: []string{"kernel/arch/x86/crypto/crc32c-intel.ko"},
		},
		{
			name:        "unknown means built in",
			in:          []string{"virtio_blk"},
			wantBuiltin: []string{"virtio_blk"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			order, builtin := md.resolve(tc.in)
			if !slices.Equal(order, tc.wantOrder) {
				t.Errorf("order = %v, want %v", order, tc.wantOrder)
			}
			if !slices.Equal(builtin, tc.wantBuiltin) {
				t.Errorf("builtin = %v, want %v", builtin, tc.wantBuiltin)
			}
			// Property: every module comes after all its dependencies.
			pos := map[string]int{}
			for i, p := range order {
				pos[p] = i
			}
			for _, p := range order {
				for _, d := range md.deps[p] {
					if pos[d] > pos[p] {
						t.Errorf("%s loaded before its dependency %s", p, d)
					}
				}
			}
		})
	}
}
