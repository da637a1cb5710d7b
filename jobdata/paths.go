package jobdata

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"

	"vhpc/imagestore"
)

// CheckPath reports whether p is a safe relative path inside a job's
// directory: not empty, not absolute, no "." or ".." element, no empty
// element, no NUL or backslash, at most MaxPathLen bytes. It checks the
// string only; os.Root enforces confinement when files are opened.
func CheckPath(p string) error {
	switch {
	case p == "":
		return errors.New("empty path")
	case len(p) > MaxPathLen:
		return fmt.Errorf("path %.40q... is longer than %d bytes", p, MaxPathLen)
	case strings.ContainsRune(p, 0):
		return fmt.Errorf("path %q contains NUL", p)
	case strings.ContainsRune(p, '\\'):
		return fmt.Errorf("path %q contains a backslash", p)
	case strings.HasPrefix(p, "/"):
		return fmt.Errorf("path %q is absolute; use a path relative to the job directory", p)
	}
	for _, el := range strings.Split(p, "/") {
		switch el {
		case "..":
			return fmt.Errorf("path %q leaves the job directory (..)", p)
		case "", ".":
			return fmt.Errorf("path %q is not clean (empty or '.' element)", p)
		}
	}
	if !filepath.IsLocal(p) {
		return fmt.Errorf("path %q is not a local path", p)
	}
	return nil
}

// MaxPathLen bounds one path of a file set.
const MaxPathLen = 1024

// repoComponent is one path component of an OCI repository name.
var repoComponent = regexp.MustCompile(`^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$`)

// RepositoryName is the registry repository that holds the file sets a
// department shares: its members' inputs and datasets,
// "vhpc-data/<department>". A department name that is not a valid
// lower-case repository component (jobspec allows upper case) is replaced
// by "d-" and the first 16 hex digits of its sha256, so two departments
// never share a repository.
func RepositoryName(department string) string {
	return repoPrefix + departmentComponent(department)
}

// OutputRepositoryName is the repository of one job's outputs,
// "vhpc-data/<department>/job-<id>": the agents running the job push
// there with the job's own token, and only the job's owner, the
// department's admins and operators get a token that reads it (so a token
// never opens another job's outputs). It never equals a RepositoryName
// (three components against two). The agent pushes there and records it
// with the outputs (model.Outputs.Repository).
func OutputRepositoryName(department string, job uint64) string {
	return repoPrefix + departmentComponent(department) + "/job-" + strconv.FormatUint(job, 10)
}

// repoPrefix starts every repository of job files.
const repoPrefix = "vhpc-data/"

func departmentComponent(department string) string {
	if repoComponent.MatchString(department) {
		return department
	}
	sum := sha256.Sum256([]byte(department))
	return "d-" + hex.EncodeToString(sum[:8])
}

// repository is the file-set repository repoName (RepositoryName or
// OutputRepositoryName) in the registry at url. Any other name is refused,
// so a caller cannot mistake a department for a repository.
func repository(registryURL, repoName string) (name.Repository, error) {
	if registryURL == "" {
		return name.Repository{}, ErrNoStore
	}
	if !strings.HasPrefix(repoName, repoPrefix) {
		return name.Repository{}, fmt.Errorf("%q is not a repository of job files (want %s<department>[/job-<id>])", repoName, repoPrefix)
	}
	return imagestore.Repository(registryURL, repoName)
}

// ErrNoStore: the cluster has no registry, so jobs cannot stage files.
var ErrNoStore = errors.New("this cluster has no data store: start hpcd with --registry URL (hpcd dev starts one)")
