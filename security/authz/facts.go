package authz

import (
	"context"
	"errors"
	"slices"
)

// Facts is what the ownership checks need from the replicated state.
// scheduler/server implements it over its state snapshot; tests use a
// fake. Lookups of something that does not exist return an error wrapping
// ErrNotFound (the caller gets NotFound, as from the handler).
type Facts interface {
	// JobOwner returns the user and department of job id.
	JobOwner(ctx context.Context, id uint64) (user, dept string, err error)
	// AllocNode returns the node an allocation is placed on.
	AllocNode(ctx context.Context, allocID string) (node string, err error)
	// Membership returns the departments user belongs to and administers
	// (an unknown user has none, and no error).
	Membership(ctx context.Context, user string) (Membership, error)
	// ImagePublic reports whether the catalog image ref is public.
	ImagePublic(ctx context.Context, ref string) (bool, error)
}

// ErrNotFound marks a Facts lookup of something that does not exist.
var ErrNotFound = errors.New("not found")

// Membership is a user's place in the departments, from the replicated
// state (`hpcd user add alice --department chemistry --admin-of chemistry`).
// Administering a department implies membership.
type Membership struct {
	Departments []string
	AdminOf     []string
}

// AllDepartments as a department makes a user a member of every
// department (the local user of `hpcd dev`, whose examples use several).
const AllDepartments = "*"

// MemberOf reports whether the user belongs to (or administers) dept.
func (m Membership) MemberOf(dept string) bool {
	return slices.Contains(m.Departments, dept) || slices.Contains(m.Departments, AllDepartments) || slices.Contains(m.AdminOf, dept)
}

// Administers reports whether the user is an admin of dept.
func (m Membership) Administers(dept string) bool { return slices.Contains(m.AdminOf, dept) }

// CanSeeJob is the rule for listing and showing a job: operators see all,
// users their own jobs and those of departments they administer. Handlers
// of Filtered methods (JobService.List) call it per job.
func CanSeeJob(id Identity, m Membership, owner, dept string) bool {
	switch id.Role {
	case operator:
		return true
	case user:
		return owner == id.Name || m.Administers(dept)
	}
	return false
}

// CanSeeImage is the rule for listing images: operators and agents see
// all, users their departments' images and public ones. Handlers of
// ImageService.List call it per image.
func CanSeeImage(id Identity, m Membership, dept string, public bool) bool {
	switch id.Role {
	case operator, agent:
		return true
	case user:
		return public || dept == "public" || m.MemberOf(dept)
	}
	return false
}
