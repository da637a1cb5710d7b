package model

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

// PublicDepartment owns the images every department may use
// ("public/tiny", "public/python:1").
const PublicDepartment = "public"

// DefaultImageTag is the tag of an image reference written without one.
const DefaultImageTag = "latest"

// Image is one catalog record: a department's name:tag and the OCI
// manifest digest it points at in the cluster's registry. The FSM stores
// it (EntryPutImage); the master resolves a job's image through it at
// submit. The image bytes live in the registry, never in the state.
type Image struct {
	Department string `json:"department"`
	Name       string `json:"name"`
	Tag        string `json:"tag"`
	// Digest is the manifest digest, "sha256:<64 hex>".
	Digest string `json:"digest"`
	// Public images are usable by every department (the public department's
	// always are).
	Public bool `json:"public,omitempty"`
	// SizeBytes is the bytes the registry holds for it (config and layers).
	SizeBytes int64 `json:"sizeBytes"`
	// Created is when the record was first put (the entry's time).
	Created time.Time `json:"created"`
	// Updated is when the tag last moved (the entry's time).
	Updated time.Time `json:"updated,omitzero"`
	// BuiltFrom says what the image was built from (an image spec and its
	// hash); free text for people.
	BuiltFrom string `json:"builtFrom,omitempty"`
	// PushedBy is the user who recorded it.
	PushedBy string `json:"pushedBy,omitempty"`
	// Packages are the names of the Debian packages in the image, sorted
	// (nil when the pusher did not say); submit checks MPI jobs by them.
	Packages []string `json:"packages,omitempty"`
	// Kind is KindImage ("", a bootable image) or KindDataset (Digest
	// names a read-only file set jobs mount; package jobdata).
	Kind string `json:"kind,omitempty"`
}

// Catalog record kinds (Image.Kind).
const (
	KindImage   = ""
	KindDataset = "dataset"
)

// KindName is the kind for people: "image" or "dataset".
func KindName(kind string) string {
	if kind == KindImage {
		return "image"
	}
	return kind
}

// DatasetMount is one read-only dataset of a job: the catalog ref it
// named, the file set digest the master resolved it to at submit, and the
// name the guest mounts it under (/datasets/<name>).
type DatasetMount struct {
	Ref    string `json:"ref"`
	Digest string `json:"digest"`
	Name   string `json:"name"`
}

// MaxImagePackages bounds Image.Packages.
const MaxImagePackages = 20000

// HasPackage reports whether the image lists the Debian package name.
func (im *Image) HasPackage(name string) bool {
	_, found := slices.BinarySearch(im.Packages, name)
	return found
}

// Ref is "department/name:tag", the catalog key.
func (im *Image) Ref() string { return ImageRef(im.Department, im.Name, im.Tag) }

// UsableBy reports whether jobs of department dept may use the image.
func (im *Image) UsableBy(dept string) bool {
	return im.Public || im.Department == PublicDepartment || im.Department == dept
}

// Copy returns a copy (Image holds no references).
func (im *Image) Copy() *Image {
	c := *im
	return &c
}

// ImageRef joins a catalog key.
func ImageRef(dept, name, tag string) string { return dept + "/" + name + ":" + tag }

// SplitImageRef splits "department/name[:tag]" (tag default latest); ok is
// false without exactly one '/' or with an empty part.
func SplitImageRef(ref string) (dept, name, tag string, ok bool) {
	dept, rest, found := strings.Cut(ref, "/")
	if !found || strings.Contains(rest, "/") {
		return "", "", "", false
	}
	name, tag, hasTag := strings.Cut(rest, ":")
	if !hasTag {
		tag = DefaultImageTag
	}
	if dept == "" || name == "" || tag == "" {
		return "", "", "", false
	}
	return dept, name, tag, true
}

// Check refuses a catalog record the registry could not hold or a job could
// not name: department and name 1..64 of [a-z0-9._-] starting with a
// letter or digit (OCI repository rules), tag 1..128 of [A-Za-z0-9._-]
// starting with a letter, digit or '_', digest "sha256:" and 64 lowercase
// hex digits, size >= 0, builtFrom <= 1024 bytes. The server checks it
// before proposing; FSM.Apply checks it again (deterministically).
func (im *Image) Check() error {
	if why := imageNameProblem(im.Department); why != "" {
		return fmt.Errorf("department %q %s", im.Department, why)
	}
	if why := imageNameProblem(im.Name); why != "" {
		return fmt.Errorf("image name %q %s", im.Name, why)
	}
	if why := imageTagProblem(im.Tag); why != "" {
		return fmt.Errorf("tag %q %s", im.Tag, why)
	}
	if err := CheckDigest(im.Digest); err != nil {
		return err
	}
	if im.SizeBytes < 0 {
		return fmt.Errorf("size %d is negative", im.SizeBytes)
	}
	if im.Kind != KindImage && im.Kind != KindDataset {
		return fmt.Errorf("kind %q: want image or dataset", im.Kind)
	}
	if im.Kind == KindDataset && len(im.Packages) > 0 {
		return fmt.Errorf("a dataset lists no packages")
	}
	if len(im.BuiltFrom) > 1024 {
		return fmt.Errorf("builtFrom is %d bytes; want at most 1024", len(im.BuiltFrom))
	}
	if len(im.Packages) > MaxImagePackages {
		return fmt.Errorf("%d packages; want at most %d", len(im.Packages), MaxImagePackages)
	}
	for i, p := range im.Packages {
		if p == "" || len(p) > 128 || strings.Trim(p, "abcdefghijklmnopqrstuvwxyz0123456789+-.") != "" {
			return fmt.Errorf("package %q: want a Debian package name (a-z, 0-9, + - .)", p)
		}
		if i > 0 && im.Packages[i-1] >= p {
			return fmt.Errorf("packages must be sorted and unique (%q after %q)", p, im.Packages[i-1])
		}
	}
	return nil
}

// CheckDigest refuses an image digest that is not "sha256:" and 64
// lowercase hex digits. Image.Check uses it for catalog records, the
// server for the digests a node's heartbeat reports (cached_images).
func CheckDigest(d string) error {
	hex, ok := strings.CutPrefix(d, "sha256:")
	if !ok || len(hex) != 64 || strings.Trim(hex, "0123456789abcdef") != "" {
		return fmt.Errorf("digest %q: want sha256: and 64 lowercase hex digits", d)
	}
	return nil
}

// MaxCachedImages bounds the digests one heartbeat reports
// (HeartbeatRequest.cached_images): the master refuses a longer list, and
// the agent sends no more than this many.
const MaxCachedImages = 1024

func imageNameProblem(s string) string {
	const rule = "; want 1..64 of lowercase letters, digits, '.', '_', '-', starting with a letter or digit"
	if s == "" || len(s) > 64 {
		return "has " + fmt.Sprint(len(s)) + " characters" + rule
	}
	for i, r := range s {
		lower := r >= 'a' && r <= 'z' || r >= '0' && r <= '9'
		if i == 0 && !lower || !lower && r != '.' && r != '_' && r != '-' {
			return fmt.Sprintf("has %q at %d", r, i) + rule
		}
	}
	return ""
}

func imageTagProblem(s string) string {
	const rule = "; want 1..128 of letters, digits, '.', '_', '-', starting with a letter, digit or '_'"
	if s == "" || len(s) > 128 {
		return "has " + fmt.Sprint(len(s)) + " characters" + rule
	}
	for i, r := range s {
		word := r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_'
		if i == 0 && !word || !word && r != '.' && r != '-' {
			return fmt.Sprintf("has %q at %d", r, i) + rule
		}
	}
	return ""
}
