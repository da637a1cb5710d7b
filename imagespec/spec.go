// Package imagespec is the schema of a department image spec: the YAML file
// `hpc image build SPEC.yaml` reads. It names the image
// (department/name[:tag]), its Debian base, the packages to install, the
// files to copy in, the environment, the root disk size and the guest
// template (machine, CPU model, kernel command line).
//
// Like job.yaml (package jobspec) the file is decoded strictly: unknown or
// misspelt fields, wrong kinds and bad values are all reported at once as
// jobspec.Problems with FILE:LINE:COL, and unknown fields get a "did you
// mean". Load = Parse + Defaults + Validate. The image builder
// (package imagebuild) is the caller; it never sees an unvalidated Spec.
//
// Imports: stdlib, go.yaml.in/yaml/v3, invopop/jsonschema and jobspec (for
// Problem and Quantity); nothing else of vhpc.
package imagespec

import (
	"vhpc/jobspec"
)

// Spec is one image spec. The yaml/json names are the file's field names.
type Spec struct {
	// Name is department/name[:tag]; the tag defaults to "latest".
	Name string `yaml:"name" json:"name" jsonschema:"required,description=department/name[:tag]; the tag defaults to latest; public/... images are usable by every department."`
	// Base is the Debian release the root filesystem is made from.
	Base string `yaml:"base,omitempty" json:"base,omitempty" jsonschema:"enum=bookworm,default=bookworm,description=Debian release of the root filesystem."`
	// Packages are Debian package names installed on top of the base
	// (with the kernel and what hpc-guest needs, which are always added).
	Packages []string `yaml:"packages,omitempty" json:"packages,omitempty" jsonschema:"description=Debian package names to install (no versions; apt resolves them)."`
	// Files are copied from the spec's directory into the image.
	Files []File `yaml:"files,omitempty" json:"files,omitempty" jsonschema:"description=Files copied from the spec's directory into the image."`
	// Env is put into every job's environment (the job's own env wins).
	Env map[string]string `yaml:"env,omitempty" json:"env,omitempty" jsonschema:"description=Environment of every job in this image; a job's env overrides it."`
	// DiskSize is the size of the root filesystem (default 4GiB).
	DiskSize jobspec.Quantity `yaml:"diskSize,omitempty" json:"diskSize,omitempty" jsonschema:"description=Size of the root filesystem; default 4GiB."`
	// Template is how a guest of this image is defined.
	Template Template `yaml:"template,omitempty" json:"template,omitzero" jsonschema:"description=The guest template: machine type, CPU model, extra kernel command line."`

	// pos is where Parse found each field path, for Validate's messages.
	pos map[string][2]int
}

// File is one file copied into the image.
type File struct {
	// Src is relative to the spec's directory and must stay inside it
	// (no "..", no symlink leading out).
	Src string `yaml:"src" json:"src" jsonschema:"required,description=Path relative to the spec's directory; no '..'; symlinks may not lead outside it."`
	// Dst is the absolute path in the image.
	Dst string `yaml:"dst" json:"dst" jsonschema:"required,description=Absolute path in the image."`
	// Mode is the octal permission bits as a string ("0644", "0755");
	// default: the source file's permission bits.
	Mode string `yaml:"mode,omitempty" json:"mode,omitempty" jsonschema:"pattern=^0?[0-7]{3}$,description=Octal permissions such as 0755; default: the source's."`
}

// Template is the guest template recorded with the image.
type Template struct {
	// Machine is the QEMU machine type: pc (default) or q35.
	Machine string `yaml:"machine,omitempty" json:"machine,omitempty" jsonschema:"enum=pc,enum=q35,description=QEMU machine type; default pc (q35 is chosen for GPU jobs)."`
	// CPUModel is a QEMU/libvirt CPU model name for TCG guests
	// ("" = QEMU's default; KVM guests always get host-passthrough).
	CPUModel string `yaml:"cpuModel,omitempty" json:"cpuModel,omitempty" jsonschema:"description=libvirt CPU model for emulated (TCG) guests; KVM guests use host-passthrough."`
	// KernelCmdline is added to the kernel command line vhpc sets
	// (root, init, console); it may not set those itself.
	KernelCmdline string `yaml:"kernelCmdline,omitempty" json:"kernelCmdline,omitempty" jsonschema:"description=Extra kernel arguments; root=, init=, rdinit= and console= are vhpc's."`
}

// Ref is a parsed image name.
type Ref struct {
	Department, Name, Tag string
}

// String is department/name:tag.
func (r Ref) String() string { return r.Department + "/" + r.Name + ":" + r.Tag }

// Ref returns the parsed Name (tag defaulted); Validate has checked it.
func (s *Spec) Ref() Ref {
	r, _ := ParseRef(s.Name)
	return r
}
