package server

import (
	"context"

	"vhpc/api"
	"vhpc/security/authz"
)

// filteredImages is the ImageService as registered: ImageService.List is
// "filtered" in the ACL table, so a user sees only their departments'
// images and public ones (authz.CanSeeImage); everything else is
// imageService's.
type filteredImages struct{ *imageService }

// List implements ImageService.List: the catalog, filtered per caller.
func (fi *filteredImages) List(ctx context.Context, req *api.ListImagesRequest) (*api.ListImagesResponse, error) {
	out, err := fi.imageService.List(ctx, req)
	id, secure := caller(ctx)
	if err != nil || !secure {
		return out, err
	}
	m := membershipOf(fi.s.fsm.Store().Snapshot().User(id.Name))
	kept := out.Images[:0]
	for _, im := range out.GetImages() {
		if authz.CanSeeImage(id, m, im.GetDepartment(), im.GetPublic()) {
			kept = append(kept, im)
		}
	}
	out.Images = kept
	return out, nil
}
