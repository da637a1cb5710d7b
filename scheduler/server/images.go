package server

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"vhpc/api"
	"vhpc/jobspec"
	"vhpc/scheduler/fsm"
	"vhpc/scheduler/model"
	"vhpc/scheduler/state"
	"vhpc/wire"
)

// imageService is the ImageService: the catalog of department images.
type imageService struct {
	api.UnimplementedImageServiceServer
	s *Server
}

// parseImageRef splits "department/name[:tag]" for the catalog RPCs.
func parseImageRef(ref string) (dept, name, tag string, err error) {
	dept, name, tag, ok := model.SplitImageRef(ref)
	if !ok {
		return "", "", "", status.Errorf(codes.InvalidArgument, "image %q: want department/name[:tag], e.g. chemistry/lammps:2024.08 or public/tiny", ref)
	}
	return dept, name, tag, nil
}

// Put implements ImageService.Put (contract in api/vhpc.proto).
func (is *imageService) Put(ctx context.Context, req *api.PutImageRequest) (*api.ImageRecord, error) {
	s := is.s
	if err := checkClientToken(req.GetClientToken()); err != nil {
		return nil, err
	}
	dept, name, tag, err := parseImageRef(req.GetRef())
	if err != nil {
		return nil, err
	}
	kind, err := parseKind(req.GetKind())
	if err != nil {
		return nil, err
	}
	im := model.Image{Department: dept, Name: name, Tag: tag, Digest: req.GetDigest(), Public: req.GetPublic(),
		SizeBytes: req.GetSizeBytes(), BuiltFrom: req.GetBuiltFrom(), PushedBy: req.GetUser(),
		Packages: slices.Compact(slices.Sorted(slices.Values(req.GetPackages()))), Kind: kind}
	if err := im.Check(); err != nil {
		return nil, status.Errorf(codes.InvalidArgument, "%s %s: %v", model.KindName(kind), req.GetRef(), err)
	}
	if c, fctx, ok, err := atLeader(s, ctx, api.NewImageServiceClient); err != nil {
		return nil, err
	} else if ok {
		return c.Put(fctx, req)
	}
	if kind == model.KindDataset {
		// A dataset must be a file set the department's jobs can pull:
		// the leader looks at it once, and records its real size.
		if err := s.checkDatasetSet(ctx, &im); err != nil { // data.go
			return nil, err
		}
	}
	out, err := s.apply(ctx, fsm.EntryPutImage, &fsm.PutImage{Time: s.cfg.Now().UTC(), Image: im, Token: req.GetClientToken()})
	if err != nil {
		return nil, toStatus(err)
	}
	return imageResult(out), nil
}

func imageResult(out any) *api.ImageRecord {
	r, _ := out.(fsm.ImageResult)
	p := &api.ImageRecord{}
	if r.Image != nil {
		p = wire.ImageToProto(r.Image)
	}
	p.PreviousDigest, p.Duplicate = r.Previous, r.Duplicate
	return p
}

// List implements ImageService.List (contract in api/vhpc.proto).
func (is *imageService) List(ctx context.Context, req *api.ListImagesRequest) (*api.ListImagesResponse, error) {
	if !req.GetStale() {
		if c, fctx, ok, err := atLeader(is.s, ctx, api.NewImageServiceClient); err != nil {
			return nil, err
		} else if ok {
			return c.List(fctx, req)
		}
	}
	snap, err := is.s.readSnapshot(ctx, req.GetStale())
	if err != nil {
		return nil, err
	}
	out := &api.ListImagesResponse{Registry: is.s.cfg.ImageRegistry}
	kind, err := parseKind(req.GetKind())
	if err != nil && req.GetKind() != "" {
		return nil, err
	}
	for im := range snap.Images() {
		if req.GetKind() != "" && im.Kind != kind {
			continue
		}
		if d := req.GetDepartment(); d == "" || im.Department == d {
			out.Images = append(out.Images, wire.ImageToProto(im))
		}
	}
	return out, nil
}

// Get implements ImageService.Get (contract in api/vhpc.proto).
func (is *imageService) Get(ctx context.Context, req *api.GetImageRequest) (*api.ImageRecord, error) {
	dept, name, tag, err := parseImageRef(req.GetRef())
	if err != nil {
		return nil, err
	}
	if !req.GetStale() {
		if c, fctx, ok, err := atLeader(is.s, ctx, api.NewImageServiceClient); err != nil {
			return nil, err
		} else if ok {
			return c.Get(fctx, req)
		}
	}
	snap, err := is.s.readSnapshot(ctx, req.GetStale())
	if err != nil {
		return nil, err
	}
	ref := model.ImageRef(dept, name, tag)
	im := snap.Image(ref)
	if im == nil {
		return nil, status.Errorf(codes.NotFound, "image %s is not in the catalog%s", ref, didYouMean(snap, ref))
	}
	return wire.ImageToProto(im), nil
}

// Remove implements ImageService.Remove (contract in api/vhpc.proto).
func (is *imageService) Remove(ctx context.Context, req *api.RemoveImageRequest) (*api.ImageRecord, error) {
	s := is.s
	if err := checkClientToken(req.GetClientToken()); err != nil {
		return nil, err
	}
	dept, name, tag, err := parseImageRef(req.GetRef())
	if err != nil {
		return nil, err
	}
	if c, fctx, ok, err := atLeader(s, ctx, api.NewImageServiceClient); err != nil {
		return nil, err
	} else if ok {
		return c.Remove(fctx, req)
	}
	ref := model.ImageRef(dept, name, tag)
	out, err := s.apply(ctx, fsm.EntryRemoveImage, &fsm.RemoveImage{Time: s.cfg.Now().UTC(), Ref: ref, Token: req.GetClientToken()})
	if errors.Is(err, fsm.ErrNotFound) {
		return nil, status.Errorf(codes.NotFound, "image %s is not in the catalog%s", ref, didYouMean(s.fsm.Store().Snapshot(), ref))
	}
	if err != nil {
		return nil, toStatus(err)
	}
	return imageResult(out), nil
}

// resolveImage fills a job's ImageRef and ImageDigest from the catalog.
// "tiny" (the built-in image) resolves to nothing, exactly as before the
// catalog. "department/name[:tag]" must be in the catalog and usable by the
// job's department; a bare "name[:tag]" means the job's department's image,
// else the public one. Errors are job.yaml problems (file:line:col when the
// spec has positions) that say what exists. It resolves the job's datasets
// first (resolveDatasets).
func resolveImage(snap *state.Snapshot, spec *jobspec.Spec, file string, j *model.Job) error {
	if err := resolveDatasets(snap, spec, file, j); err != nil {
		return err
	}
	if j.Image == "" || j.Image == jobspec.DefaultImage {
		return checkMPIPackage(spec, file, j, nil)
	}
	var candidates []string
	if dept, name, tag, ok := model.SplitImageRef(j.Image); ok {
		candidates = []string{model.ImageRef(dept, name, tag)}
	} else {
		name, tag, hasTag := strings.Cut(j.Image, ":")
		if !hasTag {
			tag = model.DefaultImageTag
		}
		candidates = []string{model.ImageRef(j.Department, name, tag), model.ImageRef(model.PublicDepartment, name, tag)}
	}
	for _, ref := range candidates {
		im := snap.Image(ref)
		if im == nil {
			continue
		}
		if im.Kind == model.KindDataset {
			return imageProblem(spec, file, j.Image, fmt.Sprintf("is a dataset (%s), not a bootable image: list it under datasets:, and name an image here", ref))
		}
		if !im.UsableBy(j.Department) {
			return imageProblem(spec, file, j.Image, fmt.Sprintf("is a private image of department %s; the job's department is %s: use one of %s's images or a public/... image, or ask %s to make it public",
				im.Department, j.Department, j.Department, im.Department))
		}
		j.ImageRef, j.ImageDigest = ref, im.Digest
		return checkMPIPackage(spec, file, j, im)
	}
	return imageProblem(spec, file, j.Image, "is not in the image catalog"+didYouMean(snap, candidates[0])+"; `hpc image ls` lists the images, `hpc image push` adds one")
}

// mpiPackages is the Debian package an image needs for each MPI flavour.
func mpiPackage(mpi string) string {
	switch mpi {
	case "openmpi":
		return "openmpi-bin"
	case "mpich":
		return "mpich"
	}
	return ""
}

// checkMPIPackage refuses an MPI job whose image lacks its MPI (from the
// package list the image was pushed with; im nil is the built-in image).
func checkMPIPackage(spec *jobspec.Spec, file string, j *model.Job, im *model.Image) error {
	pkg := mpiPackage(j.MPI)
	switch {
	case pkg == "":
		return nil
	case im == nil:
		return imageProblem(spec, file, j.Image, fmt.Sprintf("(the built-in image) has no MPI, and mpi: %s needs one: use an image with the Debian package %s, e.g. public/mpi:1 (images/mpi.yaml)", j.MPI, pkg))
	case len(im.Packages) == 0:
		return imageProblem(spec, file, j.Image, fmt.Sprintf("was pushed without its package list, so mpi: %s cannot be checked against it: push it again with hpc image push (which reads the packages from its config.json)", j.MPI))
	case !im.HasPackage(pkg):
		return imageProblem(spec, file, j.Image, fmt.Sprintf("has no %s, and mpi: %s needs it: add %s to the image spec's packages and build it again", pkg, j.MPI, pkg))
	}
	return nil
}

// imageProblem reports a bad image as a jobspec problem at the image field.
func imageProblem(spec *jobspec.Spec, file, value, msg string) error {
	p := jobspec.Problem{File: file, Path: "image", Value: value}
	if spec != nil {
		p = spec.ProblemAt("image", value, "")
	}
	p.Msg = fmt.Sprintf("%q %s", value, msg)
	return jobspec.Problems{p}
}

// didYouMean suggests up to three catalog keys close to ref ("" if none).
func didYouMean(snap *state.Snapshot, ref string) string {
	type cand struct {
		ref  string
		dist int
	}
	var cs []cand
	_, name, _, _ := model.SplitImageRef(ref)
	for im := range snap.Images() {
		r := im.Ref()
		d := jobspec.EditDistance(ref, r)
		if d <= max(2, len(ref)/4) || name != "" && im.Name == name {
			cs = append(cs, cand{r, d})
		}
	}
	if len(cs) == 0 {
		return ""
	}
	sort.SliceStable(cs, func(i, j int) bool {
		return cs[i].dist < cs[j].dist || cs[i].dist == cs[j].dist && cs[i].ref < cs[j].ref
	})
	var names []string
	for _, c := range cs[:min(3, len(cs))] {
		names = append(names, fmt.Sprintf("%q", c.ref))
	}
	return "; did you mean " + strings.Join(names, " or ") + "?"
}

// parseKind reads PutImageRequest.kind / ListImagesRequest.kind.
func parseKind(k string) (string, error) {
	switch k {
	case "", "image":
		return model.KindImage, nil
	case model.KindDataset:
		return model.KindDataset, nil
	}
	return "", status.Errorf(codes.InvalidArgument, "kind %q: want image or dataset", k)
}

// resolveDatasets fills a job's Datasets from the catalog, as resolveImage
// does for its image: "department/name[:tag]" must be a dataset usable by
// the job's department; a bare "name[:tag]" means the department's, else
// the public one. Each is mounted at /datasets/<name>.
func resolveDatasets(snap *state.Snapshot, spec *jobspec.Spec, file string, j *model.Job) error {
	j.Datasets = nil
	for i, want := range spec.Datasets {
		var candidates []string
		if dept, name, tag, ok := model.SplitImageRef(want); ok {
			candidates = []string{model.ImageRef(dept, name, tag)}
		} else {
			name, tag, hasTag := strings.Cut(want, ":")
			if !hasTag {
				tag = model.DefaultImageTag
			}
			candidates = []string{model.ImageRef(j.Department, name, tag), model.ImageRef(model.PublicDepartment, name, tag)}
		}
		path := fmt.Sprintf("datasets[%d]", i)
		problem := func(msg string) error {
			p := jobspec.Problem{File: file, Path: path, Value: want}
			if spec != nil {
				p = spec.ProblemAt(path, want, "")
			}
			p.Msg = fmt.Sprintf("%q %s", want, msg)
			return jobspec.Problems{p}
		}
		var found *model.Image
		for _, ref := range candidates {
			if im := snap.Image(ref); im != nil {
				found = im
				break
			}
		}
		switch {
		case found == nil:
			return problem("is not in the catalog" + didYouMean(snap, candidates[0]) + "; `hpc data ls` lists the datasets, `hpc data push` adds one")
		case found.Kind != model.KindDataset:
			return problem(fmt.Sprintf("is an image (%s), not a dataset", found.Ref()))
		case !found.UsableBy(j.Department):
			return problem(fmt.Sprintf("is a private dataset of department %s; the job's department is %s", found.Department, j.Department))
		}
		j.Datasets = append(j.Datasets, model.DatasetMount{Ref: found.Ref(), Digest: found.Digest, Name: jobspec.DatasetName(want)})
	}
	return nil
}
