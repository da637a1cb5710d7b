package imagestore

import (
	"fmt"
	"net/url"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
)

// repository turns a registry URL (http://127.0.0.1:5000, https://reg.example)
// and a repository path (chemistry/lammps) into a go-containerregistry
// repository; an http URL allows plain HTTP.
func repository(registryURL, repo string) (name.Repository, error) {
	host, opts, err := registryHost(registryURL)
	if err != nil {
		return name.Repository{}, err
	}
	r, err := name.NewRepository(host+"/"+repo, opts...)
	if err != nil {
		return name.Repository{}, fmt.Errorf("repository %q: %w", repo, err)
	}
	return r, nil
}

func registryHost(registryURL string) (string, []name.Option, error) {
	u, err := url.Parse(registryURL)
	if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
		return "", nil, fmt.Errorf("registry %q: want a URL like http://127.0.0.1:5000 or https://registry.example", registryURL)
	}
	if u.Path != "" && u.Path != "/" {
		return "", nil, fmt.Errorf("registry %q: want no path after the host", registryURL)
	}
	opts := []name.Option{name.StrictValidation}
	if u.Scheme == "http" {
		opts = append(opts, name.Insecure)
	}
	return u.Host, opts, nil
}

// SplitRef splits "repo:tag" or "repo@sha256:..." into the repository and
// the tag or digest (one of them empty). cmd/hpc and Pull call it; a ref
// without either gets tag "latest".
func SplitRef(ref string) (repo, tag, digest string) {
	if i := strings.Index(ref, "@"); i >= 0 {
		return ref[:i], "", ref[i+1:]
	}
	slash := strings.LastIndex(ref, "/")
	if i := strings.LastIndex(ref, ":"); i > slash {
		return ref[:i], ref[i+1:], ""
	}
	return ref, "latest", ""
}
