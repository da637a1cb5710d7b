package imagespec

import "testing"

// FuzzLoad: Load never panics, and an accepted spec validates again.
func FuzzLoad(f *testing.F) {
	f.Add([]byte(good))
	f.Add([]byte("name: a/b\n"))
	f.Add([]byte("name: a/b\nfiles: [{src: ../x, dst: /x}]\n"))
	f.Add([]byte("name: &a a/b\nbase: *a\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := Load("f.yaml", b)
		if err != nil {
			return
		}
		if err := s.Validate(); err != nil {
			t.Fatalf("accepted spec no longer validates: %v", err)
		}
	})
}
