package main

import (
	"slices"
	"testing"
)

func TestScanShell(t *testing.T) {
	tests := []struct {
		name     string
		src      string
		programs []string
		includes []string
		installs int
	}{
		{name: "simple", src: "git ls-files\n", programs: []string{"git"}},
		{name: "assignment and pipe", src: "X=1 Y=2 protoc -I api x | grep y && sed -n 1p || awk '{print}'\n",
			programs: []string{"protoc", "grep", "sed", "awk"}, includes: []string{"api"}},
		{name: "substitution in quotes", src: `kill "$(cat "$DATA/hpcd.pid")"` + "\n", programs: []string{"cat"}},
		{name: "nested substitution", src: "bad=$(git ls-files | xargs gofmt -l)\n", programs: []string{"git", "xargs", "gofmt"}},
		{name: "arithmetic is no command", src: "i=$((i + 1))\n"},
		{name: "arithmetic for loop", src: "for ((i=${#m[@]}-1; i>=0; i--)); do umount -l x; done\n", programs: []string{"umount"}},
		{name: "keywords and wrappers", src: "if ! command -v protoc >/dev/null; then nohup env A=1 qemu-img info x 2>&1 & fi\n",
			programs: []string{"protoc", "qemu-img"}},
		{name: "builtins, functions, variables, repo paths", src: "step() { echo; }\nstep x\necho hi; printf x; $sub nodes; ./scripts/a.sh; bin/hpcsub queue\n"},
		{name: "comments", src: "# make demo runs this\nls # list\n", programs: []string{"ls"}},
		{name: "continuation", src: "protoc -I /usr/include \\\n  --go_out=api\n", programs: []string{"protoc"}, includes: []string{"/usr/include"}},
		{name: "redirect target is no command", src: "virsh version >/dev/null 2>&1\n", programs: []string{"virsh"}},
		{name: "absolute program", src: "/usr/sbin/libvirtd -d\n", programs: []string{"/usr/sbin/libvirtd"}},
		{name: "for loop", src: "for p in $PKGS; do dpkg-query -W $p; done\n", programs: []string{"dpkg-query"}},
		{name: "installs", src: "apt-get update -qq\napt-get install -y x\ndpkg -i y.deb\n", programs: []string{"apt-get", "dpkg"}, installs: 2},
		{name: "include glued", src: "cc -I/opt/inc x.c\n", programs: []string{"cc"}, includes: []string{"/opt/inc"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sc := scanShell("t.sh", tt.src)
			var got, inc []string
			for _, u := range sc.Programs {
				if !slices.Contains(got, u.Name) {
					got = append(got, u.Name)
				}
			}
			for _, u := range sc.IncludeDirs {
				inc = append(inc, u.Name)
			}
			if !slices.Equal(got, tt.programs) {
				t.Errorf("programs %q, want %q", got, tt.programs)
			}
			if !slices.Equal(inc, tt.includes) {
				t.Errorf("include dirs %q, want %q", inc, tt.includes)
			}
			if len(sc.Installs) != tt.installs {
				t.Errorf("installs %q, want %d", sc.Installs, tt.installs)
			}
		})
	}
}

func TestMakeRecipes(t *testing.T) {
	src := "build:\n\t$(GO) build -tags $(TAGS) -o $(BIN)/ ./cmd/...\n\t@bad=$$(gofmt -l x); echo $$bad\nx := 1\n"
	sc := scanShell("Makefile", makeRecipes(src))
	var got []string
	for _, u := range sc.Programs {
		got = append(got, u.Name+"@"+u.At)
	}
	want := []string{"go@Makefile:2", "gofmt@Makefile:3"}
	if !slices.Equal(got, want) {
		t.Errorf("got %q, want %q", got, want)
	}
}
