package vmimages

import (
	"bytes"
	"debug/elf"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// writeELF writes a minimal x86-64 executable header: one PT_LOAD, plus a
// PT_INTERP when dynamic. Enough for CheckStatic, never run.
func writeELF(t *testing.T, path string, dynamic bool) {
	t.Helper()
	progs := []elf.Prog64{{Type: uint32(elf.PT_LOAD), Flags: uint32(elf.PF_R | elf.PF_X), Align: 0x1000}}
	if dynamic {
		progs = append([]elf.Prog64{{Type: uint32(elf.PT_INTERP), Flags: uint32(elf.PF_R), Align: 1}}, progs...)
	}
	h := elf.Header64{
		Type: uint16(elf.ET_EXEC), Machine: uint16(elf.EM_X86_64), Version: uint32(elf.EV_CURRENT),
		Phoff: 64, Ehsize: 64, Phentsize: 56, Phnum: uint16(len(progs)), Shentsize: 64,
	}
	copy(h.Ident[:], elf.ELFMAG)
	h.Ident[elf.EI_CLASS], h.Ident[elf.EI_DATA], h.Ident[elf.EI_VERSION] = byte(elf.ELFCLASS64), byte(elf.ELFDATA2LSB), byte(elf.EV_CURRENT)
	var b bytes.Buffer
	if err := binary.Write(&b, binary.LittleEndian, h); err != nil {
		t.Fatal(err)
	}
	if err := binary.Write(&b, binary.LittleEndian, progs); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b.Bytes(), 0o755); err != nil {
		t.Fatal(err)
	}
}

func TestFindGuestBinary(t *testing.T) {
	tests := []struct {
		name string
		// setup returns the explicit path (or "") and fills pathDir, which
		// is all of $PATH.
		setup     func(t *testing.T, dir, pathDir string) string
		wantFound string // relative to dir ("" when an error is wanted)
		wantErr   []string
		wantNone  bool // the error wraps ErrNoGuestBinary
	}{
		{
			name: "explicit static",
			setup: func(t *testing.T, dir, _ string) string {
				writeELF(t, filepath.Join(dir, "g"), false)
				return filepath.Join(dir, "g")
			},
			wantFound: "g",
		},
		{
			name: "explicit dynamic",
			setup: func(t *testing.T, dir, _ string) string {
				writeELF(t, filepath.Join(dir, "g"), true)
				return filepath.Join(dir, "g")
			},
			wantErr: []string{"dynamically linked", "make build"},
		},
		{
			name:    "explicit missing",
			setup:   func(_ *testing.T, dir, _ string) string { return filepath.Join(dir, "nope") },
			wantErr: []string{"no such file"},
		},
		{
			name: "explicit not ELF",
			setup: func(t *testing.T, dir, _ string) string {
				if err := os.WriteFile(filepath.Join(dir, "g"), []byte("#!/bin/sh\n"), 0o755); err != nil {
					t.Fatal(err)
				}
				return filepath.Join(dir, "g")
			},
			wantErr: []string{"not an ELF executable"},
		},
		{
			name: "on PATH",
			setup: func(t *testing.T, _, pathDir string) string {
				writeELF(t, filepath.Join(pathDir, GuestBinaryName), false)
				return ""
			},
			wantFound: filepath.Join("path", GuestBinaryName),
		},
		{
			name: "dynamic on PATH",
			setup: func(t *testing.T, _, pathDir string) string {
				writeELF(t, filepath.Join(pathDir, GuestBinaryName), true)
				return ""
			},
			wantErr:  []string{"make build", "--guest", "rejected", "dynamically linked"},
			wantNone: true,
		},
		{
			name:     "none anywhere",
			setup:    func(*testing.T, string, string) string { return "" },
			wantErr:  []string{"make build", "--guest"},
			wantNone: true,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			pathDir := filepath.Join(dir, "path")
			if err := os.Mkdir(pathDir, 0o755); err != nil {
				t.Fatal(err)
			}
			t.Setenv("PATH", pathDir)
			got, err := FindGuestBinary(tc.setup(t, dir, pathDir))
			if tc.wantFound != "" {
				if err != nil || got != filepath.Join(dir, tc.wantFound) {
					t.Fatalf("FindGuestBinary = %q, %v; want %s", got, err, tc.wantFound)
				}
				return
			}
			if err == nil {
				t.Fatalf("FindGuestBinary = %q, want an error", got)
			}
			for _, w := range tc.wantErr {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
			if errors.Is(err, ErrNoGuestBinary) != tc.wantNone {
				t.Errorf("errors.Is(%v, ErrNoGuestBinary) = %v, want %v", err, !tc.wantNone, tc.wantNone)
			}
		})
	}
}
