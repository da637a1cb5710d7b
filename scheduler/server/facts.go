package server

import (
	"context"
	"fmt"

	"vhpc/scheduler/model"
	"vhpc/security/authz"
)

// stateFacts answers security/authz's ownership questions from this
// member's replicated state. A forwarded call is checked again by the
// leader with its own (authoritative) state.
type stateFacts struct{ s *Server }

var _ authz.Facts = (*stateFacts)(nil)

// JobOwner implements authz.Facts.
func (f *stateFacts) JobOwner(ctx context.Context, id uint64) (string, string, error) {
	var j *model.Job
	f.s.waitForState(ctx, func() bool { j = f.s.fsm.Store().Snapshot().Job(model.JobID(id)); return j != nil })
	if j == nil {
		return "", "", fmt.Errorf("job %d: %w", id, authz.ErrNotFound)
	}
	return j.User, j.Department, nil
}

// AllocNode implements authz.Facts.
func (f *stateFacts) AllocNode(ctx context.Context, alloc string) (string, error) {
	var a *model.Alloc
	f.s.waitForState(ctx, func() bool { a = f.s.fsm.Store().Snapshot().Alloc(model.AllocID(alloc)); return a != nil })
	if a == nil {
		return "", fmt.Errorf("allocation %s: %w", alloc, authz.ErrNotFound)
	}
	return a.Placement.Node, nil
}

// Membership implements authz.Facts: the user's departments from the
// users table (`hpcd user add`); an unknown user has none.
func (f *stateFacts) Membership(_ context.Context, user string) (authz.Membership, error) {
	return membershipOf(f.s.fsm.Store().Snapshot().User(user)), nil
}

func membershipOf(u *model.User) authz.Membership {
	if u == nil {
		return authz.Membership{}
	}
	return authz.Membership{Departments: u.Departments, AdminOf: u.AdminOf}
}

// ImagePublic implements authz.Facts. An image that does not exist is
// not public (no error): a caller outside its department learns nothing
// about which private images exist.
func (f *stateFacts) ImagePublic(_ context.Context, ref string) (bool, error) {
	im := f.s.fsm.Store().Snapshot().Image(ref)
	return im != nil && im.Public, nil
}
