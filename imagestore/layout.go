package imagestore

import (
	"fmt"
	"strings"
)

// Media types of a vhpc image artifact. They are part of the stored format:
// never change one, add new ones.
const (
	// ConfigMediaType is the config blob: the image directory's config.json.
	ConfigMediaType = "application/vnd.vhpc.image.config.v1+json"
	// KernelMediaType is the guest kernel (bzImage or an ELF vmlinux).
	KernelMediaType = "application/vnd.vhpc.image.kernel"
	// InitrdMediaType is the initramfs.
	InitrdMediaType = "application/vnd.vhpc.image.initrd"
	// DiskMediaType is the root disk, a qcow2 file.
	DiskMediaType = "application/vnd.vhpc.image.disk.qcow2"
	// GzipSuffix is appended to a layer's media type when its blob is gzip'd.
	GzipSuffix = "+gzip"
	// ArtifactType marks the manifest as a vhpc image.
	ArtifactType = "application/vnd.vhpc.image.v1"
)

// Annotation keys on layers and manifests.
const (
	// AnnotationTitle is the file name inside the image directory.
	AnnotationTitle = "org.opencontainers.image.title"
	// AnnotationUncompressedDigest is the sha256 of the file itself (a gzip'd
	// blob's digest is of the compressed bytes); Pull checks both.
	AnnotationUncompressedDigest = "vnd.vhpc.image.uncompressed.digest"
	// AnnotationUncompressedSize is the file's size in bytes.
	AnnotationUncompressedSize = "vnd.vhpc.image.uncompressed.size"
)

// ConfigFile is the name of the config inside an image directory.
const ConfigFile = "config.json"

// MaxConfigBytes bounds config.json (Push refuses more, Pull never reads more).
const MaxConfigBytes = 4 << 20

// layerFiles are the file names an image directory may hold besides
// config.json, sorted. Push refuses any other file; Pull refuses a layer
// whose title is not one of these (a registry cannot make a node write
// elsewhere).
const layerFiles = "initrd initrd.img kernel root.qcow2 vmlinux vmlinuz"

// LayerFileNames lists the file names an image directory may hold besides
// config.json, sorted. cmd/hpc prints them in its errors.
func LayerFileNames() []string { return strings.Fields(layerFiles) }

// roleOf returns the media type (without compression) for a file name.
func roleOf(name string) (string, error) {
	switch name {
	case "kernel", "vmlinuz", "vmlinux":
		return KernelMediaType, nil
	case "initrd", "initrd.img":
		return InitrdMediaType, nil
	case "root.qcow2":
		return DiskMediaType, nil
	}
	return "", fmt.Errorf("%q is not a file of an image directory; want %s and %s", name, ConfigFile, strings.Join(LayerFileNames(), ", "))
}

// baseMediaType strips GzipSuffix.
func baseMediaType(mt string) (base string, gzipped bool) {
	if b, ok := strings.CutSuffix(mt, GzipSuffix); ok {
		return b, true
	}
	return mt, false
}
