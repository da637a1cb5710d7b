package model

import (
	"strings"
	"testing"
)

func TestSplitImageRef(t *testing.T) {
	cases := []struct {
		ref, dept, name, tag string
		ok                   bool
	}{
		{"chemistry/lammps:2024.08", "chemistry", "lammps", "2024.08", true},
		{"public/tiny", "public", "tiny", "latest", true},
		{"tiny", "", "", "", false},
		{"a/b/c", "", "", "", false},
		{"/x", "", "", "", false},
		{"a/:1", "", "", "", false},
		{"a/b:", "", "", "", false},
	}
	for _, c := range cases {
		t.Run(c.ref, func(t *testing.T) {
			d, n, tag, ok := SplitImageRef(c.ref)
			if d != c.dept || n != c.name || tag != c.tag || ok != c.ok {
				t.Fatalf("SplitImageRef(%q) = %q %q %q %v", c.ref, d, n, tag, ok)
			}
		})
	}
}

func TestImageCheck(t *testing.T) {
	good := Image{Department: "chemistry", Name: "lammps", Tag: "2024.08", Digest: "sha256:" + strings.Repeat("a", 64)}
	cases := []struct {
		name   string
		change func(*Image)
		want   string
	}{
		{"good", func(*Image) {}, ""},
		{"upper case department", func(i *Image) { i.Department = "Chem" }, "lowercase"},
		{"name starts with a dot", func(i *Image) { i.Name = ".x" }, "starting with a letter or digit"},
		{"long tag", func(i *Image) { i.Tag = strings.Repeat("t", 129) }, "1..128"},
		{"tag with slash", func(i *Image) { i.Tag = "a/b" }, `has '/'`},
		{"short digest", func(i *Image) { i.Digest = "sha256:abc" }, "64 lowercase hex"},
		{"md5 digest", func(i *Image) { i.Digest = "md5:" + strings.Repeat("a", 64) }, "want sha256:"},
		{"negative size", func(i *Image) { i.SizeBytes = -1 }, "negative"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			im := good
			c.change(&im)
			err := im.Check()
			if c.want == "" && err != nil || c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)) {
				t.Fatalf("Check() = %v, want %q", err, c.want)
			}
		})
	}
	pub := Image{Department: PublicDepartment}
	if !pub.UsableBy("physics") || good.UsableBy("physics") || !good.UsableBy("chemistry") {
		t.Fatal("UsableBy: public images are for everyone, private ones for their department")
	}
}
