package state

import (
	"iter"
	"maps"
	"slices"

	"vhpc/scheduler/model"
)

// User returns the user record, or nil for a user the cluster does not know.
func (s *Snapshot) User(name string) *model.User { return s.users[name] }

// Users iterates the users in name order.
func (s *Snapshot) Users() iter.Seq[*model.User] {
	return func(yield func(*model.User) bool) {
		for _, name := range slices.Sorted(maps.Keys(s.users)) {
			if !yield(s.users[name]) {
				return
			}
		}
	}
}

// PutUser stores a user record (a copy the caller owns), replacing any
// record of the same name.
func (t *Txn) PutUser(u *model.User) {
	c := maps.Clone(t.users)
	c[u.Name] = u
	t.users = c
}

// DeleteUser forgets a user; it reports whether there was one.
func (t *Txn) DeleteUser(name string) bool {
	if _, ok := t.users[name]; !ok {
		return false
	}
	c := maps.Clone(t.users)
	delete(c, name)
	t.users = c
	return true
}

// User returns the user record as the transaction sees it.
func (t *Txn) User(name string) *model.User { return t.users[name] }
